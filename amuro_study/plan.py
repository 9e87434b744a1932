"""The study grid as typed, independent units of work with stable ids.

Three kinds of unit (plus the demo's pre-training):

* :class:`EvalUnit` of a *base* checkpoint: every evaluation set x format at one shot count and
  one shot set (``eval.fewshot_seeds`` x ``eval.shot_sampling``; 0-shot units have none), in
  one ``lm_eval.simple_evaluate`` call (one model load). Its identity does not mention any
  fine-tune, so a base evaluation is computed once and reused by every comparison.
* :class:`FinetuneUnit`: one checkpoint x recipe (task, learning rate, ...), run by
  ``amuro_sft``; its identity is the base checkpoint and the recipe's identity.
* :class:`EvalUnit` of a fine-tuned model: depends on its ``FinetuneUnit``; scored on the same
  ID / OOD / cross-task sets and formats as the base.

A unit's id is a hash of its typed identity (the dataclass as canonical JSON), never of a path;
the identity is also written next to the result as JSON. Locations (model directories) are
derived from ids by :class:`Plan`, not the other way round.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amuro_study.config import PretrainSpec, RevisionSpec, StudyConfig, resolve_steps
from amuro_tasks.family import DEFAULT_PROTOCOL
from amuro_tasks.loading import DEFAULT_FEWSHOT_SEED
from amuro_tasks.shots import DEFAULT_SHOT_MODE
from amuro_tasks.specs import get_spec


def _uid(kind: str, identity: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, **identity}, sort_keys=True, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Checkpoint:
    """A pre-trained checkpoint: model, revision and step; ``origin`` names the demo
    pre-training unit that made it (``None`` for Hub or local models)."""

    model: str
    revision: str | None
    step: int | None
    origin: str | None = None

    @property
    def label(self) -> str:
        """Short display name (``model@revision``)."""
        return f"{self.model}@{self.revision}" if self.revision else self.model


@dataclass(frozen=True)
class PretrainUnit:
    """Demo only: pre-train a tiny model on the fixture texts, saving several checkpoints."""

    spec: PretrainSpec
    kind: str = field(default="pretrain", init=False)

    @property
    def uid(self) -> str:
        """Stable id: hash of the pre-training recipe."""
        return _uid(self.kind, {"spec": self._spec()})

    def _spec(self) -> dict[str, Any]:
        spec = asdict(self.spec)
        if spec["world"] is None:  # (added in amuro 0.2: ids of studies without one unchanged)
            del spec["world"]
        return spec

    @property
    def deps(self) -> tuple[str, ...]:
        """Units that must be done first."""
        return ()

    def describe(self) -> str:
        """One-line human description."""
        spec = self.spec
        return f"pretrain {spec.name} to step {spec.max_steps} (save {list(spec.save_steps)})"

    def identity(self) -> dict[str, Any]:
        """The JSON identity."""
        return {"kind": self.kind, "spec": self._spec()}


#: Recipe options that name the base model: a fine-tune unit has them in ``base`` instead.
MODEL_OPTIONS = ("model_name_or_path", "model_revision")


def recipe_identity(recipe: Any) -> dict[str, Any]:
    """The part of an ``amuro_sft`` recipe's identity a fine-tune unit hashes: everything but
    the base model (the unit's ``base``, located differently per study folder)."""
    return {k: v for k, v in recipe.identity().items() if k not in MODEL_OPTIONS}


@dataclass(frozen=True)
class FinetuneUnit:
    """One fine-tuning run of ``base`` with an ``amuro_sft`` recipe (``amuro_sft``)."""

    base: Checkpoint
    recipe: Mapping[str, Any] = field(hash=False)
    """The recipe's identity (:func:`recipe_identity`): task, learning rate, epochs, sample,
    seeds, ... -- every option that changes what is trained, as JSON values."""
    kind: str = field(default="finetune", init=False)

    @property
    def uid(self) -> str:
        """Stable id: hash of the base checkpoint and the recipe."""
        return _uid(self.kind, asdict(self))

    @property
    def task(self) -> str:
        """The task fine-tuned on."""
        return str(self.recipe["task"])

    @property
    def learning_rate(self) -> float:
        """The learning rate (the paper's already filled in)."""
        return float(self.recipe["learning_rate"])

    @property
    def epochs(self) -> float:
        """Epochs (the paper's already filled in)."""
        return float(self.recipe["num_train_epochs"])

    @property
    def seed(self) -> int:
        """The training seed."""
        return int(self.recipe["seed"])

    @property
    def max_steps(self) -> int:
        """Optimizer steps (-1: train ``epochs``)."""
        return int(self.recipe["max_steps"])

    @property
    def format(self) -> str:
        """Prompt format of the training examples."""
        return str(self.recipe["format"])

    @property
    def num_train_examples(self) -> int | None:
        """Training examples asked for (``None``: the whole split)."""
        return self.recipe["num_train_examples"]

    @property
    def sample_fraction(self) -> float | None:
        """Fraction of the training split (instead of ``num_train_examples``)."""
        return self.recipe["sample_fraction"]

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step."""
        return int(self.recipe["effective_batch_size"])

    @property
    def data(self) -> str:
        """The data source the training rows come from."""
        return str(self.recipe["data_source"])

    @property
    def deps(self) -> tuple[str, ...]:
        """The pre-training unit that made the base checkpoint, if any."""
        return (self.base.origin,) if self.base.origin else ()

    def describe(self) -> str:
        """One-line human description."""
        return f"fine-tune {self.base.label} on {self.task} (lr {self.learning_rate:g})"

    def identity(self) -> dict[str, Any]:
        """The JSON identity."""
        return asdict(self)


@dataclass(frozen=True)
class EvalTask:
    """One lm-eval task: an evaluation set in one prompt format."""

    eval_set: str
    format: str

    @property
    def task_name(self) -> str:
        """The lm-eval task name (``amuro_<set>_<format>``)."""
        return f"amuro_{self.eval_set}_{self.format}"


@dataclass(frozen=True)
class EvalUnit:
    """Score one checkpoint (base, or fine-tuned by ``finetune``) on ``tasks`` at ``shots``."""

    checkpoint: Checkpoint
    finetune: FinetuneUnit | None
    tasks: tuple[EvalTask, ...]
    shots: int
    limit: int | float | None
    scoring: str
    data: str
    backend: str
    dtype: str = "auto"
    """Part of the identity: scores differ by precision (batch size and device are not; the
    batch size is tested not to change scores)."""
    splits: str = DEFAULT_PROTOCOL
    """Split protocol (``paper`` or ``upstream``): which split of each set is scored."""
    skip_invalid: tuple[str, ...] = ()
    """Sets whose invalid rows are skipped (and counted) instead of stopping the set."""
    fewshot_seed: int | None = DEFAULT_FEWSHOT_SEED
    """The shot set: seed of the shot pool (``amuro_fewshot_seed``) and, with per-document
    shots, of lm-eval's draws; ``None`` for 0-shot units (no shots, no shot set)."""
    shot_sampling: str | None = DEFAULT_SHOT_MODE
    """``fixed`` or ``per_document`` (``amuro_shots``); ``None`` for 0-shot units."""
    kind: str = field(default="eval", init=False)

    @property
    def uid(self) -> str:
        """Stable id: hash of the typed identity (the fine-tune's full identity included).

        The shot set enters the hash only where it differs from what every unit had before it
        was an axis (seed 1234, fixed shots; or no shot set at 0 shots), so those units keep
        their ids, and their finished results, in existing study folders."""
        identity = asdict(self)
        for name, unchanged in (("fewshot_seed", (None, DEFAULT_FEWSHOT_SEED)),
                                ("shot_sampling", (None, DEFAULT_SHOT_MODE))):
            if identity[name] in unchanged:
                del identity[name]
        return _uid(self.kind, identity)

    @property
    def deps(self) -> tuple[str, ...]:
        """The fine-tune (or the demo pre-training) this evaluation needs."""
        if self.finetune is not None:
            return (self.finetune.uid,)
        return (self.checkpoint.origin,) if self.checkpoint.origin else ()

    @property
    def is_base(self) -> bool:
        """Whether this scores a never fine-tuned checkpoint."""
        return self.finetune is None

    def describe(self) -> str:
        """One-line human description."""
        what = (self.checkpoint.label if self.finetune is None
                else f"{self.checkpoint.label}+{self.finetune.task}"
                     f"(lr {self.finetune.learning_rate:g})")
        shot_set = ""
        if self.fewshot_seed is not None:
            shot_set = f" (shot set {self.fewshot_seed}" + (
                ", per document)" if self.shot_sampling == "per_document" else ")")
        return (f"eval {what}: {len(self.tasks)} tasks, {self.shots}-shot{shot_set}, "
                f"{self.splits} splits")

    def lm_eval_metadata(self) -> dict[str, Any]:
        """The ``amuro_*`` ``--metadata`` of this unit's lm-eval call (``amuro_tasks.harness``);
        the shot set's keys only where they differ from the plugin's defaults."""
        metadata: dict[str, Any] = {"amuro_data": self.data, "amuro_scoring": self.scoring,
                                    "amuro_split": self.splits}
        if self.skip_invalid:
            metadata["amuro_on_invalid"] = dict.fromkeys(self.skip_invalid, "skip")
        if self.fewshot_seed not in (None, DEFAULT_FEWSHOT_SEED):
            metadata["amuro_fewshot_seed"] = self.fewshot_seed
        if self.shot_sampling not in (None, DEFAULT_SHOT_MODE):
            metadata["amuro_shots"] = self.shot_sampling
        return metadata

    @property
    def fewshot_random_seed(self) -> int:
        """lm-eval's few-shot seed for this unit's call: the shot set's seed (it seeds the
        per-document draws; fixed shots do not use it), lm-eval's default at 0 shots."""
        return DEFAULT_FEWSHOT_SEED if self.fewshot_seed is None else self.fewshot_seed

    def identity(self) -> dict[str, Any]:
        """The JSON identity."""
        return asdict(self)


Unit = PretrainUnit | FinetuneUnit | EvalUnit

STAGES = ("pretrain", "base-eval", "finetune", "finetuned-eval")
"""Stage names, in order; a stage only depends on earlier ones."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


def _slug(text: str, limit: int = 60) -> str:
    return _UNSAFE.sub("-", text).strip("-.")[:limit] or "x"


def _checkpoint_slug(ckpt: Checkpoint) -> str:
    if ckpt.revision:
        return _slug(ckpt.revision)
    return f"step{ckpt.step}" if ckpt.step is not None else "main"


def unit_folder(unit: Unit) -> str:
    """The folder of ``unit`` under ``units/``, for people to read: its stage, checkpoint,
    fine-tune and shots (a shot set other than the default adds its seed, ``-perdoc``), then
    the hash of its id (``finetune/step10_mnli-lr0.001_<hash>``).

    Only ever derived from the unit, never parsed back: the identity is in ``unit.json`` and
    ``result.json``. Characters other than letters, digits and ``._@+=-`` become ``-``.
    """
    digest = unit.uid.rsplit("-", 1)[-1]
    if isinstance(unit, PretrainUnit):
        steps = "-".join(str(s) for s in unit.spec.save_steps)
        return f"pretrain/{_slug(unit.spec.name)}_steps-{_slug(steps)}_{digest}"
    if isinstance(unit, FinetuneUnit):
        return (f"finetune/{_checkpoint_slug(unit.base)}_{_slug(unit.task)}"
                f"-lr{unit.learning_rate:g}_{digest}")
    shots = f"{unit.shots}shot"
    if unit.shots and unit.fewshot_seed not in (None, DEFAULT_FEWSHOT_SEED):
        shots += f"-seed{unit.fewshot_seed}"
    if unit.shots and unit.shot_sampling not in (None, DEFAULT_SHOT_MODE):
        shots += "-perdoc" if unit.shot_sampling == "per_document" else f"-{unit.shot_sampling}"
    if unit.finetune is None:
        return f"base-eval/{_checkpoint_slug(unit.checkpoint)}_{shots}_{digest}"
    ft = unit.finetune
    return (f"finetuned-eval/{_checkpoint_slug(unit.checkpoint)}_{_slug(ft.task)}"
            f"-lr{ft.learning_rate:g}_{shots}_{digest}")


@dataclass
class Plan:
    """The planned grid of a study and where each unit's files live."""

    config: StudyConfig
    checkpoints: tuple[Checkpoint, ...]
    pretrain: PretrainUnit | None
    finetunes: tuple[FinetuneUnit, ...]
    base_evals: tuple[EvalUnit, ...]
    finetuned_evals: tuple[EvalUnit, ...]

    @property
    def output_dir(self) -> Path:
        """Root folder of the study's files."""
        return self.config.output_dir

    def stages(self) -> list[tuple[str, tuple[Unit, ...]]]:
        """``(stage name, units)`` in execution order; empty stages are left out."""
        stages: list[tuple[str, tuple[Unit, ...]]] = [
            ("pretrain", (self.pretrain,) if self.pretrain else ()),
            ("base-eval", self.base_evals),
            ("finetune", self.finetunes),
            ("finetuned-eval", self.finetuned_evals),
        ]
        return [(name, units) for name, units in stages if units]

    def units(self) -> dict[str, Unit]:
        """Every unit by id."""
        return {u.uid: u for _, units in self.stages() for u in units}

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units().values())

    @functools.cached_property
    def unit_folders(self) -> dict[str, str]:
        """Every unit's folder under ``units/``, by id (:func:`unit_folder`)."""
        return {uid: unit_folder(unit) for uid, unit in self.units().items()}

    def unit_dir(self, uid: str) -> Path:
        """The folder of unit ``uid`` (identity, result, lm-eval output, fine-tuned model)."""
        return self.output_dir / "units" / self.unit_folders[uid]

    def report_dir(self) -> Path:
        """Where the report is written."""
        return self.output_dir / "report"

    def locate(self, checkpoint: Checkpoint) -> tuple[str, str | None]:
        """``(pretrained, revision)`` to load ``checkpoint`` with (path or Hub id)."""
        if checkpoint.origin is not None:
            return str(self.unit_dir(checkpoint.origin) / f"step_{checkpoint.step}"), None
        if self.config.is_local_model:
            root = Path(self.config.model)
            if checkpoint.revision in (None, "main") and not (root / "main").is_dir():
                return str(root), None
            return str(root / str(checkpoint.revision)), None
        return checkpoint.model, checkpoint.revision

    def finetuned_model_dir(self, unit: FinetuneUnit) -> Path:
        """Output folder of a fine-tune (``amuro_sft``'s ``output_dir``)."""
        return self.unit_dir(unit.uid) / "model"


