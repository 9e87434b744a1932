"""Training data: the evaluation templates' prompt-completion pairs, or TULU conversations.

Supervised tasks (the paper's four, or any amuro set with a labelled train split): the training
split of the task's evaluation set, shuffled with a fixed seed (``sample_seed``), first ``n`` valid
rows (``n`` = ``num_train_examples``, or ``sample_fraction`` x the split's rows;
``amuro_tasks.loading.load_training_docs``), each rendered by
``amuro_tasks.prompts.render_example`` -- the very template the evaluation task uses -- so the
training prompt of a row *is* its evaluation prompt. TRL computes the loss on the completion only.

Examples longer than ``max_length`` tokens are shortened by truncating their long input field
(document, context, premise, first sentence), never the completion: TRL would otherwise cut the
completion off and silently drop the example.

TULU: ``allenai/tulu-v2-sft-mixture`` rows (``dataset``, ``id``, ``messages``), validated, shuffled
with the same seed; conversations longer than ``max_length`` lose their trailing turns.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from amuro_sft.chat_template import ROLES, TULU_CHAT_TEMPLATE
from amuro_sft.recipe import SFTRecipe
from amuro_tasks.errors import AmuroDataError
from amuro_tasks.families import get_family
from amuro_tasks.loading import (
    FIXTURE_DIR,
    data_source,
    load_raw_split,
    load_training_docs,
    shuffled_order,
)
from amuro_tasks.prompts import render_example
from amuro_tasks.specs import get_spec

log = logging.getLogger("amuro")

TULU_PATH = "allenai/tulu-v2-sft-mixture"
TULU_FIXTURE_KEY = "allenai__tulu-v2-sft-mixture/default"


@dataclass
class TrainingData:
    """The examples a run trains (and validates) on, with what provenance needs."""

    train: datasets.Dataset
    """Columns ``prompt``/``completion`` (tasks) or ``messages`` (TULU), nothing else."""
    validation: datasets.Dataset | None
    source: str
    dataset: str
    """Hub id of the dataset the rows come from."""
    split: str
    row_ids: list[Any]
    sample_hash: str
    """sha256 of the exact training examples, in training order."""
    val_row_ids: list[Any] = field(default_factory=list)
    truncated: int = 0
    dropped: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def examples_hash(rows: list[Mapping[str, Any]]) -> str:
    """sha256 (hex) of training examples, order-sensitive and key-order-insensitive."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _added_special_tokens(tokenizer) -> int:
    """Tokens the tokenizer adds around any text (a BOS for Llama-style tokenizers): TRL
    tokenizes prompt-completion text with them."""
    return len(tokenizer("")["input_ids"])


def fit_example(
    family: str, fmt: str, doc: Mapping[str, Any], tokenizer, max_length: int,
    added_tokens: int | None = None,
) -> tuple[dict[str, str] | None, bool]:
    """Render ``doc``; truncate its long input field until the sequence TRL trains on fits:
    special tokens the tokenizer adds (BOS), prompt, completion and the EOS TRL appends.

    Returns ``(example, truncated)``; ``example`` is ``None`` when even an empty field won't fit.
    ``added_tokens``: :func:`_added_special_tokens` of ``tokenizer``, when the caller has it.
    """
    example = render_example(family, fmt, doc)
    # the long input field, declared in amuro_tasks/families/<family>.py; a family without one
    # has short inputs: an example that does not fit is dropped and counted
    name = get_family(family).truncate_field
    doc = dict(doc)
    truncated = False
    if added_tokens is None:
        added_tokens = _added_special_tokens(tokenizer)
    specials = added_tokens + 1  # + TRL's EOS
    for _ in range(8):
        excess = _n_tokens(tokenizer, example["prompt"] + example["completion"]) + specials \
            - max_length
        if excess <= 0:
            return example, truncated
        if name is None or not isinstance(doc.get(name), str):
            return None, truncated
        ids = tokenizer(doc[name], add_special_tokens=False)["input_ids"]
        keep = len(ids) - excess - 4  # a small margin: tokens can merge across the cut
        if keep <= 0:
            return None, truncated
        doc[name] = tokenizer.decode(ids[:keep]).rstrip()
        example = render_example(family, fmt, doc)
        truncated = True
    return None, truncated


