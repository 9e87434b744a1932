"""Rows to docs: validation, normalisation and the shot pool of amuro's evaluation sets.

This module imports only the Python standard library, on purpose: the plugin
(:mod:`amuro_tasks.loading`) uses it, and ``python -m amuro_tasks export-upstream`` copies it
byte for byte into the exported lm-eval task folder (as ``amuro_rows.py``), so the plugin and a
stock lm-eval running the export turn the same raw rows into the same docs and the same shots.

A *doc* holds the family's prompt fields, ``target`` (the verbalised answer), and for choice
tasks ``choices`` (the verbalised options) and ``label`` (the gold index). Every row is
validated as it is normalised: a hidden label (``-1``/``None``/``""``), a missing field or an
empty input raises :class:`AmuroDataError` naming the set, the split and the row.

The normaliser of each evaluation set is a :class:`Normalizer`: a kind (one function below) and
its parameters (column names, label mapping, label words), declared in the set's family file
(``amuro_tasks/families/``); its ``repr`` is the Python expression that rebuilds it, which is how
the exporter writes it into the exported ``utils.py``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("amuro")

Row = Mapping[str, Any]
Doc = dict[str, Any]


class AmuroDataError(ValueError):
    """A dataset row (or a whole split) cannot be used for evaluation or training.

    The message always names the evaluation set, the split and, where it applies, the row;
    ``kind`` says what is wrong in a few words (``missing field``, ``empty field``, ``hidden
    label``...), for counts such as ``amuro data check``'s.
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def _missing(row: Row, column: str, where: str) -> AmuroDataError:
    return AmuroDataError(f"{where}: missing field {column!r} (fields: {sorted(row)})",
                          "missing field")


# --------------------------------------------------------------------------- validators
def text(row: Row, column: str, where: str) -> str:
    """The non-empty string in ``row[column]``, or an error naming ``where``."""
    if column not in row:
        raise _missing(row, column, where)
    value = row[column]
    if value is None:
        raise AmuroDataError(f"{where}: field {column!r} is None", "empty field")
    if not isinstance(value, str):
        raise AmuroDataError(f"{where}: field {column!r} is {type(value).__name__}, expected text",
                             "not text")
    if not value.strip():
        raise AmuroDataError(f"{where}: field {column!r} is empty", "empty field")
    return value


def string(row: Row, column: str, where: str) -> str:
    """``row[column]`` as a string that may be empty (documented so in the real data)."""
    if column not in row:
        raise _missing(row, column, where)
    value = row[column]
    if not isinstance(value, str):
        raise AmuroDataError(
            f"{where}: field {column!r} is {type(value).__name__}, expected text (may be empty)",
            "not text")
    return value


def class_label(row: Row, column: str, mapping: Mapping[Any, int], where: str) -> int:
    """Map ``row[column]`` through ``mapping``; hidden (-1/None), boolean or unknown labels are
    errors (a boolean would otherwise be read as 0/1: ``True == 1`` in Python)."""
    if column not in row:
        raise _missing(row, column, where)
    value = row[column]
    if isinstance(value, str):
        value = value.strip()  # old social_i_qa copies carry "1\n"
    if isinstance(value, bool):
        raise AmuroDataError(
            f"{where}: label {column!r} is the boolean {str(value).lower()}; expected one of "
            f"{sorted(mapping, key=str)} (a mirror must keep the dataset's label encoding)",
            "boolean label")
    if value is None or value == -1 or value == "-1" or value == "":
        raise AmuroDataError(
            f"{where}: gold label {column!r} is hidden ({value!r}); this split has no usable "
            "labels, evaluate on a labelled split instead", "hidden label"
        )
    if value not in mapping:
        raise AmuroDataError(
            f"{where}: label {column!r}={value!r} is not one of {sorted(mapping, key=str)}",
            "unknown label"
        )
    return mapping[value]


def string_list(value: Any, column: str, where: str, *, min_len: int = 2) -> list[str]:
    """``value`` as a list of at least ``min_len`` non-empty strings, or an error."""
    if not isinstance(value, (list, tuple)):
        kind = type(value).__name__
        raise AmuroDataError(f"{where}: field {column!r} is {kind}, expected a list", "bad choices")
    if len(value) < min_len:
        raise AmuroDataError(
            f"{where}: field {column!r} has {len(value)} entries, expected at least {min_len}"
        )
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise AmuroDataError(f"{where}: {column}[{i}] is {item!r}, expected non-empty text",
                                 "bad choices")
        out.append(item)
    return out