def build_plan(config: StudyConfig, *, refs: list[str] | None = None) -> Plan:
    """Plan the grid of ``config``: base evaluations, fine-tunes and fine-tuned evaluations.

    ``steps`` are resolved to Hub branches here (``refs`` overrides the Hub listing in tests),
    so a bad step fails before any work.
    """
    pretrain = PretrainUnit(config.pretrain) if config.pretrain else None
    if pretrain is not None:
        checkpoints = tuple(
            Checkpoint(pretrain.spec.name, f"step{s}", s, origin=pretrain.uid)
            for s in pretrain.spec.save_steps
        )
    else:
        revisions: tuple[RevisionSpec, ...] = config.revisions or resolve_steps(
            config.model, config.steps, refs, with_main=config.steps_main
        )
        checkpoints = tuple(Checkpoint(config.model, r.revision, r.step) for r in revisions)
    identities = [recipe_identity(r) for r in config.finetune.recipes.values()]
    finetunes = [FinetuneUnit(base=ckpt, recipe=ident)
                 for ckpt in checkpoints for ident in identities]
    tasks = tuple(EvalTask(s.name, f) for s in config.eval.sets for f in s.formats)
    ev = config.eval

    # one unit per shot count and shot set; a 0-shot unit shows no shots, so it has no shot set
    shot_sets = [(shots, seed, sampling) for shots in ev.shots
                 for sampling, seed in ([(None, None)] if shots == 0 else
                                        [(m, s) for m in ev.shot_sampling
                                         for s in ev.fewshot_seeds])]

    def evals(ckpt: Checkpoint, finetune: FinetuneUnit | None) -> list[EvalUnit]:
        return [EvalUnit(ckpt, finetune, tasks, shots, ev.limit, ev.scoring, config.data,
                         config.backend.eval, config.backend.dtype, ev.splits, ev.skip_invalid,
                         seed, sampling)
                for shots, seed, sampling in shot_sets]

    base_evals = [u for c in checkpoints for u in evals(c, None)] if tasks else []
    finetuned_evals = [u for f in finetunes for u in evals(f.base, f)] if tasks else []
    return Plan(config, checkpoints, pretrain, tuple(finetunes), tuple(base_evals),
                tuple(finetuned_evals))


