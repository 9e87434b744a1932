"""The functions lm-eval calls through ``!function`` in amuro's task YAMLs.

Each task folder's ``utils.py`` re-exports from here, so the YAMLs stay thin and all logic lives
in the package (the prompts in the family declarations, ``amuro_tasks/families/``).

The plugin loads its data through lm-eval's ``custom_dataset`` hook (:func:`load_amuro_set`), not
through ``dataset_path``: that is what lets one switch (``AMURO_DATA``: hub, fixtures or a local
mirror) and the ``--metadata`` options below choose the source, the shot pool and the scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import datasets

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.family import DEFAULT_PROTOCOL
from amuro_tasks.loading import (
    DEFAULT_FEWSHOT_SEED,
    FEWSHOT_POOL_SIZE,
    LoadOptions,
    data_provenance,
    data_source,
    load_docs,
    prompt_field,
)
from amuro_tasks.metrics import rouge_l
from amuro_tasks.prompts import render_prompt
from amuro_tasks.scoring import SCORING_MODES, first_token_choices, tokenizer_from_metadata
from amuro_tasks.shots import DEFAULT_SHOT_MODE, MODE_FIELD, register, shot_mode
from amuro_tasks.specs import SPECS, get_spec

register()  # the YAMLs' ``fewshot_config.sampler: amuro`` (amuro_tasks.shots)

METADATA_KEYS = {
    "amuro_set": "evaluation set (set by the task YAML)",
    "amuro_data": "data source: hub (default), fixtures, or a local mirror directory",
    "amuro_scoring": "classification scoring: choice (default) or first_token (the paper's)",
    "amuro_fewshot_seed": f"seed of the few-shot pool (default {DEFAULT_FEWSHOT_SEED})",
    "amuro_fewshot_pool_size": f"rows in the few-shot pool (default {FEWSHOT_POOL_SIZE})",
    "amuro_shots": f"{DEFAULT_SHOT_MODE} (default: the pool's first rows for every document) or "
                   "per_document (a seeded draw from the pool for each document)",
    "amuro_on_invalid": "error (default) or skip rows that fail validation; or a mapping "
                        "set -> error|skip (sets not named: error)",
    "amuro_split": "which split is scored: paper (default; the paper's) or upstream (lm-eval's)",
}


def on_invalid_for(amuro_set: str, value: Any) -> str:
    """The ``amuro_on_invalid`` mode of one set: the value itself, or its entry in a mapping of
    set -> mode (``error`` for sets it does not name)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(SPECS))
        if unknown:
            raise AmuroConfigError(f"amuro_on_invalid names unknown evaluation sets {unknown}")
        return str(value.get(amuro_set, "error"))
    return str(value)


log = logging.getLogger("amuro")


class CustomDatasetNotice(logging.Filter):
    """Drops lm-eval's "Custom kwargs can be passed to `--metadata`" warning for amuro tasks.

    lm-eval 0.4.13 logs it at WARNING for every task built with ``custom_dataset`` (63 lines for
    ``--tasks 'amuro_*'``, more when tags overlap), whatever the user passed; amuro's ``--metadata``
    keys are documented in the READMEs and checked by :func:`load_amuro_set`, so for amuro's tasks
    it is noise nobody can act on. Other tasks' notices pass through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("amuro_") and ": Custom kwargs can be passed" in message)


def quiet_custom_dataset_notice() -> None:
    """Install :class:`CustomDatasetNotice` on lm-eval's task logger (once)."""
    logger = logging.getLogger("lm_eval.api.task")
    if not any(isinstance(f, CustomDatasetNotice) for f in logger.filters):
        logger.addFilter(CustomDatasetNotice())


def load_amuro_set(amuro_set: str, **metadata: Any) -> datasets.DatasetDict:
    """lm-eval ``custom_dataset`` hook: the validated ``eval`` and ``fewshot`` docs of a set.

    ``metadata`` is lm-eval's ``--model_args`` merged with ``--metadata``; the ``amuro_*`` keys
    listed in :data:`METADATA_KEYS` are read, others are ignored.
    """
    unknown = sorted(k for k in metadata if k.startswith("amuro_") and k not in METADATA_KEYS)
    if unknown:
        raise AmuroConfigError(
            f"unknown metadata key(s) {unknown} for task set {amuro_set!r}; known: "
            + ", ".join(f"{k} ({v})" for k, v in METADATA_KEYS.items())
        )
    shots = shot_mode(metadata.get("amuro_shots"))
    scoring = str(metadata.get("amuro_scoring", "choice"))
    if scoring not in SCORING_MODES:  # before any data is read
        raise AmuroConfigError(f"amuro_scoring must be one of {SCORING_MODES}, got {scoring!r}")
    options = LoadOptions(
        source=data_source(metadata.get("amuro_data")),
        fewshot_seed=int(metadata.get("amuro_fewshot_seed", DEFAULT_FEWSHOT_SEED)),
        fewshot_pool_size=int(metadata.get("amuro_fewshot_pool_size", FEWSHOT_POOL_SIZE)),
        on_invalid=on_invalid_for(amuro_set, metadata.get("amuro_on_invalid", "error")),
        protocol=str(metadata.get("amuro_split", DEFAULT_PROTOCOL)),
    )
    docs = load_docs(amuro_set, options)
    read = data_provenance(amuro_set, options.protocol) or {}
    for source in read.get("sources", []):  # lm-eval's results cannot carry it: log it
        log.info("%s: split %s read from %s %s (commit %s)", amuro_set, source["split"],
                 source["source"], source["location"], source["commit"] or "-")
    if shots != DEFAULT_SHOT_MODE:  # the sampler reads the mode from the pool's rows
        pool = docs["fewshot"]
        docs = datasets.DatasetDict(eval=docs["eval"],
                                    fewshot=pool.add_column(MODE_FIELD, [shots] * len(pool)))
    if scoring == "first_token" and get_spec(amuro_set).is_classification:
        choices = first_token_choices(docs["eval"][0]["choices"], tokenizer_from_metadata(metadata))
        docs = datasets.DatasetDict(
            {split: ds.map(lambda _: {"choices": choices}) for split, ds in docs.items()}
        )
    return docs


def doc_to_text(family: str, fmt: str) -> Callable[[Mapping[str, Any]], str]:
    """An lm-eval ``doc_to_text`` that renders the ``family`` prompt in format ``fmt``.

    Docs from :func:`load_amuro_set` carry the prompt pre-rendered by the same template (see
    :func:`amuro_tasks.loading.with_prompts`); other docs are rendered on the spot.
    """
    field = prompt_field(fmt)

    def _doc_to_text(doc: Mapping[str, Any]) -> str:
        if field in doc:
            return doc[field]
        return render_prompt(family, fmt, doc)

    _doc_to_text.__name__ = _doc_to_text.__qualname__ = f"doc_to_text_{family}_{fmt}"
    return _doc_to_text


def process_results_rouge(doc: Mapping[str, Any], results: list[str]) -> dict[str, float]:
    """lm-eval ``process_results`` for generation: ROUGE-L F1 (stemmed) against ``target``."""
    return {"rougeL": rouge_l(doc["target"], results[0].strip())}
