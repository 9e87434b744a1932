"""``amuro data check CONFIG_OR_TASKS``: every split a study (or a task list) will read, checked
before any model is loaded.

For a study config: the scored and few-shot splits of every evaluation set (under the config's
``eval.splits`` protocol and each set's ``on_invalid``), the training split of every fine-tuning
task (``finetune.on_invalid``), TULU's conversations; from the config's data source (``data``);
the longest input in tokens of the config model's tokenizer. For a task list (lm-eval task names,
tags or globs such as ``amuro_arc_*``, or set names): their scored and few-shot splits.

Each split's first ``rows`` rows are read from their real source (:mod:`amuro_tasks.check`):
the Hub, the authors' GitHub files, a mirror or the fixtures. The command exits 1 when anything
would stop the run (an unreadable split, a pinned commit that is not served, an invalid row where
``on_invalid`` is ``error``), 0 otherwise.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from amuro_study.config import StudyConfig, StudyConfigError
from amuro_tasks.check import DEFAULT_ROWS, SplitReport, check_split, summary_line
from amuro_tasks.family import DEFAULT_PROTOCOL, FORMATS
from amuro_tasks.loading import split_names
from amuro_tasks.specs import SPECS, get_spec
from amuro_tasks.tasks import all_tasks, task_name, task_tags

log = logging.getLogger("amuro")


@dataclass(frozen=True)
class SplitUse:
    """One split a run reads, and how."""

    name: str
    """Evaluation set, or ``tulu``."""
    split: str
    role: str
    on_invalid: str = "error"
    formats: tuple[str, ...] = FORMATS
    train_format: str | None = None
    max_length: int | None = None


@dataclass
class CheckPlan:
    """What to check, from where, with which tokenizer."""

    source: str
    protocol: str
    uses: list[SplitUse] = field(default_factory=list)
    tokenizer: str | None = None
    tokenizer_revision: str | None = None

    def add(self, use: SplitUse) -> None:
        """Add ``use`` unless the same split is already checked for a role at least as strict."""
        for i, seen in enumerate(self.uses):
            if (seen.name, seen.split) == (use.name, use.split):
                if seen.role == "shots" and use.role != "shots":
                    self.uses[i] = use
                return
        self.uses.append(use)


def _set_uses(name: str, protocol: str, on_invalid: str, formats: tuple[str, ...]
              ) -> list[SplitUse]:
    spec = get_spec(name)
    uses = [SplitUse(name, s, "scored", on_invalid, formats)
            for s in split_names(spec.split_for(protocol))]
    uses += [SplitUse(name, s, "shots", "skip", formats)
             for s in split_names(spec.fewshot_split or ())]
    return uses


def plan_for_config(config: StudyConfig) -> CheckPlan:
    """The splits a study reads (see the module docstring)."""
    plan = CheckPlan(config.data, config.eval.splits)
    for item in config.eval.sets:
        for use in _set_uses(item.name, config.eval.splits, item.on_invalid, item.formats):
            plan.add(use)
    from amuro_sft.tasks import TULU

    for (task, _lr), recipe in config.finetune.recipes.items():
        options = recipe.args
        use = SplitUse("tulu" if task == TULU else recipe.train_set, "train", "training",
                       options.on_invalid, (options.format,), options.format,
                       recipe.training.max_length)
        plan.add(use)
    if config.pretrain is None:  # every checkpoint of a model shares its tokenizer
        first = config.revisions[0].revision if config.revisions else None
        local = config.is_local_model and first not in (None, "main")
        plan.tokenizer = str(Path(config.model) / str(first)) if local else config.model
    return plan


def sets_for_tasks(spec_text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Sets (with the formats asked for) named by a comma-separated list of lm-eval task names,
    tags or globs (``amuro_arc_*``), or set names."""
    wanted: dict[str, list[str]] = {}
    for item in (x.strip() for x in spec_text.split(",")):
        if not item:
            continue
        if item in SPECS:
            wanted.setdefault(item, []).extend(FORMATS)
            continue
        hits = [(s.name, fmt) for s, fmt in all_tasks()
                if fnmatch.fnmatchcase(task_name(s.name, fmt), item)
                or any(fnmatch.fnmatchcase(t, item) for t in task_tags(s, fmt))]
        if not hits:
            raise StudyConfigError(f"<tasks>: {item!r} names no amuro task, tag or set")
        for name, fmt in hits:
            wanted.setdefault(name, []).append(fmt)
    if not wanted:
        raise StudyConfigError("<tasks>: no task given")
    return [(name, tuple(dict.fromkeys(fmts))) for name, fmts in wanted.items()]


def plan_for_tasks(spec_text: str, source: str, protocol: str, on_invalid: str
                   ) -> CheckPlan:
    """The splits an lm-eval run of these tasks reads."""
    plan = CheckPlan(source, protocol)
    for name, formats in sets_for_tasks(spec_text):
        for use in _set_uses(name, protocol, on_invalid, formats):
            plan.add(use)
    return plan


