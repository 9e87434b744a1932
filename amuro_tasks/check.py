"""The data preflight of one split: read its first rows from their real source and say what a run
would meet there, before any model is loaded (``amuro data check``).

:func:`check_split` reads the first ``n`` rows of one split of an evaluation set -- from the Hub
(streamed: nothing else is downloaded), the authors' GitHub files, a mirror or the fixtures,
exactly as a run reads them (:func:`amuro_tasks.sources.open_split`) -- validates every row with
the set's own normaliser, and reports: where the rows came from (repository and commit, or
file), rows read and usable, the label distribution, rows dropped as documented (e.g. XSum's
empty documents), invalid rows by kind (hidden label, empty field, boolean label...) with the
first messages, and the longest input in tokens of a given tokenizer. A :class:`SplitReport`
lists as ``fatal`` whatever would stop the run: an unreadable split, no usable row, or an invalid
row where the run's ``on_invalid`` is ``error``.

``amuro_sft.data.check_tulu`` does the same for TULU's conversations; the study's command
(:mod:`amuro_study.data_check`) decides which splits a config touches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from amuro_tasks import rows as rows_mod
from amuro_tasks.family import FORMATS, DatasetSpec
from amuro_tasks.prompts import render_example, render_prompt
from amuro_tasks.rows import AmuroDataError, Row
from amuro_tasks.sources import DataRef, SplitSource, open_split

DEFAULT_ROWS = 300
"""Rows read per split unless told otherwise: enough to meet a split's common defects, few
enough to check every split of a study in seconds."""
ROLES = ("scored", "shots", "training")
"""What a split is used for: scored rows, the few-shot pool, fine-tuning examples."""
EXAMPLES_KEPT = 3
"""Messages of invalid rows kept per split (the counts cover them all)."""


@dataclass
class SplitReport:
    """What the first rows of one split hold (JSON-ready with :meth:`as_dict`)."""

    name: str
    """Evaluation set (or ``tulu``)."""
    split: str
    role: str
    """One of :data:`ROLES`."""
    on_invalid: str = "error"
    source: dict[str, Any] = field(default_factory=dict)
    """:class:`~amuro_tasks.sources.SplitSource` of the read (repository and commit, or file)."""
    rows_read: int = 0
    usable: int = 0
    labels: dict[str, int] | None = None
    """Gold labels of the usable rows (label words, or option positions), ``None`` when the set
    has no fixed labels (generation)."""
    documented_empty: int = 0
    """Rows dropped as their dataset documents (e.g. XSum's empty documents)."""
    invalid: dict[str, int] = field(default_factory=dict)
    """Invalid rows by kind (:attr:`amuro_tasks.rows.AmuroDataError.kind`)."""
    examples: list[str] = field(default_factory=list)
    """The first messages of invalid rows."""
    longest_input_tokens: int | None = None
    longest_input_row: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """Extra counts of the kind of data (TULU's empty turns by role...)."""
    notes: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    """Why the run would stop on this split (empty: it would not)."""

    @property
    def ok(self) -> bool:
        """Nothing here would stop the run."""
        return not self.fatal

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def count_invalid(self, err: AmuroDataError) -> None:
        """Count one invalid row (and keep its message if among the first)."""
        self.invalid[err.kind] = self.invalid.get(err.kind, 0) + 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(str(err))

    def conclude(self) -> SplitReport:
        """Fill in ``fatal`` from the counts (call once the rows are read)."""
        n_invalid = sum(self.invalid.values())
        if n_invalid and self.on_invalid == "error" and self.role != "shots":
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.invalid.items()))
            self.fatal.append(f"{n_invalid} invalid rows ({kinds}) and on_invalid is 'error': "
                              f"{self.examples[0]}")
        if self.rows_read and not self.usable:
            self.fatal.append(f"none of the {self.rows_read} rows read is usable")
        return self


def read_first_rows(ref: DataRef, split: str, source: str, n: int | None,
                    name: str | None = None) -> tuple[list[Row], SplitSource]:
    """The first ``n`` rows (``None``: all) of a split, as a run would read them; from the Hub
    they are streamed, so that only those rows are downloaded."""
    data, record = open_split(ref, split, source, streaming=source == "hub", name=name)
    if source == "hub":
        rows = list(data if n is None else islice(data, n))
        if not rows:
            raise AmuroDataError(f"{name or ref.path}/{split}: the split is empty at "
                                 f"{record.location}")
    else:
        rows = data.to_list() if n is None or n >= len(data) else \
            data.select(range(n)).to_list()
    return rows, record


