"""Natural language inference: MNLI (matched, mismatched), RTE and GPT3NLI.

The paper's MNLI fine-tuning task (in-domain: MNLI; out-of-domain: RTE, GPT3NLI). Prompts are the
paper's Table 3, with the two details the authors' code adds: a ``"\\n "`` before every ``###``
after the first, and the completion follows the prompt after one space.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
RTE_LABELS: tuple[str, ...] = ("entailment", "neutral")
"""RTE's 0 entailment / 1 not_entailment; ``not_entailment`` reads ``neutral``, as the paper."""

_GLUE_TEST = "GLUE test labels are hidden (-1)."


def _pair(premise: str, hypothesis: str, labels: tuple[str, ...]) -> Normalizer:
    return Normalizer("labelled", {
        "fields": {"premise": premise, "hypothesis": hypothesis}, "label": "label",
        "label_map": {i: i for i in range(len(labels))}, "choices": labels,
    })


FAMILY = Family(
    name="nli",
    title="NLI",
    kind="classification",
    prompts=Prompts(
        default="### Input_1: {{ premise }}\n ### Input_2: {{ hypothesis }}\n ### Inference:",
        instruct=(
            "Consider the following texts: Text 1: {{ premise }} Text 2: {{ hypothesis }}"
            " The relation is"
        ),
        io="{{ premise }} {{ hypothesis }}",
    ),
    truncate_field="premise",
    sets=(
        EvalSet("mnli_matched", "nyu-mll/glue", "mnli", "validation_matched",
                _pair("premise", "hypothesis", NLI_LABELS),
                paper_scored="validation_matched (9,815)",
                upstream_scored="validation_matched (`mnli`)", split_why=_GLUE_TEST),
        EvalSet("mnli_mismatched", "nyu-mll/glue", "mnli", "validation_mismatched",
                _pair("premise", "hypothesis", NLI_LABELS),
                paper_scored="validation_mismatched (9,832)",
                upstream_scored="validation_mismatched (`mnli_mismatch`)", split_why=_GLUE_TEST),
        EvalSet("rte", "nyu-mll/glue", "rte", "validation",
                _pair("sentence1", "sentence2", RTE_LABELS),
                paper_scored="train (2,490; its §3.3 table: validation, 277)",
                upstream_scored="validation (`rte`)",
                split_why="Scoring the train split would score the shots' own pool; validation "
                          "is labelled. " + _GLUE_TEST,
                notes="2 classes: 0 entailment, 1 not_entailment -> 'neutral' (as the paper). "
                      "The paper's release scored the train split; we score validation."),
        # pietrolesci/gpt3_nli: label 0 entailment, 1 neutral, 2 contradiction (MNLI convention).
        EvalSet("gpt3nli", "pietrolesci/gpt3_nli", None, "train",
                _pair("text_a", "text_b", NLI_LABELS), fewshot_split=None,
                paper_scored="train (30,000)",
                split_why="The only split; shots are carved out of it and not scored.",
                notes="Only a train split exists: the few-shot pool is carved out of it with a "
                      "fixed seed and removed from the scored rows."),
    ),
)
