"""ARC (Easy, Challenge): grade-school science questions, 3-5 lettered options.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/arc/arc_easy.yaml``, 0.4.13) with upstream's choices; ``instruct`` wraps the same
input in an instruction, ``io`` is the raw input (paper, Table 3).
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

_QUESTION = Normalizer("lettered", {"fields": {"question": "question"}})

FAMILY = Family(
    name="arc",
    title="ARC",
    kind="multiple_choice",
    truncate_field="question",
    prompts=Prompts(
        default="Question: {{ question }}\nAnswer:",
        instruct="Please answer the following science question: {{ question }} The answer is:",
        io="{{ question }}",
    ),
    sets=(
        EvalSet("arc_easy", "allenai/ai2_arc", "ARC-Easy", "test", _QUESTION,
                upstream_task="arc_easy"),
        EvalSet("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "test", _QUESTION,
                upstream_task="arc_challenge"),
    ),
)
