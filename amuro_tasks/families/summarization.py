"""Summarization: XSum, XL-Sum (English) and CNN/DailyMail.

The paper's XSum fine-tuning task (in-domain: XSum, XL-Sum; out-of-domain: CNN). Greedy
generation, scored by ROUGE-L F1. Prompts are the paper's Table 3.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

SHOT_WORDS = {"document": 200}
"""Summarization shots: documents of at most 200 words, so that 4 shots plus the scored
document fit OLMo-1B's 2048-token window instead of being cut from the left by lm-eval."""
_PARQUET = "refs/convert/parquet"


def _summary(document: str, summary: str) -> Normalizer:
    return Normalizer("text_to_text", {"fields": {"document": document}, "target": summary})


FAMILY = Family(
    name="summarization",
    title="summarization",
    kind="generation",
    prompts=Prompts(
        default="### Input: {{ document }}\n ### Summary:",
        instruct="Please read the following text: {{ document }} Provide a summary:",
        io="{{ document }}",
    ),
    truncate_field="document",
    sets=(
        EvalSet("xsum", "EdinburghNLP/xsum", None, "test", _summary("document", "summary"),
                revision=_PARQUET, data_dir="default", fewshot_max_words=SHOT_WORDS,
                skip_if_empty=("document",),
                notes="Script-only on the Hub: loaded from its parquet conversion. Some rows "
                      "have an empty document (a defect of the original BBC extraction, "
                      "EdinburghNLP/xsum discussion #4): nothing to summarise, so they are "
                      "dropped and counted in the log."),
        EvalSet("xlsum", "csebuetnlp/xlsum", "english", "test", _summary("text", "summary"),
                revision=_PARQUET, data_dir="english", fewshot_max_words=SHOT_WORDS,
                notes="Script-only on the Hub: loaded from its parquet conversion."),
        EvalSet("cnn", "abisee/cnn_dailymail", "3.0.0", "test",
                _summary("article", "highlights"), fewshot_max_words={"document": 150},
                notes="Shots are drawn from articles of at most 150 words (CNN articles average "
                      "~700). By a words-to-tokens estimate (~1.3 tokens a word), four such "
                      "shots with their highlights take ~1,000 tokens, so in a 2048-token window "
                      "a scored article over ~750 words makes lm-eval cut the context from the "
                      "left (first shot first); the article is cut only when it alone exceeds "
                      "the window. Not measured on the real split here (no hub)."),
    ),
)