def _wanted(recipe: SFTRecipe, n_rows: int | None) -> int | None:
    """Training examples asked for: ``sample_fraction`` x rows, else ``num_train_examples``."""
    if recipe.args.sample_fraction is not None and n_rows is not None:
        return max(1, round(recipe.args.sample_fraction * n_rows))
    return recipe.args.num_train_examples


def _task_data(recipe: SFTRecipe, tokenizer, source: str) -> TrainingData:
    spec = get_spec(recipe.train_set)
    a = recipe.args
    n_rows = len(load_raw_split(spec, "train", source)) if a.sample_fraction is not None \
        else None
    want = _wanted(recipe, n_rows)
    n = None if want is None else want + recipe.val_examples
    skipped: dict[str, int] = {}
    docs = load_training_docs(
        spec.name, n=n, seed=a.sample_seed, split="train", source=source,
        on_invalid=a.on_invalid, drop_counts=skipped,
    )
    examples: list[dict[str, str]] = []
    ids: list[Any] = []
    truncated = dropped = 0
    added = _added_special_tokens(tokenizer)
    max_length = recipe.training.max_length
    for doc in docs:
        example, was_cut = fit_example(spec.family, a.format, doc, tokenizer, max_length, added)
        truncated += was_cut
        if example is None:
            dropped += 1
            continue
        examples.append(example)
        ids.append(doc["row_index"])
    data = _split(recipe, examples, ids, source, spec.path, truncated, dropped,
                  n_train=None if want is None else min(want, len(examples)))
    data.stats["invalid_rows"] = skipped.get("invalid", 0)
    data.stats["empty_rows"] = skipped.get("documented empty field", 0)
    return data


def _split(
    recipe: SFTRecipe, examples: list[dict[str, Any]], ids: list[Any], source: str,
    dataset: str, truncated: int, dropped: int, n_train: int | None = None,
) -> TrainingData:
    """The first ``n_train`` examples train, the next ``val_examples`` validate (the training
    sample never depends on the validation slice); ``None``: all but the slice train."""
    n_val = recipe.val_examples
    if n_train is None:
        n_train = len(examples) - n_val
    if n_train < 1 or len(examples) - n_train < n_val:
        raise AmuroDataError(
            f"{recipe.task}: {len(examples)} usable training rows, too few for "
            f"{n_train} training + {n_val} held-out validation examples"
        )
    wanted = recipe.args.num_train_examples
    if recipe.args.sample_fraction is None and wanted is not None and n_train < wanted:
        log.warning("%s: only %d training examples (asked for %d)", recipe.task, n_train, wanted)
    train_rows = examples[:n_train]
    val_rows = examples[n_train:n_train + n_val]
    return TrainingData(
        train=datasets.Dataset.from_list(train_rows),
        validation=datasets.Dataset.from_list(val_rows) if val_rows else None,
        source=source, dataset=dataset, split="train", row_ids=ids[:n_train],
        sample_hash=examples_hash(train_rows), truncated=truncated, dropped=dropped,
        val_row_ids=ids[n_train:n_train + n_val],
    )


