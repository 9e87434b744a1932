"""The instruction-tuning evaluation suite: ARC, OpenBookQA, HellaSwag, BoolQ, SciQ and LLMBar.

The paper (§3.3) evaluates instruction-tuned checkpoints "following Groeneveld et al., 2024" on
ARC-Easy, ARC-Challenge, OpenBookQA, HellaSwag, BoolQ and SciQ, plus LLMBar (Zeng et al., 2024)
for instruction following. This module registers their :class:`~amuro_tasks.specs.DatasetSpec`
and their prompt families, so they share the single-source template mechanism of the
fine-tuning sets.

Each normaliser turns one raw row, in the dataset's real Hugging Face schema, into a doc with the
prompt fields, ``choices`` (this doc's answer options, as lm-eval scores them), ``label`` (gold
index) and ``target`` (gold choice text). Errors name set, split and row.

Formats:

* ``default`` is lm-eval's upstream prompt for the dataset (0.4.13), with upstream's choices, so
  that scores are comparable with published lm-eval numbers (LLMBar has no upstream task; its
  ``default`` is a Question/Answer prompt in the same style);
* ``instruct`` wraps the same inputs in a human-readable instruction, as the paper's Table 3;
* ``io`` is the raw input only, as the paper's Table 3.

No format lists answer options the others do not, so format comparisons are not confounded
with the options shown. One exception in content: HellaSwag's ``io`` is the raw context only,
without the activity label that ``default`` and ``instruct`` prefix (otherwise ``io`` would
equal ``default``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from amuro_tasks.errors import AmuroDataError
from amuro_tasks.prompts import register_family
from amuro_tasks.specs import DatasetSpec, Doc, Row, class_label, register, text

# --------------------------------------------------------------------------- prompt families
INSTRUCT_PROMPTS: dict[str, dict[str, str]] = {
    "arc": {
        # upstream lm_eval/tasks/arc/arc_easy.yaml
        "default": "Question: {{ question }}\nAnswer:",
        "instruct": "Please answer the following science question: {{ question }} The answer is:",
        "io": "{{ question }}",
    },
    "openbookqa": {
        # upstream lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text: question_stem
        "default": "{{ question_stem }}",
        "instruct": (
            "Please answer the following question using elementary science facts:"
            " {{ question_stem }} The answer is:"
        ),
        # Upstream's prompt already is the raw input, so ``io`` renders like ``default``.
        "io": "{{ question_stem }}",
    },
    "hellaswag": {
        # upstream lm_eval/tasks/hellaswag: doc_to_text "{{query}}" after process_docs
        "default": "{{ query }}",
        "instruct": (
            "Please choose the most plausible ending for the following text about"
            " {{ activity_label }}: {{ context }} The ending is:"
        ),
        "io": "{{ context }}",
    },
    "boolq": {
        # upstream lm_eval/tasks/super_glue/boolq/default.yaml
        "default": "{{ passage }}\nQuestion: {{ question }}?\nAnswer:",
        "instruct": (
            "Please read the following passage: {{ passage }}"
            " Answer the question with yes or no: {{ question }}?"
        ),
        "io": "{{ passage }} {{ question }}",
    },
    "sciq_mc": {
        # upstream lm_eval/tasks/sciq/sciq.yaml: "{{support.lstrip()}}\nQuestion: ..."; the doc's
        # ``support`` is already left-stripped, and may be empty (as in the real set).
        "default": "{{ support }}\nQuestion: {{ question }}\nAnswer:",
        "instruct": (
            "{% if support %}Please read the following passage: {{ support | trim }} {% endif %}"
            "Answer the following science question: {{ question }} The answer is:"
        ),
        "io": "{% if support %}{{ support | trim }} {% endif %}{{ question }}",
    },
    "llmbar": {
        # No upstream lm-eval task: a Question/Answer prompt in the style of the other defaults.
        "default": (
            "Instruction: {{ instruction }}\nOutput (a): {{ output_a }}\nOutput (b): {{ output_b }}"
            "\nQuestion: Which output better follows the instruction, Output (a) or Output (b)?"
            "\nAnswer:"
        ),
        # After LLMBar's own "Vanilla" comparison prompt (Zeng et al., 2024), condensed.
        "instruct": (
            "Select the Output (a) or Output (b) that better follows the given instruction."
            "\n\n# Instruction:\n{{ instruction }}\n\n# Output (a):\n{{ output_a }}"
            "\n\n# Output (b):\n{{ output_b }}"
            '\n\n# Which is better, Output (a) or Output (b)? Your response should be either'
            ' "Output (a)" or "Output (b)":'
        ),
        "io": "{{ instruction }} {{ output_a }} {{ output_b }}",
    },
}

FAMILY_TAGS: dict[str, str] = {family: f"amuro_{family}" for family in INSTRUCT_PROMPTS}
"""Tag of every task of a family (all sets, all formats); ``amuro_llmbar`` is LLMBar's tag."""