def _label(spec: DatasetSpec, doc: dict[str, Any]) -> str | None:
    if "label" not in doc:
        return None
    if spec.kind == "multiple_choice":  # each row brings its options: the gold's position
        return f"#{doc['label'] + 1}"
    return str(doc["target"])


def _shape(row: Row, doc: dict[str, Any], info: dict[str, Counter[str]]) -> None:
    """Counts of a choice row's shape: options per row, letter or digit answer keys (ARC)."""
    if "choices" in doc and isinstance(doc.get("label"), int):
        info.setdefault("options_per_row", Counter())[str(len(doc["choices"]))] += 1
    key = row.get("answerKey")
    if isinstance(key, str) and key.strip():
        kind = "digits" if key.strip().isdigit() else "letters"
        info.setdefault("answer_keys", Counter())[kind] += 1


def _tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_split(spec: DatasetSpec, split: str, source: str, *, role: str = "scored",
                n: int | None = DEFAULT_ROWS, on_invalid: str = "error",
                formats: Sequence[str] = FORMATS, tokenizer: Any = None,
                train_format: str | None = None, max_length: int | None = None
                ) -> SplitReport:
    """Check the first ``n`` rows of ``split`` of ``spec`` for use as ``role``.

    ``formats``: the prompt formats the run renders (the longest input is the longest prompt
    over them); for ``role="training"``, ``train_format`` is the fine-tuning format and the
    longest input is a whole training example (prompt and completion), noted when over
    ``max_length``.
    """
    report = SplitReport(spec.name, split, role, on_invalid)
    try:
        raw, record = read_first_rows(spec.ref, split, source, n, spec.name)
    except AmuroDataError as err:
        report.fatal.append(str(err))
        return report
    except Exception as err:  # noqa: BLE001 - a network error mid-stream: report, don't crash
        report.fatal.append(f"{spec.name}/{split}: reading failed: {type(err).__name__}: {err}")
        return report
    report.source = record.as_dict()
    report.notes += record.notes
    report.rows_read = len(raw)
    labels: Counter[str] = Counter()
    shape: dict[str, Counter[str]] = {}
    longest = -1
    for index, row in enumerate(raw):
        where = f"{spec.name}/{split} row {index}"
        missing = [c for c in spec.skip_if_empty if c not in row]
        if missing:  # the run stops on it whatever on_invalid says (rows.iter_docs)
            report.fatal.append(f"{where}: missing field {missing[0]!r}")
            break
        if any(rows_mod._is_empty(row[c]) for c in spec.skip_if_empty):
            report.documented_empty += 1
            continue
        try:
            doc = spec.normalize(row, where)
        except AmuroDataError as err:
            report.count_invalid(err)
            continue
        report.usable += 1
        label = _label(spec, doc)
        if label is not None:
            labels[label] += 1
        if spec.kind == "multiple_choice":
            _shape(row, doc, shape)
        if tokenizer is not None:
            if role == "training" and train_format is not None:
                example = render_example(spec.family, train_format, doc)
                size = _tokens(tokenizer, example["prompt"] + example["completion"])
            else:
                size = max(_tokens(tokenizer, render_prompt(spec.family, f, doc))
                           for f in formats)
            if size > longest:
                longest, report.longest_input_row = size, index
    if spec.kind != "generation":
        report.labels = dict(sorted(labels.items()))
    report.info = {k: dict(sorted(v.items())) for k, v in shape.items()}
    if longest >= 0:
        report.longest_input_tokens = longest
        if max_length is not None and longest > max_length:
            report.notes.append(f"longest training example ({longest} tokens) exceeds "
                                f"max_length {max_length}: its long input field is truncated")
    if report.documented_empty:
        report.notes.append(f"{report.documented_empty} rows dropped as documented "
                            f"(empty {', '.join(spec.skip_if_empty)})")
    if report.invalid and (on_invalid == "skip" or role == "shots"):
        report.notes.append(f"{sum(report.invalid.values())} invalid rows would be skipped")
    return report.conclude()


def summary_line(reports: Iterable[SplitReport]) -> str:
    """``N splits checked, M would stop the run``."""
    reports = list(reports)
    bad = sum(not r.ok for r in reports)
    return f"{len(reports)} splits checked, {bad} would stop the run"
