"""Metrics not built into lm-eval, computed with the reference packages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> Any:
    # imported here: rouge_score pulls in nltk (~1 s), which classification-only runs never need
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def rouge_l(reference: str, prediction: str, *, use_stemmer: bool = True) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference`` (the ``rouge-score`` package).

    Stemming is on by default (Porter stemmer, the package's standard setting for summaries);
    the paper's release scored without it.
    """
    return _scorer(use_stemmer).score(reference, prediction)["rougeL"].fmeasure
