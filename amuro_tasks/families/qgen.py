"""Question generation: SocialIQA, SciQ and TweetQA (context + gold answer -> question).

The paper's SocialIQA fine-tuning task (in-domain: SocialIQA; out-of-domain: SciQ, TweetQA).
Greedy generation, scored by ROUGE-L F1. Prompts are the paper's Table 3.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

FAMILY = Family(
    name="qgen",
    title="question generation",
    kind="generation",
    prompts=Prompts(
        default="### Input: {{ context }}\n ### Answer: {{ answer }}\n ### Question:",
        instruct=(
            "Given the context: {{ context }} And the answer: {{ answer }}"
            " Generate a suitable question:"
        ),
        io="{{ context }} {{ answer }}",
    ),
    truncate_field="context",
    sets=(
        EvalSet("socialiqa", "lighteval/siqa", None, "validation",
                Normalizer("answer_by_label", {
                    "context": "context", "answers": ("answerA", "answerB", "answerC"),
                    "label": "label",
                    "label_map": {"1": 0, "2": 1, "3": 2, 1: 0, 2: 1, 3: 2},
                    "target": "question",
                }),
                paper_scored="validation (1,954)", upstream_scored="validation (`social_iqa`)",
                split_why="Only train and validation are labelled.",
                notes="Context + gold answer -> question. allenai/social_i_qa is script-only; "
                      "lighteval/siqa is its parquet mirror (same rows, as lm-eval's siqa task "
                      "uses). Only train/validation are labelled; we score validation."),
        EvalSet("sciq", "allenai/sciq", None, "test",
                Normalizer("text_to_text", {
                    "fields": {"context": "support", "answer": "correct_answer"},
                    "target": "question",
                }),
                skip_if_empty=("support",), paper_scored="test (1,000)",
                split_why="As the paper (question generation; lm-eval has no such task).",
                notes="Support + correct answer -> question; rows without a support passage "
                      "cannot be posed and are dropped (the count is logged)."),
        EvalSet("tweetqa", "ucsbnlp/tweet_qa", None, "validation",
                Normalizer("first_answer", {
                    "context": "Tweet", "answers": "Answer", "target": "Question",
                }),
                paper_scored="train (10,692)",
                split_why="Test answers are hidden, and train is the shots' pool: validation.",
                notes="Tweet + first gold answer -> question. Test answers are hidden; the "
                      "paper's release scored train, we score validation."),
    ),
)