# --------------------------------------------------------------------------- cost estimate
#: Scored rows per set and split on the Hub (the datasets' split sizes; notes/paper-release.md,
#: the dataset cards, and the paper's scores for ARC/OBQA/SciQ validation). The estimate uses
#: ``limit`` where it is smaller; fixture and mirror sizes are counted.
HUB_SPLIT_SIZES: dict[str, dict[str, int]] = {
    "mnli_matched": {"validation_matched": 9815},
    "mnli_mismatched": {"validation_mismatched": 9832},
    "rte": {"validation": 277}, "gpt3nli": {"train": 29936}, "paws": {"test": 8000},
    "qqp": {"validation": 40430}, "stsb": {"validation": 1500}, "xsum": {"test": 11334},
    "xlsum": {"test": 11535}, "cnn": {"test": 11490}, "socialiqa": {"validation": 1954},
    "sciq": {"test": 1000}, "tweetqa": {"validation": 1086},
    "arc_easy": {"validation": 570, "test": 2376}, "arc_challenge": {"validation": 299,
                                                                      "test": 1172},
    "openbookqa": {"validation": 500, "test": 500}, "hellaswag": {"validation": 10042},
    "boolq": {"validation": 3270}, "sciq_mc": {"validation": 1000, "test": 1000},
    # LLMBar Natural 100, Adversarial Neighbor+GPTInst+GPTOut+Manual 134+92+47+46
    "llmbar_natural": {"Natural": 100}, "llmbar_adversarial": {"Adversarial": 319},
}


