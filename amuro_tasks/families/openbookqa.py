"""OpenBookQA: elementary science questions, 4 lettered options.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/openbookqa/openbookqa.yaml``: ``doc_to_text: question_stem``).
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

FAMILY = Family(
    name="openbookqa",
    title="OpenBookQA",
    kind="multiple_choice",
    truncate_field="question_stem",
    prompts=Prompts(
        default="{{ question_stem }}",
        instruct=(
            "Please answer the following question using elementary science facts:"
            " {{ question_stem }} The answer is:"
        ),
        # Upstream's prompt already is the raw input, so ``io`` renders like ``default``.
        io="{{ question_stem }}",
    ),
    sets=(
        EvalSet("openbookqa", "allenai/openbookqa", "main", "validation",
                Normalizer("lettered", {"fields": {"question_stem": "question_stem"}}),
                upstream_split="test", paper_scored="validation (500)",
                upstream_scored="test (`openbookqa`)",
                split_why="The paper's suite ran OLMo-Eval with `--split validation` (the "
                          "release's `evaluate_it_model.sh`); its scores are multiples of 1/500, "
                          "which "
                          "validation and test (both 500 rows) both fit. lm-eval scores test.",
                upstream_task="openbookqa"),
    ),
)