def load_tokenizer(name: str, revision: str | None = None) -> Any:
    """A tokenizer by Hub id or path (``AmuroConfigError``-free: the caller decides)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, revision=revision)


def run_checks(plan: CheckPlan, rows: int | None = DEFAULT_ROWS, tokenizer: Any = None
               ) -> list[SplitReport]:
    """Check every split of ``plan``."""
    reports = []
    for use in plan.uses:
        if use.name == "tulu":
            from amuro_sft.data import check_tulu

            reports.append(check_tulu(plan.source, n=rows, on_invalid=use.on_invalid,
                                      tokenizer=tokenizer))
            continue
        reports.append(check_split(
            get_spec(use.name), use.split, plan.source, role=use.role, n=rows,
            on_invalid=use.on_invalid, formats=use.formats, tokenizer=tokenizer,
            train_format=use.train_format, max_length=use.max_length))
    return reports


def _counts(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def print_reports(plan: CheckPlan, reports: Sequence[SplitReport], rows: int | None,
                  tokenizer_note: str, out: TextIO | None = None) -> None:
    """The reports as text, one block per split."""
    out = out or sys.stdout
    first = "every row" if rows is None else f"the first {rows} rows"
    print(f"data check: source {plan.source}, split protocol {plan.protocol}, {first} of "
          f"each split; {tokenizer_note}", file=out)
    for r in reports:
        status = "ok  " if r.ok else "FAIL"
        print(f"\n{status} {r.name}/{r.split} ({r.role}, on_invalid {r.on_invalid})", file=out)
        if r.source:
            src = r.source
            commit = src.get("commit") or "-"
            print(f"     source   {src['source']} {src['location']} (revision "
                  f"{src.get('revision') or '-'}, commit {commit})", file=out)
            if src["source"] in ("hub", "github") and src.get("files"):
                shown = ", ".join(src["files"][:3]) + (" ..." if len(src["files"]) > 3 else "")
                print(f"     files    {shown}", file=out)
        if r.source or r.rows_read:  # nothing to count when the split could not be read
            print(f"     rows     {r.rows_read} read, {r.usable} usable", file=out)
            if r.labels is not None:
                print(f"     labels   {_counts(r.labels)}", file=out)
            print(f"     invalid  {_counts(r.invalid)}", file=out)
        if r.documented_empty:
            print(f"     dropped  {r.documented_empty} (documented empty field)", file=out)
        for key, value in r.info.items():
            text = _counts(value) if isinstance(value, dict) else value
            print(f"     {key.replace('_', ' ')}: {text}", file=out)
        if r.longest_input_tokens is not None:
            print(f"     longest  {r.longest_input_tokens} tokens (row {r.longest_input_row})",
                  file=out)
        for note in r.notes:
            print(f"     note     {note}", file=out)
        for example in r.examples[: 1 if r.ok else 3]:
            print(f"     e.g.     {example}", file=out)
        for reason in r.fatal:
            print(f"     STOP     {reason}", file=out)
    print(f"\n{summary_line(reports)}", file=out)


def check_data(target: str | StudyConfig, *, rows: int | None = DEFAULT_ROWS,
               data: str | None = None,
               splits: str | None = None, on_invalid: str = "error",
               tokenizer: str | None = None, as_json: bool = False,
               out: TextIO | None = None) -> int:
    """``amuro data check``: 0 when nothing would stop the run, 1 otherwise. ``target``: a
    study config (a loaded one, or its YAML file) or a task list. A bad config, task list or
    tokenizer raises :class:`StudyConfigError` (exit 2 in the CLI)."""
    from amuro_study.config import StudyConfig, load_config
    from amuro_tasks.loading import data_source

    is_file = isinstance(target, str) and Path(target).is_file()
    if isinstance(target, StudyConfig) or is_file and target.endswith((".yaml", ".yml")):
        config = target if isinstance(target, StudyConfig) else load_config(target)
        if data is not None or splits is not None:
            import dataclasses

            if data is not None:
                config = dataclasses.replace(config, data=data)
            if splits is not None:
                config = dataclasses.replace(
                    config, eval=dataclasses.replace(config.eval, splits=splits))
        plan = plan_for_config(config)
    else:
        try:
            source = data_source(data)
        except Exception as err:  # noqa: BLE001 - a bad --data is a usage error
            raise StudyConfigError(f"--data: {err}") from None
        plan = plan_for_tasks(target, source, splits or DEFAULT_PROTOCOL, on_invalid)
    if tokenizer is not None:
        plan.tokenizer, plan.tokenizer_revision = tokenizer, None
    tok = None
    note = "no tokenizer (input lengths not measured)"
    if plan.tokenizer is not None:
        try:
            tok = load_tokenizer(plan.tokenizer, plan.tokenizer_revision)
            note = f"input lengths in tokens of {plan.tokenizer}"
        except Exception as err:  # noqa: BLE001
            if tokenizer is not None:  # asked for explicitly: a usage error
                raise StudyConfigError(f"--tokenizer: cannot load {tokenizer!r}: "
                                       f"{type(err).__name__}: {err}") from None
            note = (f"tokenizer of {plan.tokenizer} not loadable here ({type(err).__name__}); "
                    "input lengths not measured")
    reports = run_checks(plan, rows, tok)
    if as_json:
        print(json.dumps({"source": plan.source, "protocol": plan.protocol, "rows": rows,
                          "tokenizer": plan.tokenizer if tok is not None else None,
                          "splits": [r.as_dict() for r in reports],
                          "ok": all(r.ok for r in reports)}, indent=1, default=str),
              file=out or sys.stdout)
    else:
        print_reports(plan, reports, rows, note, out)
    return 0 if all(r.ok for r in reports) else 1