def _count_rows(path: Path) -> int | None:
    """Rows of a mirror file, counted without decoding it (a file the run cannot read is the
    preflight's and the loader's to report, with its line; here it only has no size)."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:  # noqa: BLE001 - unreadable: size unknown
            return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _set_size(name: str, data: str, protocol: str = DEFAULT_PROTOCOL) -> int | None:
    from amuro_tasks.loading import split_names
    from amuro_tasks.upstream.plan import split_label

    spec = get_spec(name)
    scored = spec.split_for(protocol)
    if data == "hub":
        return HUB_SPLIT_SIZES.get(name, {}).get(split_label(scored))
    from amuro_tasks.sources import FIXTURE_DIR, mirror_file

    root = FIXTURE_DIR if data == "fixtures" else Path(data)
    rows = 0
    for split in split_names(scored):
        path = mirror_file(spec.ref, split, root)
        count = None if path is None else _count_rows(path)
        if count is None:
            return None
        rows += count
    if spec.fewshot_split is None:  # the shot pool is carved out of the scored split
        from amuro_tasks.loading import FEWSHOT_POOL_SIZE

        rows = max(rows - min(FEWSHOT_POOL_SIZE, rows // 2), 1)
    return rows


def _limited(n: int | None, limit: int | float | None) -> int | None:
    if n is None or limit is None:
        return n
    if isinstance(limit, float):
        return int(math.ceil(n * limit))
    return min(n, int(limit))


@dataclass
class CostEstimate:
    """What a plan costs, in counts that do not depend on hardware, plus a time estimate
    from units already measured in this output folder (if any)."""

    units: dict[str, int]
    pending: dict[str, int]
    model_loads: int
    scored_examples: int
    generated_examples: int
    finetune_steps: int
    measured_seconds: dict[str, float]
    estimated_seconds: float | None
    unknown_sets: tuple[str, ...] = ()
    """Eval sets whose size is not known here (not counted in ``scored_examples``)."""
    unsized_finetunes: int = 0
    """Fine-tunes on a whole training split or a fraction of it (``num_train_examples: null``,
    ``sample_fraction``): steps not counted."""

    def lines(self) -> list[str]:
        """Human-readable lines for ``amuro study plan``."""
        out = [f"units: {', '.join(f'{k} {v}' for k, v in self.units.items())}",
               f"to do: {', '.join(f'{k} {v}' for k, v in self.pending.items())}",
               f"model loads for evaluation: {self.model_loads}",
               f"scored examples: {self.scored_examples:,} "
               f"(of which generation, 60 new tokens max: {self.generated_examples:,})"
               + (f" + sets of unknown size: {', '.join(self.unknown_sets)}"
                  if self.unknown_sets else ""),
               f"fine-tuning optimizer steps: {self.finetune_steps:,}"
               + (f" + {self.unsized_finetunes} fine-tune(s) on a whole training split or a "
                  "fraction of it (size unknown until loaded)" if self.unsized_finetunes
                  else "")]
        if self.measured_seconds:
            per = ", ".join(f"{k} {v:.1f}s/unit" for k, v in self.measured_seconds.items())
            out.append(f"measured here so far: {per}")
        if self.estimated_seconds is not None:
            out.append(f"estimated time for what is left (from those): "
                       f"{self.estimated_seconds / 60:.1f} min on this hardware, one worker")
        else:
            out.append("time: no unit measured yet in this output folder")
        return out


def estimate_cost(plan: Plan, done: set[str] | None = None,
                  durations: dict[str, list[float]] | None = None) -> CostEstimate:
    """Count units, model loads, scored/generated examples and fine-tuning steps of ``plan``.

    ``done`` ids are excluded from "to do"; ``durations`` (seconds per unit, by stage, read from
    finished results) turn the remaining units into a time estimate.
    """
    done = done or set()
    units: dict[str, int] = {}
    pending: dict[str, int] = {}
    for stage, members in plan.stages():
        units[stage] = len(members)
        pending[stage] = sum(1 for u in members if u.uid not in done)
    evals = [*plan.base_evals, *plan.finetuned_evals]
    scored = generated = 0
    unknown: set[str] = set()
    for unit in evals:
        for task in unit.tasks:
            size = _set_size(task.eval_set, unit.data, unit.splits)
            if size is None:
                unknown.add(task.eval_set)
            n = _limited(size, unit.limit) or 0
            scored += n
            if get_spec(task.eval_set).metric == "rougeL":  # generate_until
                generated += n
    steps = unsized = 0
    for ft in plan.finetunes:
        if ft.max_steps > 0:
            steps += ft.max_steps
        elif ft.num_train_examples is None or ft.sample_fraction is not None:
            unsized += 1
        else:
            steps += int(math.ceil(ft.num_train_examples / ft.effective_batch_size * ft.epochs))
    measured = {k: sum(v) / len(v) for k, v in (durations or {}).items() if v}
    estimated: float | None = None
    if measured and all(pending[s] == 0 or s in measured for s in pending):
        estimated = sum(pending[s] * measured.get(s, 0.0) for s in pending)
    return CostEstimate(units, pending, len(evals), scored, generated, steps, measured, estimated,
                        tuple(sorted(unknown)), unsized)