# --------------------------------------------------------------------------------------- TULU
def validate_tulu_row(row: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    """The ``messages`` of a TULU-v2 row as ``[{role, content}]``, or an error naming ``where``."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise AmuroDataError(f"{where}: 'messages' must be a non-empty list, got {messages!r:.80}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise AmuroDataError(f"{where}: message {i} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise AmuroDataError(f"{where}: message {i} has role {role!r}; expected one of {ROLES}")
        if not isinstance(content, str) or not content.strip():
            raise AmuroDataError(f"{where}: message {i} ({role}) has empty or non-text content")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise AmuroDataError(f"{where}: no assistant turn (nothing to train on)")
    return out


def load_tulu_rows(source: str) -> datasets.Dataset:
    """The raw TULU-v2 training split from ``source`` (``hub``, ``fixtures`` or a mirror dir)."""
    if source == "hub":
        return datasets.load_dataset(TULU_PATH, split="train")
    root = FIXTURE_DIR if source == "fixtures" else Path(source)
    folder = root / TULU_FIXTURE_KEY
    for suffix, builder in ((".jsonl", "json"), (".parquet", "parquet")):
        path = folder / f"train{suffix}"
        if path.is_file():
            return datasets.load_dataset(builder, data_files=str(path), split="train")
    raise AmuroDataError(f"tulu/train: no local data at {folder}/train.jsonl (or .parquet)")


def _conversation_tokens(tokenizer, messages: list[dict[str, str]]) -> int:
    text = tokenizer.apply_chat_template(messages, chat_template=TULU_CHAT_TEMPLATE,
                                         tokenize=False)
    return _n_tokens(tokenizer, text)


def fit_conversation(
    messages: list[dict[str, str]], tokenizer, max_length: int
) -> tuple[list[dict[str, str]] | None, bool]:
    """Drop trailing turns until the conversation fits; ``None`` if its first reply does not."""
    msgs = list(messages)
    while msgs and msgs[-1]["role"] != "assistant":
        msgs.pop()
    truncated = len(msgs) != len(messages)
    while msgs and _conversation_tokens(tokenizer, msgs) > max_length:
        msgs.pop()
        while msgs and msgs[-1]["role"] != "assistant":
            msgs.pop()
        truncated = True
    return (msgs or None), truncated


def _tulu_data(recipe: SFTRecipe, tokenizer, source: str) -> TrainingData:
    raw = load_tulu_rows(source)
    a = recipe.args
    order = shuffled_order(len(raw), a.sample_seed)  # = raw.shuffle(seed=sample_seed)
    want = _wanted(recipe, len(raw))  # a fraction of the split's rows: the release's sample
    n_val = recipe.val_examples
    examples, ids = [], []
    truncated = dropped = invalid = 0
    for index in order:
        if want is not None and len(examples) == want + n_val:
            break  # validating and fitting the rest of a 326k-row split would only cost time
        row = raw[index]
        try:
            messages = validate_tulu_row(row, f"tulu/train row {index} (id {row.get('id')!r})")
        except AmuroDataError as err:
            if a.on_invalid == "error":
                raise AmuroDataError(f"{err}; pass --on_invalid skip to drop such rows") from None
            invalid += 1
            continue
        fitted, was_cut = fit_conversation(messages, tokenizer, recipe.training.max_length)
        truncated += was_cut
        if fitted is None:
            dropped += 1
            continue
        examples.append({"messages": fitted})
        ids.append(row.get("id", index))
    if invalid:
        log.warning("tulu/train: dropped %d invalid rows", invalid)
    data = _split(recipe, examples, ids, source, TULU_PATH, truncated, dropped + invalid,
                  n_train=None if want is None else min(want, len(examples)))
    data.stats["invalid_rows"] = invalid
    return data


def dataset_commit(path: str, revision: str | None, source: str) -> str | None:
    """The Hub commit a ``hub`` dataset revision resolves to now, for the provenance record
    (``None`` for local data, or when the Hub cannot be asked, e.g. offline)."""
    if source != "hub":
        return None
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(path, revision=revision or "main").sha
    except Exception as err:  # noqa: BLE001 - provenance is best effort, training goes on
        log.warning("could not resolve the commit of dataset %s@%s: %s", path,
                    revision or "main", type(err).__name__)
        return None


def build_training_data(recipe: SFTRecipe, tokenizer) -> TrainingData:
    """Load, validate, subsample, render and fit the training (and validation) examples."""
    source = data_source(recipe.args.data_source)
    data = _tulu_data(recipe, tokenizer, source) if recipe.is_tulu \
        else _task_data(recipe, tokenizer, source)
    revision = None if recipe.is_tulu else get_spec(recipe.train_set).revision
    data.stats["dataset_revision"] = (revision or "main") if source == "hub" else None
    data.stats["dataset_commit"] = dataset_commit(data.dataset, revision, source)
    if data.dropped:
        log.warning("%s: %d examples dropped (do not fit max_length=%d)", recipe.task,
                    data.dropped, recipe.training.max_length)
    return data
