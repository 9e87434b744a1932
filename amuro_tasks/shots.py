"""How the shots of an amuro task are chosen: one fixed set, or a set per document.

Every amuro task YAML names the sampler ``amuro`` (``fewshot_config.sampler``), which this module
registers with lm-eval (:data:`lm_eval.api.samplers.SAMPLER_REGISTRY`: lm-eval 0.4.13 has no
registration function for samplers, so the class is added to its registry dict) when the task
folder's ``utils.py`` imports :mod:`amuro_tasks.harness`. The sampler picks the shots from the set's
shot pool (:func:`amuro_tasks.loading.load_docs`: the first ``amuro_fewshot_pool_size`` valid rows
of the shot split after a shuffle seeded by ``amuro_fewshot_seed``; never a scored row) in one of
two ways, chosen by the ``amuro_shots`` metadata key:

* ``fixed`` (the default; the paper's protocol): the first ``num_fewshot`` rows of the pool, in
  order, for every document -- exactly lm-eval's ``first_n`` sampler;
* ``per_document``: for each document, ``num_fewshot`` rows drawn without replacement from the
  pool -- exactly lm-eval's ``default`` sampler (:class:`~lm_eval.api.samplers.ContextSampler`):
  one ``random.Random`` seeded with lm-eval's few-shot seed (``fewshot_random_seed`` of
  ``simple_evaluate``, the fourth value of ``lm_eval --seed``; 1234 by default), drawing for the
  documents in order. A different ``amuro_fewshot_seed`` gives another pool, hence other shots.

The sampler learns the mode from the pool itself: :func:`amuro_tasks.harness.load_amuro_set`
marks every pool row with ``amuro_shots: per_document`` in that mode (an lm-eval sampler sees the
shot docs, never the task's metadata); unmarked pools are ``fixed``, so the default changes no
context lm-eval builds. The upstream export keeps lm-eval's ``first_n`` (fixed shots only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval.api.samplers import SAMPLER_REGISTRY, ContextSampler, FirstNSampler

from amuro_tasks.errors import AmuroConfigError

SAMPLER_NAME = "amuro"
"""The ``fewshot_config.sampler`` of every plugin task YAML."""
SHOT_MODES: tuple[str, ...] = ("fixed", "per_document")
"""Values of the ``amuro_shots`` metadata key (and the study's ``eval.shot_sampling``)."""
DEFAULT_SHOT_MODE = "fixed"
MODE_FIELD = "amuro_shots"
"""The pool rows' field that carries a non-default mode to the sampler."""


class AmuroSampler(ContextSampler):
    """``fixed``: lm-eval's ``first_n``; ``per_document``: lm-eval's ``default`` (module doc)."""

    def __init__(self, df: Sequence[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        first = self.df[0] if self.df else {}
        self.mode = shot_mode(first.get(MODE_FIELD) or None)

    def sample(self, n: int, eval_doc: dict[str, Any] | None = None,
               df: Sequence[dict[str, Any]] | None = None, **kwargs: Any
               ) -> Sequence[dict[str, Any]]:
        """``n`` shots for the next document (see the class doc)."""
        pool = len(df or self.df)
        if n > pool:
            raise AmuroConfigError(
                f"{n} shots asked for, but the shot pool has {pool} rows: lower num_fewshot or "
                "raise --metadata amuro_fewshot_pool_size (a set's pool is also capped by its "
                "usable training rows)")
        if self.mode == "per_document":
            return ContextSampler.sample(self, n, eval_doc=eval_doc, df=df, **kwargs)
        return FirstNSampler.sample(self, n, eval_doc=eval_doc, df=df, **kwargs)


def register() -> None:
    """Make ``sampler: amuro`` known to lm-eval (idempotent)."""
    SAMPLER_REGISTRY.setdefault(SAMPLER_NAME, AmuroSampler)


def shot_mode(value: Any) -> str:
    """``value`` as an ``amuro_shots`` mode, or a clear error listing the modes."""
    mode = DEFAULT_SHOT_MODE if value is None else str(value)
    if mode not in SHOT_MODES:
        raise AmuroConfigError(f"amuro_shots must be one of {SHOT_MODES}, got {value!r}")
    return mode