def lettered_choices(row: Row, where: str) -> tuple[list[str], list[str], int]:
    """ARC/OpenBookQA ``choices: {text: [...], label: [...]}`` + ``answerKey`` -> texts, gold.

    Labels are usually ``A``-``D`` but some ARC rows use ``1``-``4`` and some have 3 or 5
    options; the gold index is the position of ``answerKey`` among the labels, as upstream's
    ``choices.label.index(answerKey)`` (``answerKey`` is stripped, as upstream OpenBookQA does).
    """
    if "choices" not in row:
        raise _missing(row, "choices", where)
    choices = row["choices"]
    if not isinstance(choices, Mapping) or "text" not in choices or "label" not in choices:
        raise AmuroDataError(
            f"{where}: field 'choices' is {choices!r}, expected {{'text': [...], 'label': [...]}}",
            "bad choices")
    texts = string_list(choices["text"], "choices.text", where)
    labels = string_list(choices["label"], "choices.label", where)
    if len(texts) != len(labels):
        raise AmuroDataError(
            f"{where}: {len(texts)} choice texts but {len(labels)} choice labels", "bad choices"
        )
    if len(set(labels)) != len(labels):
        raise AmuroDataError(f"{where}: duplicate choice labels {labels}", "bad choices")
    key = row.get("answerKey")
    if "answerKey" not in row:
        raise _missing(row, "answerKey", where)
    if not isinstance(key, str) or not key.strip():
        raise AmuroDataError(
            f"{where}: gold label 'answerKey' is hidden ({key!r}); evaluate on a labelled split",
            "hidden label")
    if key.strip() not in labels:
        raise AmuroDataError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}",
                             "unknown label")
    return texts, labels, labels.index(key.strip())


def hellaswag_preprocess(value: str) -> str:
    """Upstream's HellaSwag text clean-up (lm_eval/tasks/hellaswag/utils.py, copied verbatim).

    Brackets are artefacts of the WikiHow portion of HellaSwag.
    """
    value = value.strip()
    value = value.replace(" [title]", ". ")
    value = re.sub("\\[.*?\\]", "", value)
    value = value.replace("  ", " ")
    return value


# --------------------------------------------------------------------------- normaliser kinds
# Each kind: (row, where, **params) -> doc. Fields are read in a fixed order, so the first
# defect of a row is the one reported.
def _with_choices(fields: Doc, choices: Sequence[str], label: int) -> Doc:
    return {**fields, "choices": list(choices), "label": label, "target": choices[label]}


def _labelled(row: Row, where: str, *, fields: Mapping[str, str], label: str,
              label_map: Mapping[Any, int], choices: Sequence[str]) -> Doc:
    """A fixed label set: gold = ``label_map[row[label]]``; doc field <- non-empty column."""
    gold = class_label(row, label, label_map, where)
    return _with_choices({name: text(row, col, where) for name, col in fields.items()},
                         choices, gold)


def _similarity(row: Row, where: str, *, fields: Mapping[str, str], label: str,
                threshold: float, choices: Sequence[str]) -> Doc:
    """A 0-5 similarity score: gold is ``choices[1]`` when the score exceeds ``threshold``."""
    if label not in row:
        raise _missing(row, label, where)
    score = row[label]
    if score is None or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 5.0:
        raise AmuroDataError(
            f"{where}: similarity score {score!r} is hidden or outside [0, 5]; STS-B test labels "
            "are hidden (-1), evaluate on validation", "hidden label"
        )
    return _with_choices({name: text(row, col, where) for name, col in fields.items()},
                         choices, int(float(score) > threshold))


def _text_to_text(row: Row, where: str, *, fields: Mapping[str, str], target: str) -> Doc:
    """Generation: doc fields <- non-empty columns, ``target`` <- a non-empty column."""
    doc = {name: text(row, col, where) for name, col in fields.items()}
    return {**doc, "target": text(row, target, where)}


def _answer_by_label(row: Row, where: str, *, context: str, answers: Sequence[str],
                     label: str, label_map: Mapping[Any, int], target: str) -> Doc:
    """Question generation from a context and the gold answer among ``answers`` columns."""
    gold = class_label(row, label, label_map, where)
    answer = text(row, answers[gold], where)
    return {"context": text(row, context, where), "answer": answer,
            "target": text(row, target, where)}


