"""HellaSwag: pick the most plausible ending of a short text.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/hellaswag``: ``doc_to_text: "{{query}}"`` after its ``process_docs``, whose
text clean-up :func:`amuro_tasks.rows.hellaswag_preprocess` copies). ``io`` is the raw context
only, without the activity label that ``default`` and ``instruct`` prefix (otherwise ``io`` would
equal ``default``).
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

FAMILY = Family(
    name="hellaswag",
    title="HellaSwag",
    kind="multiple_choice",
    prompts=Prompts(
        default="{{ query }}",
        instruct=(
            "Please choose the most plausible ending for the following text about"
            " {{ activity_label }}: {{ context }} The ending is:"
        ),
        io="{{ context }}",
    ),
    sets=(
        EvalSet("hellaswag", "Rowan/hellaswag", None, "validation", Normalizer("hellaswag"),
                paper_scored="validation (10,042)", upstream_scored="validation (`hellaswag`)",
                split_why="Test labels are hidden; the paper's scores are multiples of 1/10,042.",
                upstream_task="hellaswag",
                notes="Test labels are hidden; scored on validation, as upstream."),
    ),
)
