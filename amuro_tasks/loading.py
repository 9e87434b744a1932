"""Load an evaluation set as validated docs, from the Hub or from a local mirror.

The data source is chosen by one documented switch, the environment variable ``AMURO_DATA``
(or the ``amuro_data`` key of lm-eval's ``--metadata``):

* ``hub`` (default): the real data, pinned to a commit where one is declared, resolved to one
  otherwise (:mod:`amuro_tasks.sources`: the Hub, or the authors' GitHub files for LLMBar);
* ``fixtures``: the small synthetic files shipped in ``amuro_tasks/fixtures`` (offline tests, demo);
* any directory: a local mirror with the same layout, ``<owner>__<name>/<config>/<split>.jsonl``
  (or ``.parquet``), e.g. for clusters without Hub access.

Which split is scored follows the set's declared protocols (``amuro_split``: ``paper``, the
default, or ``upstream``; :data:`amuro_tasks.family.PROTOCOLS`). Loading is memoised per process,
so the three prompt formats of a set share one load; what each load read (source, commit, files,
rows dropped) is kept for the results (:func:`data_provenance`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets

from amuro_tasks import rows as rows_mod
from amuro_tasks.errors import AmuroConfigError, AmuroDataError
from amuro_tasks.families import get_spec
from amuro_tasks.family import DEFAULT_PROTOCOL, FORMATS, PROTOCOLS, DatasetSpec, Split
from amuro_tasks.prompts import render_prompt
from amuro_tasks.rows import Doc
from amuro_tasks.sources import FIXTURE_DIR, SplitSource, open_split

log = logging.getLogger("amuro")

DATA_ENV = "AMURO_DATA"
__all__ = ["FIXTURE_DIR", "LoadOptions", "data_provenance", "data_source", "load_docs",
           "load_raw_split", "load_training_docs", "split_names"]
DEFAULT_FEWSHOT_SEED = 1234
"""Seed of the few-shot pool: every model sees the same shots."""
FEWSHOT_POOL_SIZE = 16
"""Rows in the shot pool: enough for up to 16-shot runs (raise with amuro_fewshot_pool_size)."""
ON_INVALID = ("error", "skip")
INVALID_HINT = (". To drop invalid rows instead: lm_eval --metadata "
                "'{\"amuro_on_invalid\": \"skip\"}', amuro-sft --on-invalid skip")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a set; hashable so loads can be memoised."""

    source: str = "hub"
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    fewshot_pool_size: int = FEWSHOT_POOL_SIZE
    on_invalid: str = "error"
    protocol: str = DEFAULT_PROTOCOL
    """Which split is scored: ``paper`` or ``upstream`` (:data:`PROTOCOLS`)."""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise AmuroConfigError(
                f"amuro_split must be one of {PROTOCOLS}, got {self.protocol!r}"
            )
        if self.on_invalid not in ON_INVALID:
            raise AmuroConfigError(
                f"amuro_on_invalid must be one of {ON_INVALID}, got {self.on_invalid!r}"
            )
        if self.fewshot_pool_size < 1:
            raise AmuroConfigError("amuro_fewshot_pool_size must be >= 1")


def data_source(override: str | None = None) -> str:
    """The active data source: ``override``, else ``$AMURO_DATA``, else ``"hub"``."""
    source = override or os.environ.get(DATA_ENV) or "hub"
    if source not in ("hub", "fixtures") and not Path(source).is_dir():
        raise AmuroConfigError(
            f"{DATA_ENV}={source!r} is neither 'hub', 'fixtures' nor an existing directory"
        )
    return source


def split_names(split: str | tuple[str, ...]) -> tuple[str, ...]:
    """The split(s) of a spec's ``eval_split``/``fewshot_split`` as a tuple."""
    return (split,) if isinstance(split, str) else tuple(split)


_READ: dict[tuple[str, str | None, str, str], SplitSource] = {}
"""What every split read in this process came from (see :func:`load_raw_split`)."""
_PROVENANCE: dict[tuple[str, str], dict] = {}
"""Per (set, protocol): what its last load read and dropped (see :func:`data_provenance`)."""


def load_raw_split(spec: DatasetSpec, split: str, source: str) -> datasets.Dataset:
    """One split of ``spec`` in the dataset's own schema, from ``source``
    (:func:`amuro_tasks.sources.open_split`); an unreadable split raises
    :class:`AmuroDataError` naming the set, split and file."""
    data, record = open_split(spec.ref, split, source, name=spec.name)
    _READ[(spec.path, spec.config, split, source)] = record
    return data


