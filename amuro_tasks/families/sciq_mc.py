"""SciQ, multiple choice (upstream's ``sciq``); ``sciq`` is amuro's question-generation set.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/sciq/sciq.yaml``: ``"{{support.lstrip()}}\\nQuestion: ..."``; the doc's
``support`` is already left-stripped and may be empty, as in the real set), with upstream's
choices ``[distractor1, distractor2, distractor3, correct_answer]``, gold 3.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

FAMILY = Family(
    name="sciq_mc",
    title="SciQ (multiple choice)",
    kind="multiple_choice",
    truncate_field="support",
    prompts=Prompts(
        default="{{ support }}\nQuestion: {{ question }}\nAnswer:",
        instruct=(
            "{% if support %}Please read the following passage: {{ support | trim }} {% endif %}"
            "Answer the following science question: {{ question }} The answer is:"
        ),
        io="{% if support %}{{ support | trim }} {% endif %}{{ question }}",
    ),
    sets=(
        EvalSet("sciq_mc", "allenai/sciq", None, "validation",
                Normalizer("column_choices", {
                    "choices": ("distractor1", "distractor2", "distractor3", "correct_answer"),
                    "gold": 3, "optional": {"support": "support"},
                    "fields": {"question": "question"},
                }),
                upstream_split="test", paper_scored="validation (1,000)",
                upstream_scored="test (`sciq`)",
                split_why="The paper's suite ran OLMo-Eval with `--split validation`; its scores "
                          "are multiples of 1/1,000 (validation and test both have 1,000 rows). "
                          "lm-eval scores test.",
                upstream_task="sciq",
                notes="Multiple-choice SciQ (upstream's `sciq`); rows with an empty support "
                      "passage are kept, as upstream. `sciq` is the question-generation set."),
    ),
)