LLMBAR_CHOICES: tuple[str, str] = ("Output (a)", "Output (b)")
BOOLQ_CHOICES: tuple[str, str] = ("no", "yes")
LLMBAR_ADVERSARIAL_SPLITS: tuple[str, ...] = (
    "Adversarial_Neighbor", "Adversarial_GPTInst", "Adversarial_GPTOut", "Adversarial_Manual",
)

GROUPS: dict[str, tuple[str, ...]] = {"llmbar": ("llmbar_natural", "llmbar_adversarial")}
"""Tags ``amuro_<group>_<format>`` over several sets (tags, not lm-eval groups: a group matched
by ``--tasks 'amuro_*'`` together with its own members is refused by lm-eval as a duplicate)."""


# --------------------------------------------------------------------------- validation helpers
def string(row: Row, column: str, where: str) -> str:
    """``row[column]`` as a string that may be empty (documented so in the real data)."""
    if column not in row:
        raise AmuroDataError(f"{where}: missing field {column!r} (fields: {sorted(row)})")
    value = row[column]
    if not isinstance(value, str):
        raise AmuroDataError(
            f"{where}: field {column!r} is {type(value).__name__}, expected text (may be empty)"
        )
    return value


def string_list(value: Any, column: str, where: str, *, min_len: int = 2) -> list[str]:
    """``value`` as a list of at least ``min_len`` non-empty strings, or an error."""
    if not isinstance(value, (list, tuple)):
        kind = type(value).__name__
        raise AmuroDataError(f"{where}: field {column!r} is {kind}, expected a list")
    if len(value) < min_len:
        raise AmuroDataError(
            f"{where}: field {column!r} has {len(value)} entries, expected at least {min_len}"
        )
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise AmuroDataError(f"{where}: {column}[{i}] is {item!r}, expected non-empty text")
        out.append(item)
    return out


def lettered_choices(row: Row, where: str) -> tuple[list[str], list[str], int]:
    """ARC/OpenBookQA ``choices: {text: [...], label: [...]}`` + ``answerKey`` -> texts, gold.

    Labels are usually ``A``-``D`` but some ARC rows use ``1``-``4`` and some have 3 or 5
    options; the gold index is the position of ``answerKey`` among the labels, as upstream's
    ``choices.label.index(answerKey)`` (``answerKey`` is stripped, as upstream OpenBookQA does).
    """
    if "choices" not in row:
        raise AmuroDataError(f"{where}: missing field 'choices' (fields: {sorted(row)})")
    choices = row["choices"]
    if not isinstance(choices, Mapping) or "text" not in choices or "label" not in choices:
        raise AmuroDataError(
            f"{where}: field 'choices' is {choices!r}, expected {{'text': [...], 'label': [...]}}"
        )
    texts = string_list(choices["text"], "choices.text", where)
    labels = string_list(choices["label"], "choices.label", where)
    if len(texts) != len(labels):
        raise AmuroDataError(
            f"{where}: {len(texts)} choice texts but {len(labels)} choice labels"
        )
    if len(set(labels)) != len(labels):
        raise AmuroDataError(f"{where}: duplicate choice labels {labels}")
    key = row.get("answerKey")
    if "answerKey" not in row:
        raise AmuroDataError(f"{where}: missing field 'answerKey' (fields: {sorted(row)})")
    if not isinstance(key, str) or not key.strip():
        raise AmuroDataError(
            f"{where}: gold label 'answerKey' is hidden ({key!r}); evaluate on a labelled split"
        )
    if key.strip() not in labels:
        raise AmuroDataError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
    return texts, labels, labels.index(key.strip())


def _mc(choices: list[str], label: int, **fields: Any) -> Doc:
    return {**fields, "choices": list(choices), "label": label, "target": choices[label]}


# --------------------------------------------------------------------------- normalizers
def _arc(row: Row, where: str) -> Doc:
    texts, _, gold = lettered_choices(row, where)
    return _mc(texts, gold, question=text(row, "question", where))


def _openbookqa(row: Row, where: str) -> Doc:
    texts, _, gold = lettered_choices(row, where)
    return _mc(texts, gold, question_stem=text(row, "question_stem", where))


def hellaswag_preprocess(value: str) -> str:
    """Upstream's HellaSwag text clean-up (lm_eval/tasks/hellaswag/utils.py, copied verbatim).

    Brackets are artefacts of the WikiHow portion of HellaSwag.
    """
    value = value.strip()
    value = value.replace(" [title]", ". ")
    value = re.sub("\\[.*?\\]", "", value)
    value = value.replace("  ", " ")
    return value