def split_source(spec: DatasetSpec, split: str, source: str) -> SplitSource | None:
    """The record of the last read of ``split`` of ``spec`` from ``source`` in this process."""
    return _READ.get((spec.path, spec.config, split, source))


def data_provenance(name: str, protocol: str = DEFAULT_PROTOCOL) -> dict | None:
    """What the last load of set ``name`` under ``protocol`` in this process read: protocol,
    scored and shot splits, each split's source (repository and commit, or file), rows scored,
    shots pooled, and rows dropped by reason (invalid rows skipped, documented empty fields).
    ``None`` if the set was not loaded here."""
    return _PROVENANCE.get((name, protocol))


def iter_docs(
    spec: DatasetSpec, split: str, rows: datasets.Dataset, order: list[int] | None,
    on_invalid: str, max_words: dict[str, int] | None = None,
    drop_counts: dict[str, int] | None = None,
) -> Iterator[Doc]:
    """Normalise ``rows`` (in ``order``) to docs, each with its ``row_index`` in the split
    (:func:`amuro_tasks.rows.iter_docs` with the plugin's error hint).

    Rows dropped on the way (documented empty fields, invalid rows when ``on_invalid="skip"``,
    shot candidates over :attr:`DatasetSpec.fewshot_max_words`) are counted and logged when the
    iteration ends, also when the caller stops early; pass ``drop_counts`` to receive the counts
    (reason -> rows).
    """
    # A whole split converts to Python in one Arrow call (~0.5 us a row, against ~11 us for
    # row-by-row formatting); a shuffled walk over a large split reads only the rows it needs.
    return rows_mod.iter_docs(spec.rules, split, rows.to_list() if order is None else rows, order,
                              on_invalid, max_words, drop_counts, INVALID_HINT)


def shuffled_order(n: int, seed: int) -> list[int]:
    """The row order of ``Dataset.shuffle(seed=seed)``: numpy's PCG64 permutation, so that
    ``shuffle(seed=42).select(range(6000))`` in the paper's release picks the same rows."""
    import numpy as np

    return np.random.default_rng(seed).permutation(n).tolist()


@lru_cache(maxsize=32)
def load_docs(name: str, options: LoadOptions) -> datasets.DatasetDict:
    """Validated docs of set ``name``: ``eval`` (the scored rows) and ``fewshot`` (the shot pool).

    The few-shot pool is the first ``fewshot_pool_size`` valid rows of the training split after a
    seeded shuffle; sets without a training split carve it out of the eval split and do not
    score those rows. Shots never include a scored row.
    """
    spec = get_spec(name)
    scored = spec.split_for(options.protocol)
    dropped: dict[str, int] = {}
    if not isinstance(scored, str) or not isinstance(spec.fewshot_split, str | None):
        eval_docs, pool = _multi_split_docs(spec, scored, options, dropped)  # tuples (LLMBar)
    else:
        eval_docs, pool = _single_split_docs(spec, scored, options, dropped)
    eval_where = "+".join(split_names(scored))
    pool_where = "+".join(split_names(spec.fewshot_split or scored))
    if not eval_docs:
        raise AmuroDataError(f"{spec.name}/{eval_where}: no usable rows")
    if not pool:
        raise AmuroDataError(f"{spec.name}/{pool_where}: no usable few-shot rows")
    splits = dict.fromkeys([*split_names(scored), *split_names(spec.fewshot_split or ())])
    reads = [split_source(spec, s, options.source) for s in splits]
    _PROVENANCE[(spec.name, options.protocol)] = {
        "set": spec.name, "protocol": options.protocol, "scored_split": eval_where,
        "shots_from": pool_where if spec.fewshot_split else f"{eval_where} (carved out)",
        "on_invalid": options.on_invalid, "rows_scored": len(eval_docs), "shot_pool": len(pool),
        "dropped": dict(dropped), "sources": [r.as_dict() for r in reads if r is not None],
    }
    if dropped.get("invalid"):
        log.warning("%s/%s: %d invalid rows skipped (amuro_on_invalid=skip)", spec.name,
                    eval_where, dropped["invalid"])
    key = f"amuro-{spec.name}-{options}"
    return datasets.DatasetDict(
        eval=in_memory_dataset(with_prompts(spec, eval_docs), f"{key}-eval"),
        fewshot=in_memory_dataset(with_prompts(spec, pool), f"{key}-fewshot"),
    )


def prompt_field(fmt: str) -> str:
    """The doc field that holds the prompt pre-rendered in format ``fmt``."""
    return f"prompt_{fmt}"


