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
PARQUET_CONVERSION_FILES: tuple[str, ...] = (
    "{config}/{split}/*.parquet",          # the layout since mid-2023: default/test/0000.parquet
    "{config}/partial-{split}/*.parquet",  # a split converted only in part (recorded as such)
    "{config}/*-{split}.parquet",          # the older layout: default/xsum-test.parquet
    "{config}/*-{split}-*.parquet",        # ... sharded: english/xlsum-train-00000-of-00002.parquet
)
"""One split's files in a ``refs/convert/parquet`` commit, whichever layout that commit has."""
XSUM_PARQUET_COMMIT = "ed4a1bafca875c41e3b9149c3479132ba21dcd53"
"""A commit of ``EdinburghNLP/xsum``'s ``refs/convert/parquet`` (2023-08-20, after the 2023-08-17
"Update parquet files"; seen at https://huggingface.co/datasets/EdinburghNLP/xsum/commits/
ed4a1bafca875c41e3b9149c3479132ba21dcd53/default). Its file layout is not verified here: every
layout of :data:`PARQUET_CONVERSION_FILES` is tried, and the files read are recorded."""
XLSUM_PARQUET_COMMIT = "c74225391e1c0b10c22f306937257d529661fb69"
"""A commit of ``csebuetnlp/xlsum``'s ``refs/convert/parquet`` (2023-08-20; https://huggingface.co/
datasets/csebuetnlp/xlsum/commits/c74225391e1c0b10c22f306937257d529661fb69). Layout unverified,
as above."""


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
                revision=XSUM_PARQUET_COMMIT, hub_files=PARQUET_CONVERSION_FILES,
                fewshot_max_words=SHOT_WORDS, skip_if_empty=("document",),
                paper_scored="test (11,334)", split_why="As the paper; lm-eval has no XSum task "
                                                        "of its own (only unitxt's).",
                notes="Script-only on the Hub: read from its parquet conversion at a pinned "
                      "commit. Some rows "
                      "have an empty document (a defect of the original BBC extraction, "
                      "EdinburghNLP/xsum discussion #4): nothing to summarise, so they are "
                      "dropped and counted in the log."),
        EvalSet("xlsum", "csebuetnlp/xlsum", "english", "test", _summary("text", "summary"),
                revision=XLSUM_PARQUET_COMMIT, hub_files=PARQUET_CONVERSION_FILES,
                fewshot_max_words=SHOT_WORDS, paper_scored="test (11,535)",
                split_why="As the paper; lm-eval's XL-Sum tasks are other languages' (afrobench).",
                notes="Script-only on the Hub: read from its parquet conversion at a pinned "
                      "commit."),
        EvalSet("cnn", "abisee/cnn_dailymail", "3.0.0", "test",
                _summary("article", "highlights"), fewshot_max_words={"document": 150},
                paper_scored="test (11,490)", upstream_scored="test (`cnn_dailymail`)",
                split_why="As the paper and lm-eval.",
                notes="Shots are drawn from articles of at most 150 words (CNN articles average "
                      "~700). By a words-to-tokens estimate (~1.3 tokens a word), four such "
                      "shots with their highlights take ~1,000 tokens, so in a 2048-token window "
                      "a scored article over ~750 words makes lm-eval cut the context from the "
                      "left (first shot first); the article is cut only when it alone exceeds "
                      "the window. Not measured on the real split here (no hub)."),
    ),
)
