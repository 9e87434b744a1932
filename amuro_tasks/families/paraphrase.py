"""Paraphrase identification: PAWS, QQP and STS-B.

The paper's PAWS fine-tuning task (in-domain: PAWS; out-of-domain: QQP, STS-B). Prompts are the
paper's Table 3, with the authors' ``"\\n "`` before every ``###`` after the first.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

PARAPHRASE_LABELS: tuple[str, ...] = ("no", "yes")
STSB_PARAPHRASE_THRESHOLD = 3.5
"""STS-B similarity above this (0-5 scale) counts as a paraphrase, as in the paper's release."""


def _pair(first: str, second: str) -> Normalizer:
    return Normalizer("labelled", {
        "fields": {"sentence1": first, "sentence2": second}, "label": "label",
        "label_map": {0: 0, 1: 1}, "choices": PARAPHRASE_LABELS,
    })


FAMILY = Family(
    name="paraphrase",
    title="paraphrase",
    kind="classification",
    prompts=Prompts(
        default=(
            "### Input_1: {{ sentence1 }}\n ### Input_2: {{ sentence2 }}"
            "\n ### Paraphrase Classification:"
        ),
        # The paper typesets (and the authors' code uses) a typographic apostrophe here.
        instruct=(
            "Let\u2019s compare the two sentences: Sentence_1: {{ sentence1 }}"
            " Sentence_2: {{ sentence2 }} Are they paraphrasing?:"
        ),
        io="{{ sentence1 }} {{ sentence2 }}",
    ),
    truncate_field="sentence1",
    sets=(
        EvalSet("paws", "google-research-datasets/paws", "labeled_final", "test",
                _pair("sentence1", "sentence2"), paper_scored="test (8,000)",
                upstream_scored="test (`paws_en`, of PAWS-X)",
                split_why="Labelled test split, as the paper."),
        EvalSet("qqp", "nyu-mll/glue", "qqp", "validation", _pair("question1", "question2"),
                paper_scored="SetFit/qqp test, unlabelled", upstream_scored="validation (`qqp`)",
                split_why="The paper's split has no gold labels (every label reads 'no'); GLUE "
                          "validation is the labelled one.",
                notes="GLUE test labels are hidden (-1); the paper's release scored them and got "
                      "~100% by always answering 'no'. We score validation."),
        EvalSet("stsb", "nyu-mll/glue", "stsb", "validation",
                Normalizer("similarity", {
                    "fields": {"sentence1": "sentence1", "sentence2": "sentence2"},
                    "label": "label", "threshold": STSB_PARAPHRASE_THRESHOLD,
                    "choices": PARAPHRASE_LABELS,
                }),
                paper_scored="SetFit/stsb test, unlabelled",
                split_why="The paper's split has no gold scores; GLUE validation is labelled "
                          "(GLUE test scores are hidden, -1).",
                notes="Gold similarity > 3.5 (0-5 scale) means paraphrase ('yes')."),
    ),
)