def _first_answer(row: Row, where: str, *, context: str, answers: str, target: str) -> Doc:
    """Question generation from a context and the first of a list of gold answers."""
    found = row.get(answers)
    if answers not in row:
        raise _missing(row, answers, where)
    if not isinstance(found, list) or not found:
        raise AmuroDataError(f"{where}: field {answers!r} is {found!r}; hidden or empty answers",
                             "hidden label")
    first = f"{answers}[0]"
    answer = text({first: found[0]}, first, where)
    return {"context": text(row, context, where), "answer": answer,
            "target": text(row, target, where)}


def _lettered(row: Row, where: str, *, fields: Mapping[str, str]) -> Doc:
    """ARC/OpenBookQA: lettered choices, gold ``answerKey`` (see :func:`lettered_choices`)."""
    texts, _, gold = lettered_choices(row, where)
    return _with_choices({name: text(row, col, where) for name, col in fields.items()},
                         texts, gold)


def _hellaswag(row: Row, where: str) -> Doc:
    """HellaSwag: upstream's ``process_docs`` fields, plus ``activity_label`` and ``context``."""
    # HellaSwag labels are strings "0".."3"; the test split hides them ("").
    if "endings" not in row:
        raise _missing(row, "endings", where)
    endings = string_list(row["endings"], "endings", where)
    labels = {str(i): i for i in range(len(endings))} | {i: i for i in range(len(endings))}
    gold = class_label(row, "label", labels, where)
    activity = text(row, "activity_label", where)
    ctx = text(row, "ctx_a", where) + " " + string(row, "ctx_b", where).capitalize()
    return _with_choices(
        {"query": hellaswag_preprocess(activity + ": " + ctx),  # upstream's process_docs
         "activity_label": hellaswag_preprocess(activity),
         # .strip(): a removed leading "[header]" leaves a space
         "context": hellaswag_preprocess(ctx).strip()},
        [hellaswag_preprocess(e) for e in endings], gold,
    )


def _column_choices(row: Row, where: str, *, choices: Sequence[str], gold: int,
                    optional: Mapping[str, str], fields: Mapping[str, str]) -> Doc:
    """Choices from columns (gold at a fixed position); ``optional`` fields may be empty and
    are left-stripped (SciQ's support passage, as upstream's ``support.lstrip()``)."""
    texts = [text(row, c, where) for c in choices]
    doc = {name: string(row, col, where).lstrip() for name, col in optional.items()}
    doc |= {name: text(row, col, where) for name, col in fields.items()}
    return _with_choices(doc, texts, gold)


KINDS: dict[str, Callable[..., Doc]] = {
    "labelled": _labelled,
    "similarity": _similarity,
    "text_to_text": _text_to_text,
    "answer_by_label": _answer_by_label,
    "first_answer": _first_answer,
    "lettered": _lettered,
    "hellaswag": _hellaswag,
    "column_choices": _column_choices,
}


@dataclass(frozen=True)
class Normalizer:
    """One set's row normaliser: a kind of :data:`KINDS` and its parameters (plain literals, so
    that ``repr`` is the Python expression that rebuilds it)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown normaliser kind {self.kind!r}; known: {sorted(KINDS)}")

    def __call__(self, row: Row, where: str) -> Doc:
        return KINDS[self.kind](row, where, **self.params)


@dataclass(frozen=True)
class RowRules:
    """What turning one set's rows into docs needs, besides the rows."""

    name: str
    """Evaluation set name, as in error messages (``mnli_matched/validation_matched row 3``)."""
    normalize: Normalizer
    source: str = ""
    """Dataset (and config) the rows come from, for error messages."""
    skip_if_empty: tuple[str, ...] = ()
    """Raw columns *documented* as sometimes empty; such rows are dropped (and counted). A row
    that lacks the column altogether is still an error (a wrong mirror, not a known defect)."""
    fewshot_max_words: dict[str, int] | None = None
    """Doc fields capped (in words) for rows to be eligible as shots."""


