"""BoolQ: yes/no questions about a passage.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/super_glue/boolq/default.yaml``) with upstream's choices ``no``/``yes``.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

BOOLQ_CHOICES: tuple[str, str] = ("no", "yes")

FAMILY = Family(
    name="boolq",
    title="BoolQ",
    kind="multiple_choice",
    truncate_field="passage",
    prompts=Prompts(
        default="{{ passage }}\nQuestion: {{ question }}?\nAnswer:",
        instruct=(
            "Please read the following passage: {{ passage }}"
            " Answer the question with yes or no: {{ question }}?"
        ),
        io="{{ passage }} {{ question }}",
    ),
    sets=(
        # aps/super_glue boolq: label ClassLabel 0 False, 1 True; test labels are hidden (-1).
        EvalSet("boolq", "aps/super_glue", "boolq", "validation",
                Normalizer("labelled", {
                    "fields": {"passage": "passage", "question": "question"}, "label": "label",
                    "label_map": {0: 0, 1: 1}, "choices": BOOLQ_CHOICES,
                }),
                paper_scored="validation (3,270)", upstream_scored="validation (`boolq`)",
                split_why="SuperGLUE test labels are hidden (-1); the paper's scores are "
                          "multiples of 1/3,270.",
                upstream_task="boolq",
                notes="SuperGLUE test labels are hidden (-1); scored on validation, as upstream."),
    ),
)
