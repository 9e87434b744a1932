"""ARC (Easy, Challenge): grade-school science questions, 3-5 lettered options.

Part of the instruction-tuning suite (paper §3.3). ``default`` is lm-eval's upstream prompt
(``lm_eval/tasks/arc/arc_easy.yaml``, 0.4.13) with upstream's choices; ``instruct`` wraps the same
input in an instruction, ``io`` is the raw input (paper, Table 3).
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

_QUESTION = Normalizer("lettered", {"fields": {"question": "question"}})
ARC_COMMIT = "210d026faf9955653af8916fad021475a3f00453"
"""A commit of ``allenai/ai2_arc`` main holding its parquet files (``ARC-Easy/``,
``ARC-Challenge/``; https://huggingface.co/datasets/allenai/ai2_arc/tree/
210d026faf9955653af8916fad021475a3f00453)."""
_WHY = ("The paper's suite (OLMo-Eval, `--split validation`) scored validation: its released "
        "scores are exact multiples of 1/570 (Easy) and 1/299 (Challenge), the validation "
        "sizes. lm-eval's task has a test split, so it scores test.")

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
        EvalSet("arc_easy", "allenai/ai2_arc", "ARC-Easy", "validation", _QUESTION,
                upstream_split="test", paper_scored="validation (570)",
                upstream_scored="test (`arc_easy`)", split_why=_WHY, revision=ARC_COMMIT,
                upstream_task="arc_easy"),
        EvalSet("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "validation", _QUESTION,
                upstream_split="test", paper_scored="validation (299)",
                upstream_scored="test (`arc_challenge`)", split_why=_WHY, revision=ARC_COMMIT,
                upstream_task="arc_challenge"),
    ),
)