def _hellaswag(row: Row, where: str) -> Doc:
    # HellaSwag labels are strings "0".."3"; the test split hides them ("").
    if "endings" not in row:
        raise AmuroDataError(f"{where}: missing field 'endings' (fields: {sorted(row)})")
    endings = string_list(row["endings"], "endings", where)
    labels = {str(i): i for i in range(len(endings))} | {i: i for i in range(len(endings))}
    gold = class_label(row, "label", labels, where)
    activity = text(row, "activity_label", where)
    ctx = text(row, "ctx_a", where) + " " + string(row, "ctx_b", where).capitalize()
    return _mc(
        [hellaswag_preprocess(e) for e in endings], gold,
        query=hellaswag_preprocess(activity + ": " + ctx),  # upstream's process_docs
        activity_label=hellaswag_preprocess(activity),
        context=hellaswag_preprocess(ctx).strip(),  # a removed leading "[header]" leaves a space
    )


def _boolq(row: Row, where: str) -> Doc:
    # aps/super_glue boolq: label ClassLabel 0 False, 1 True; test labels are hidden (-1).
    return _mc(
        list(BOOLQ_CHOICES), class_label(row, "label", {0: 0, 1: 1}, where),
        passage=text(row, "passage", where), question=text(row, "question", where),
    )


def _sciq_mc(row: Row, where: str) -> Doc:
    # Upstream: choices [distractor1, distractor2, distractor3, correct_answer], gold 3. The
    # support passage is empty for some real rows; upstream keeps them (prompt starts "\n").
    choices = [text(row, c, where)
               for c in ("distractor1", "distractor2", "distractor3", "correct_answer")]
    return _mc(choices, 3, support=string(row, "support", where).lstrip(),
               question=text(row, "question", where))


def _llmbar(row: Row, where: str) -> Doc:
    # princeton-nlp/LLMBar: label 1 means output_1 is better, 2 means output_2.
    return _mc(
        list(LLMBAR_CHOICES), class_label(row, "label", {1: 0, 2: 1}, where),
        instruction=text(row, "input", where),
        output_a=text(row, "output_1", where), output_b=text(row, "output_2", where),
    )


# --------------------------------------------------------------------------- the specs
_LLMBAR_NOTES = (
    "princeton-nlp/LLMBar ships only a loading script; on the Hub it is read from its parquet "
    "conversion. LLMBar has no training split: the few-shot pool of Natural is drawn from the "
    "Adversarial splits and vice versa (the tasks are zero-shot by default)."
)

INSTRUCT_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("arc_easy", "arc", "allenai/ai2_arc", "ARC-Easy", "test", _arc),
    DatasetSpec("arc_challenge", "arc", "allenai/ai2_arc", "ARC-Challenge", "test", _arc),
    DatasetSpec("openbookqa", "openbookqa", "allenai/openbookqa", "main", "test", _openbookqa),
    DatasetSpec("hellaswag", "hellaswag", "Rowan/hellaswag", None, "validation", _hellaswag,
                notes="Test labels are hidden; scored on validation, as upstream."),
    DatasetSpec("boolq", "boolq", "aps/super_glue", "boolq", "validation", _boolq,
                notes="SuperGLUE test labels are hidden (-1); scored on validation, as upstream."),
    DatasetSpec("sciq_mc", "sciq_mc", "allenai/sciq", None, "test", _sciq_mc,
                notes="Multiple-choice SciQ (upstream's `sciq`); rows with an empty support "
                      "passage are kept, as upstream. `sciq` is the question-generation set."),
    DatasetSpec("llmbar_natural", "llmbar", "princeton-nlp/LLMBar", "LLMBar", "Natural",
                _llmbar, fewshot_split=LLMBAR_ADVERSARIAL_SPLITS,
                revision="refs/convert/parquet", hub_data_files="{config}/{split}/*.parquet",
                notes=_LLMBAR_NOTES),
    DatasetSpec("llmbar_adversarial", "llmbar", "princeton-nlp/LLMBar", "LLMBar",
                LLMBAR_ADVERSARIAL_SPLITS, _llmbar, fewshot_split="Natural",
                revision="refs/convert/parquet", hub_data_files="{config}/{split}/*.parquet",
                notes="The four Adversarial_* splits (Neighbor, GPTInst, GPTOut, Manual), "
                      "scored as one set. " + _LLMBAR_NOTES),
)

NORMALIZERS: dict[str, Callable[[Row, str], Doc]] = {s.name: s.normalize for s in INSTRUCT_SPECS}

for _family, _templates in INSTRUCT_PROMPTS.items():
    register_family(_family, _templates)
for _spec in INSTRUCT_SPECS:
    register(_spec)