def with_prompts(spec: DatasetSpec, docs: list[Doc]) -> list[Doc]:
    """``docs`` with their prompt in every format rendered once (lm-eval asks for a shot's
    prompt again for every document it precedes; the three formats share one load)."""
    for doc in docs:
        rendered = {prompt_field(fmt): render_prompt(spec.family, fmt, doc) for fmt in FORMATS}
        doc.update(rendered)
    return docs


def in_memory_dataset(rows: list[Doc], fingerprint: str) -> datasets.Dataset:
    """An in-memory ``Dataset`` of ``rows`` with a given fingerprint (``from_list`` would hash
    every row with dill to make one, which costs more than the rest of the load)."""
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable.from_pylist(rows), fingerprint=fingerprint)


def _single_split_docs(spec: DatasetSpec, scored: str, options: LoadOptions,
                       dropped: dict[str, int]) -> tuple[list[Doc], list[Doc]]:
    raw_eval = load_raw_split(spec, scored, options.source)
    if len(raw_eval) == 0:
        raise AmuroDataError(f"{spec.name}/{scored}: the split is empty")
    if spec.fewshot_split is None:
        return rows_mod.carve(spec.rules, scored, raw_eval,
                              shuffled_order(len(raw_eval), options.fewshot_seed),
                              options.fewshot_pool_size, options.on_invalid, INVALID_HINT,
                              drop_counts=dropped)
    eval_docs = list(iter_docs(spec, scored, raw_eval, None, options.on_invalid,
                               drop_counts=dropped))
    raw_pool = load_raw_split(spec, spec.fewshot_split, options.source)
    pool = rows_mod.shot_pool(spec.rules, spec.fewshot_split, raw_pool,
                              shuffled_order(len(raw_pool), options.fewshot_seed), eval_docs,
                              options.fewshot_pool_size)
    return eval_docs, pool


def _multi_split_docs(spec: DatasetSpec, scored: Split, options: LoadOptions,
                      dropped: dict[str, int]) -> tuple[list[Doc], list[Doc]]:
    """Docs for specs whose eval or few-shot side spans several splits (LLMBar).

    Eval docs are the splits' rows in order, each doc also naming its ``source_split``; the
    few-shot pool is the first ``fewshot_pool_size`` valid rows of the few-shot splits after a
    seeded shuffle of all their rows. The eval and few-shot splits must not overlap.
    """
    eval_splits = split_names(scored)
    if spec.fewshot_split is None:
        raise AmuroConfigError(f"{spec.name}: several eval splits need an explicit fewshot_split")
    pool_splits = split_names(spec.fewshot_split)
    if set(eval_splits) & set(pool_splits):
        raise AmuroConfigError(f"{spec.name}: eval and few-shot splits overlap")
    eval_docs: list[Doc] = []
    for split in eval_splits:
        raw = load_raw_split(spec, split, options.source)
        if len(raw) == 0:
            raise AmuroDataError(f"{spec.name}/{split}: the split is empty")
        for doc in iter_docs(spec, split, raw, None, options.on_invalid, drop_counts=dropped):
            eval_docs.append({**doc, "source_split": split})
    candidates: list[Doc] = []
    for split in pool_splits:
        raw = load_raw_split(spec, split, options.source)
        candidates += [{**doc, "source_split": split}
                       for doc in iter_docs(spec, split, raw, None, "skip")]
    pool = rows_mod.pooled(candidates, shuffled_order(len(candidates), options.fewshot_seed),
                           options.fewshot_pool_size)
    return eval_docs, pool


def load_training_docs(
    name: str, *, n: int | None = 6000, seed: int = 42, split: str = "train",
    source: str | None = None, on_invalid: str = "error",
    drop_counts: dict[str, int] | None = None,
) -> datasets.Dataset:
    """Training docs of set ``name``: ``split`` shuffled with ``seed``, first ``n`` valid rows.

    This is the paper's recipe (``shuffle(seed=42).select(range(6000))``), validated row by row.
    Rows skipped on the way are counted into ``drop_counts`` (reason -> rows) when given.
    """
    spec = get_spec(name)
    raw = load_raw_split(spec, split, data_source(source))
    docs = iter_docs(spec, split, raw, shuffled_order(len(raw), seed), on_invalid,
                     drop_counts=drop_counts)
    selected = list(docs) if n is None else rows_mod.take(docs, n)
    if not selected:
        raise AmuroDataError(f"{spec.name}/{split}: no usable training rows")
    return in_memory_dataset(selected, f"amuro-train-{spec.name}-{split}-{seed}-{n}-{source}")