# --------------------------------------------------------------------------- rows -> docs
def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def iter_docs(
    rules: RowRules, split: str, rows: Sequence[Row], order: Iterable[int] | None,
    on_invalid: str, max_words: Mapping[str, int] | None = None,
    drop_counts: dict[str, int] | None = None, hint: str = "",
) -> Iterator[Doc]:
    """Normalise ``rows`` (all in order, or the indices in ``order``) to docs, each with its
    ``row_index`` in the split.

    Rows dropped on the way (documented empty fields, invalid rows when ``on_invalid="skip"``,
    shot candidates over ``max_words``) are counted and logged when the iteration ends, also
    when the caller stops early; pass ``drop_counts`` to receive the counts (reason -> rows).
    ``hint`` is appended to the error of an invalid row when ``on_invalid="error"``.
    """
    dropped: dict[str, int] = {} if drop_counts is None else drop_counts
    pairs = enumerate(rows) if order is None else ((i, rows[i]) for i in order)
    try:
        for index, row in pairs:
            where = f"{rules.name}/{split} row {index}"
            for col in rules.skip_if_empty:
                if col not in row:
                    raise AmuroDataError(f"{where}: missing field {col!r} (fields: "
                                         f"{sorted(row)}; source {rules.source})",
                                         "missing field")
            if any(_is_empty(row[col]) for col in rules.skip_if_empty):
                dropped["documented empty field"] = dropped.get("documented empty field", 0) + 1
                continue
            try:
                doc = rules.normalize(row, where)
            except AmuroDataError as err:
                if on_invalid == "error":
                    raise AmuroDataError(f"{err} (source {rules.source}){hint}",
                                         err.kind) from None
                dropped["invalid"] = dropped.get("invalid", 0) + 1
                continue
            if max_words is not None and any(
                len(str(doc[f]).split()) > cap for f, cap in max_words.items()
            ):
                dropped["too long for a shot"] = dropped.get("too long for a shot", 0) + 1
                continue
            doc["row_index"] = index
            yield doc
    finally:
        for reason, count in dropped.items():
            log.warning("%s/%s: dropped %d rows (%s)", rules.name, split, count, reason)


def take(docs: Iterable[Doc], n: int) -> list[Doc]:
    """The first ``n`` docs (stops the iteration there)."""
    out: list[Doc] = []
    for doc in docs:
        out.append(doc)
        if len(out) == n:
            break
    return out


_NOT_INPUT = frozenset({"row_index", "source_split", "label", "target"})


def input_key(doc: Doc) -> str:
    """A doc's input (every field but its position and answer), as one comparable string."""
    return json.dumps({k: v for k, v in doc.items() if k not in _NOT_INPUT}, sort_keys=True,
                      default=str)


def unlike(candidates: Iterable[Doc], scored: Iterable[Doc], where: str) -> Iterator[Doc]:
    """Shot candidates whose input is not also a scored document's (train/test duplicates,
    e.g. QQP's repeated questions, would show the model a scored item with its answer)."""
    seen = {input_key(doc) for doc in scored}
    skipped = 0
    try:
        for doc in candidates:
            if input_key(doc) in seen:
                skipped += 1
                continue
            yield doc
    finally:
        if skipped:
            log.warning("%s: %d shot candidates skipped (same input as a scored document)",
                        where, skipped)


def shot_pool(rules: RowRules, split: str, rows: Sequence[Row], order: Sequence[int],
              scored: Iterable[Doc], size: int) -> list[Doc]:
    """The shot pool drawn from a training split: in the seeded ``order``, the first ``size``
    rows that are valid, short enough (``fewshot_max_words``) and whose input is no scored
    document's."""
    candidates = iter_docs(rules, split, rows, order, "skip", rules.fewshot_max_words)
    return take(unlike(candidates, scored, f"{rules.name}/{split}"), size)


def carve(rules: RowRules, split: str, rows: Sequence[Row], order: Sequence[int], size: int,
          on_invalid: str, hint: str = "", drop_counts: dict[str, int] | None = None
          ) -> tuple[list[Doc], list[Doc]]:
    """Scored docs and shot pool of a set with only one split: the pool is the first ``size``
    valid, short enough rows in the seeded ``order``; every other row is scored (rows dropped
    from the scored ones are counted into ``drop_counts``, as :func:`iter_docs`)."""
    pool = take(iter_docs(rules, split, rows, order, "skip", rules.fewshot_max_words), size)
    held_out = {doc["row_index"] for doc in pool}
    kept = [i for i in range(len(rows)) if i not in held_out]
    return list(iter_docs(rules, split, rows, kept, on_invalid, drop_counts=drop_counts,
                          hint=hint)), pool


def pooled(candidates: Sequence[Doc], order: Sequence[int], size: int) -> list[Doc]:
    """A shot pool from already validated docs (several splits, LLMBar): the first ``size`` in
    the seeded ``order``."""
    return [candidates[i] for i in order[:size]]
