"""Dataset specifications: where each evaluation set lives and how its rows become docs.

A spec names the real Hugging Face dataset (id, config, revision, splits) and a ``normalize``
function that turns one raw row, in the dataset's own schema, into a *doc*: the family's prompt
fields plus ``target`` (the verbalised answer) and, for classification, ``label`` (gold index)
and ``choices`` (the verbalised label set). ``normalize`` validates as it goes and raises
:class:`~amuro_tasks.errors.AmuroDataError` naming the set, split and row on hidden labels
(``-1``/``None``), missing fields and empty inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amuro_tasks.errors import AmuroConfigError, AmuroDataError

Row = Mapping[str, Any]
Doc = dict[str, Any]

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
RTE_LABELS: tuple[str, ...] = ("entailment", "neutral")
PARAPHRASE_LABELS: tuple[str, ...] = ("no", "yes")
STSB_PARAPHRASE_THRESHOLD = 3.5
"""STS-B similarity above this (0-5 scale) counts as a paraphrase, as in the paper's release."""

CLASSIFICATION_FAMILIES = frozenset({"nli", "paraphrase"})

SHOT_WORDS = {"document": 200}
"""Summarization shots: documents of at most 200 words, so that 4 shots plus the scored
document fit OLMo-1B's 2048-token window instead of being cut from the left by lm-eval."""


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation set: its real source and how to turn its rows into validated docs."""

    name: str
    family: str
    path: str
    config: str | None
    eval_split: str | tuple[str, ...]
    """Split scored; a tuple of splits is scored as one set (LLMBar's four Adversarial_*)."""
    normalize: Callable[[Row, str], Doc]
    fewshot_split: str | tuple[str, ...] | None = "train"
    """Split(s) the few-shot pool is drawn from; ``None`` carves it out of the eval split."""
    revision: str | None = None
    """Hub revision; ``refs/convert/parquet`` for datasets that only ship a loading script."""
    data_dir: str | None = None
    """Folder on ``revision`` that holds the config (parquet conversions know no config names)."""
    metric: str = "acc"
    notes: str = ""
    skip_if_empty: tuple[str, ...] = field(default_factory=tuple)
    """Raw columns *documented* as sometimes empty; such rows are dropped (and counted). A row
    that lacks the column altogether is still an error (a wrong mirror, not a known defect)."""
    fewshot_max_words: dict[str, int] | None = field(default=None, hash=False)
    """Doc fields capped (in words) for rows to be eligible as shots, so that 4 shots and a
    typical scored input fit a 2048-token window. The scored input itself is never shortened by
    amuro; when shots + input exceed the model's window, lm-eval drops tokens from the *left* of
    the context (the first shot goes first), as for every upstream task."""
    hub_data_files: str | None = None
    """Hub only: glob of one split's files on ``revision`` (``{config}``, ``{split}`` filled in),
    for parquet conversions whose custom split names ``datasets`` cannot infer (LLMBar)."""

    @property
    def is_classification(self) -> bool:
        return self.family in CLASSIFICATION_FAMILIES

    @property
    def fixture_key(self) -> str:
        """Folder of this dataset in a local mirror: ``<owner>__<name>/<config or default>``."""
        return f"{self.path.replace('/', '__')}/{self.config or 'default'}"


# --------------------------------------------------------------------------- validation helpers
def text(row: Row, column: str, where: str) -> str:
    """The non-empty string in ``row[column]``, or an error naming ``where``."""
    if column not in row:
        raise AmuroDataError(f"{where}: missing field {column!r} (fields: {sorted(row)})")
    value = row[column]
    if value is None:
        raise AmuroDataError(f"{where}: field {column!r} is None")
    if not isinstance(value, str):
        raise AmuroDataError(f"{where}: field {column!r} is {type(value).__name__}, expected text")
    if not value.strip():
        raise AmuroDataError(f"{where}: field {column!r} is empty")
    return value


def class_label(row: Row, column: str, mapping: Mapping[Any, int], where: str) -> int:
    """Map ``row[column]`` through ``mapping``; hidden (-1/None) or unknown labels are errors."""
    if column not in row:
        raise AmuroDataError(f"{where}: missing field {column!r} (fields: {sorted(row)})")
    value = row[column]
    if isinstance(value, str):
        value = value.strip()  # old social_i_qa copies carry "1\n"
    if value is None or value == -1 or value == "-1" or value == "":
        raise AmuroDataError(
            f"{where}: gold label {column!r} is hidden ({value!r}); this split has no usable "
            "labels, evaluate on a labelled split instead"
        )
    if value not in mapping:
        raise AmuroDataError(
            f"{where}: label {column!r}={value!r} is not one of {sorted(mapping, key=str)}"
        )
    return mapping[value]


def _classification(label: int, words: tuple[str, ...], **fields: str) -> Doc:
    return {**fields, "label": label, "target": words[label], "choices": list(words)}


# --------------------------------------------------------------------------- normalizers
def _glue_nli(premise: str, hypothesis: str, words: tuple[str, ...]) -> Callable[[Row, str], Doc]:
    mapping = {i: i for i in range(len(words))}

    def normalize(row: Row, where: str) -> Doc:
        return _classification(
            class_label(row, "label", mapping, where),
            words,
            premise=text(row, premise, where),
            hypothesis=text(row, hypothesis, where),
        )

    return normalize


def _gpt3nli(row: Row, where: str) -> Doc:
    # pietrolesci/gpt3_nli: label 0 entailment, 1 neutral, 2 contradiction (MNLI convention).
    return _classification(
        class_label(row, "label", {0: 0, 1: 1, 2: 2}, where),
        NLI_LABELS,
        premise=text(row, "text_a", where),
        hypothesis=text(row, "text_b", where),
    )


def _pair(first: str, second: str) -> Callable[[Row, str], Doc]:
    def normalize(row: Row, where: str) -> Doc:
        return _classification(
            class_label(row, "label", {0: 0, 1: 1}, where),
            PARAPHRASE_LABELS,
            sentence1=text(row, first, where),
            sentence2=text(row, second, where),
        )

    return normalize


def _stsb(row: Row, where: str) -> Doc:
    if "label" not in row:
        raise AmuroDataError(f"{where}: missing field 'label' (fields: {sorted(row)})")
    score = row["label"]
    if score is None or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 5.0:
        raise AmuroDataError(
            f"{where}: similarity score {score!r} is hidden or outside [0, 5]; STS-B test labels "
            "are hidden (-1), evaluate on validation"
        )
    return _classification(
        int(float(score) > STSB_PARAPHRASE_THRESHOLD),
        PARAPHRASE_LABELS,
        sentence1=text(row, "sentence1", where),
        sentence2=text(row, "sentence2", where),
    )


def _summary(document: str, summary: str) -> Callable[[Row, str], Doc]:
    def normalize(row: Row, where: str) -> Doc:
        return {"document": text(row, document, where), "target": text(row, summary, where)}

    return normalize


def _socialiqa(row: Row, where: str) -> Doc:
    gold = class_label(row, "label", {"1": 0, "2": 1, "3": 2, 1: 0, 2: 1, 3: 2}, where)
    answer = text(row, ("answerA", "answerB", "answerC")[gold], where)
    return {"context": text(row, "context", where), "answer": answer,
            "target": text(row, "question", where)}


def _sciq(row: Row, where: str) -> Doc:
    return {"context": text(row, "support", where), "answer": text(row, "correct_answer", where),
            "target": text(row, "question", where)}


def _tweetqa(row: Row, where: str) -> Doc:
    answers = row.get("Answer")
    if "Answer" not in row:
        raise AmuroDataError(f"{where}: missing field 'Answer' (fields: {sorted(row)})")
    if not isinstance(answers, list) or not answers:
        raise AmuroDataError(f"{where}: field 'Answer' is {answers!r}; hidden or empty answers")
    answer = text({"Answer[0]": answers[0]}, "Answer[0]", where)
    return {"context": text(row, "Tweet", where), "answer": answer,
            "target": text(row, "Question", where)}


# --------------------------------------------------------------------------- the registry
_PARQUET = "refs/convert/parquet"

SPECS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`SPECS` (names are unique)."""
    if spec.name in SPECS:
        raise AmuroConfigError(f"evaluation set {spec.name!r} is registered twice")
    SPECS[spec.name] = spec
    return spec


for _spec in (
    DatasetSpec("mnli_matched", "nli", "nyu-mll/glue", "mnli", "validation_matched",
                _glue_nli("premise", "hypothesis", NLI_LABELS)),
    DatasetSpec("mnli_mismatched", "nli", "nyu-mll/glue", "mnli", "validation_mismatched",
                _glue_nli("premise", "hypothesis", NLI_LABELS)),
    DatasetSpec("rte", "nli", "nyu-mll/glue", "rte", "validation",
                _glue_nli("sentence1", "sentence2", RTE_LABELS),
                notes="2 classes: 0 entailment, 1 not_entailment -> 'neutral' (as the paper). "
                      "The paper's release scored the train split; we score validation."),
    DatasetSpec("gpt3nli", "nli", "pietrolesci/gpt3_nli", None, "train", _gpt3nli,
                fewshot_split=None,
                notes="Only a train split exists: the few-shot pool is carved out of it with a "
                      "fixed seed and removed from the scored rows."),
    DatasetSpec("paws", "paraphrase", "google-research-datasets/paws", "labeled_final", "test",
                _pair("sentence1", "sentence2")),
    DatasetSpec("qqp", "paraphrase", "nyu-mll/glue", "qqp", "validation",
                _pair("question1", "question2"),
                notes="GLUE test labels are hidden (-1); the paper's release scored them and got "
                      "~100% by always answering 'no'. We score validation."),
    DatasetSpec("stsb", "paraphrase", "nyu-mll/glue", "stsb", "validation", _stsb,
                notes="Gold similarity > 3.5 (0-5 scale) means paraphrase ('yes')."),
    DatasetSpec("xsum", "summarization", "EdinburghNLP/xsum", None, "test",
                _summary("document", "summary"), revision=_PARQUET, data_dir="default",
                metric="rougeL", fewshot_max_words=SHOT_WORDS, skip_if_empty=("document",),
                notes="Script-only on the Hub: loaded from its parquet conversion. Some rows "
                      "have an empty document (a defect of the original BBC extraction, "
                      "EdinburghNLP/xsum discussion #4): nothing to summarise, so they are "
                      "dropped and counted in the log."),
    DatasetSpec("xlsum", "summarization", "csebuetnlp/xlsum", "english", "test",
                _summary("text", "summary"), revision=_PARQUET, data_dir="english",
                metric="rougeL", fewshot_max_words=SHOT_WORDS,
                notes="Script-only on the Hub: loaded from its parquet conversion."),
    DatasetSpec("cnn", "summarization", "abisee/cnn_dailymail", "3.0.0", "test",
                _summary("article", "highlights"), metric="rougeL",
                fewshot_max_words={"document": 150},
                notes="Shots are drawn from articles of at most 150 words (CNN articles average "
                      "~700). By a words-to-tokens estimate (~1.3 tokens a word), four such "
                      "shots with their highlights take ~1,000 tokens, so in a 2048-token window "
                      "a scored article over ~750 words makes lm-eval cut the context from the "
                      "left (first shot first); the article is cut only when it alone exceeds "
                      "the window. Not measured on the real split here (no hub)."),
    DatasetSpec("socialiqa", "qgen", "lighteval/siqa", None, "validation", _socialiqa,
                metric="rougeL",
                notes="Context + gold answer -> question. allenai/social_i_qa is script-only; "
                      "lighteval/siqa is its parquet mirror (same rows, as lm-eval's siqa task "
                      "uses). Only train/validation are labelled; we score validation."),
    DatasetSpec("sciq", "qgen", "allenai/sciq", None, "test", _sciq, metric="rougeL",
                skip_if_empty=("support",),
                notes="Support + correct answer -> question; rows without a support passage "
                      "cannot be posed and are dropped (the count is logged)."),
    DatasetSpec("tweetqa", "qgen", "ucsbnlp/tweet_qa", None, "validation", _tweetqa,
                metric="rougeL",
                notes="Tweet + first gold answer -> question. Test answers are hidden; the "
                      "paper's release scored train, we score validation."),
):
    register(_spec)


def get_spec(name: str) -> DatasetSpec:
    """The spec of evaluation set ``name``, or a clear error listing the known sets."""
    try:
        return SPECS[name]
    except KeyError:
        raise AmuroConfigError(
            f"unknown evaluation set {name!r}; known sets: {', '.join(sorted(SPECS))}"
        ) from None


from amuro_tasks import instruct_suite  # noqa: E402,F401  registers the instruction-tuning suite
