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

TULU: ``allenai/tulu-v2-sft-mixture`` rows (``dataset``, ``id``, ``messages``) at a pinned commit,
shuffled with the same seed; conversations longer than ``max_length`` lose their trailing turns.
Empty messages are treated as the paper's pipeline treated them (open-instruct's TULU-2-era
``finetune.py``, which the authors' release copies; see :func:`validate_tulu_row`): kept, an empty
assistant turn trains on its EOS only, a conversation with no trainable token is dropped, an
empty message list is an error. The counts go into ``amuro_run.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import datasets

from amuro_sft.chat_template import ROLES, TULU_CHAT_TEMPLATE
from amuro_sft.recipe import SFTRecipe
from amuro_tasks.errors import AmuroDataError
from amuro_tasks.families import get_family
from amuro_tasks.loading import (
    data_source,
    load_raw_split,
    load_training_docs,
    shuffled_order,
    split_source,
)
from amuro_tasks.prompts import render_example
from amuro_tasks.sources import DataRef, SplitSource, open_split
from amuro_tasks.specs import get_spec

log = logging.getLogger("amuro")

TULU_PATH = "allenai/tulu-v2-sft-mixture"
TULU_COMMIT = "3c6b232f7fe8f8325143eb19554111562423d768"
"""The commit of ``allenai/tulu-v2-sft-mixture`` at which open-instruct issue #161 counted its 270
conversations with an empty user or assistant turn (https://github.com/allenai/open-instruct/
issues/161). That it is still served is checked at run time (``amuro data check``)."""
TULU = DataRef(TULU_PATH, None, TULU_COMMIT)
TULU_FIXTURE_KEY = TULU.mirror_key


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
    read = split_source(spec, "train", source)
    data.stats["data_read"] = read.as_dict() if read is not None else {}
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
    """The ``messages`` of a TULU-v2 row as ``[{role, content}]``, or an error naming ``where``.

    As the paper's pipeline (open-instruct ``finetune.py``, ``encode_with_messages_format``, in
    the authors' release ``open_instruct/finetune.py``): an empty message *list* is an error
    (``ValueError('messages field is empty.')`` there); an empty *message* (system, user or
    assistant; ~270 of the mixture's 326,154 conversations have one, open-instruct #161) is kept:
    an empty user or system turn is context like any other, an empty assistant turn trains on
    its EOS token only. A conversation without an assistant turn is returned too: it has no
    trainable token, which the caller drops (the release's ``filter(labels != -100).any()``).
    A wrong schema (not a list, a role outside ``system``/``user``/``assistant``, content that is
    not text) is an error.
    """
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise AmuroDataError(f"{where}: 'messages' must be a list, got {messages!r:.80}",
                             "not a list")
    if not messages:
        raise AmuroDataError(f"{where}: 'messages' is an empty list (the paper's pipeline "
                             "raises 'messages field is empty.' too)", "empty conversation")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise AmuroDataError(f"{where}: message {i} is not an object", "bad message")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise AmuroDataError(f"{where}: message {i} has role {role!r}; expected one of "
                                 f"{ROLES}", "bad role")
        if not isinstance(content, str):
            raise AmuroDataError(f"{where}: message {i} ({role}) has non-text content "
                                 f"{content!r:.40}", "not text")
        out.append({"role": role, "content": content})
    return out


def empty_turns(messages: list[dict[str, str]]) -> list[str]:
    """The roles of a conversation's empty (or whitespace-only) messages, in order."""
    return [m["role"] for m in messages if not m["content"].strip()]


def has_trainable_token(messages: list[dict[str, str]]) -> bool:
    """Whether a conversation has a token the loss is computed on: an assistant turn (an empty
    one still has its EOS)."""
    return any(m["role"] == "assistant" for m in messages)


def open_tulu(source: str) -> tuple[datasets.Dataset, SplitSource]:
    """The raw TULU-v2 training split from ``source`` (``hub``: at :data:`TULU_COMMIT`;
    ``fixtures`` or a mirror directory) and the record of where it came from."""
    return open_split(TULU, "train", source, name="tulu")


def load_tulu_rows(source: str) -> datasets.Dataset:
    """The raw TULU-v2 training split from ``source`` (``hub``, ``fixtures`` or a mirror dir)."""
    return open_tulu(source)[0]


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
    raw, read = open_tulu(source)
    a = recipe.args
    order = shuffled_order(len(raw), a.sample_seed)  # = raw.shuffle(seed=sample_seed)
    want = _wanted(recipe, len(raw))  # a fraction of the split's rows: the release's sample
    n_val = recipe.val_examples
    examples, ids = [], []
    truncated = dropped = invalid = untrainable = with_empty = 0
    empty_by_role = dict.fromkeys(ROLES, 0)
    invalid_by_kind: dict[str, int] = {}
    for index in order:
        if want is not None and len(examples) == want + n_val:
            break  # validating and fitting the rest of a 326k-row split would only cost time
        row = raw[index]
        try:
            messages = validate_tulu_row(row, f"tulu/train row {index} (id {row.get('id')!r})")
        except AmuroDataError as err:
            if a.on_invalid == "error":
                raise AmuroDataError(f"{err}; pass --on_invalid skip to drop such rows",
                                     err.kind) from None
            invalid += 1
            invalid_by_kind[err.kind] = invalid_by_kind.get(err.kind, 0) + 1
            continue
        if not has_trainable_token(messages):
            untrainable += 1  # no assistant turn: nothing to train on, dropped as the release
            continue
        fitted, was_cut = fit_conversation(messages, tokenizer, recipe.training.max_length)
        truncated += was_cut
        if fitted is None:
            dropped += 1
            continue
        empty = empty_turns(fitted)
        with_empty += bool(empty)
        for role in empty:
            empty_by_role[role] += 1
        examples.append({"messages": fitted})
        ids.append(row.get("id", index))
    if invalid:
        log.warning("tulu/train: dropped %d invalid rows (%s)", invalid, invalid_by_kind)
    if untrainable:
        log.warning("tulu/train: dropped %d conversations with no assistant turn (no trainable "
                    "token)", untrainable)
    if with_empty:
        log.warning("tulu/train: %d conversations kept with empty turns (%s); an empty "
                    "assistant turn trains on its EOS only, as the paper's pipeline", with_empty,
                    ", ".join(f"{n} {r}" for r, n in empty_by_role.items() if n))
    data = _split(recipe, examples, ids, source, TULU_PATH, truncated,
                  dropped + invalid + untrainable,
                  n_train=None if want is None else min(want, len(examples)))
    data.stats["invalid_rows"] = invalid
    data.stats["invalid_rows_by_kind"] = invalid_by_kind
    data.stats["dropped_no_trainable_token"] = untrainable
    data.stats["conversations_with_empty_turns"] = with_empty
    data.stats["empty_turns_by_role"] = empty_by_role
    data.stats["data_read"] = read.as_dict()
    return data


def build_training_data(recipe: SFTRecipe, tokenizer) -> TrainingData:
    """Load, validate, subsample, render and fit the training (and validation) examples.

    ``stats`` records where the rows came from (``dataset_revision``: the revision asked for;
    ``dataset_commit``: the commit read, ``None`` for local files or an unresolved offline read;
    ``data_read``: the full record) and what was dropped."""
    source = data_source(recipe.args.data_source)
    data = _tulu_data(recipe, tokenizer, source) if recipe.is_tulu \
        else _task_data(recipe, tokenizer, source)
    read = data.stats.get("data_read", {})
    data.stats["dataset_revision"] = read.get("revision")
    data.stats["dataset_commit"] = read.get("commit")
    if data.dropped:
        log.warning("%s: %d examples dropped (do not fit max_length=%d)", recipe.task,
                    data.dropped, recipe.training.max_length)
    return data


def check_tulu(source: str, *, n: int | None = None, on_invalid: str = "error",
               tokenizer=None) -> Any:
    """``amuro data check`` of TULU's first ``n`` conversations (:mod:`amuro_tasks.check`):
    source and commit, conversations read and trainable, empty turns by role, invalid rows by
    kind, the longest conversation in tokens of ``tokenizer`` (TULU's chat format)."""
    from itertools import islice

    from amuro_tasks.check import DEFAULT_ROWS, SplitReport

    n = DEFAULT_ROWS if n is None else n
    report = SplitReport("tulu", "train", "training", on_invalid)
    try:
        data, record = open_split(TULU, "train", source, streaming=source == "hub", name="tulu")
        raw = list(islice(data, n)) if source == "hub" else \
            data.select(range(min(n, len(data)))).to_list()
    except Exception as err:  # noqa: BLE001 - unreadable, or a network error mid-stream
        report.fatal.append(str(err) if isinstance(err, AmuroDataError)
                            else f"tulu/train: reading failed: {type(err).__name__}: {err}")
        return report
    report.source = record.as_dict()
    report.notes += record.notes
    report.rows_read = len(raw)
    by_role = dict.fromkeys(ROLES, 0)
    with_empty = untrainable = 0
    longest = -1
    for index, row in enumerate(raw):
        try:
            messages = validate_tulu_row(row, f"tulu/train row {index} (id {row.get('id')!r})")
        except AmuroDataError as err:
            report.count_invalid(err)
            continue
        if not has_trainable_token(messages):
            untrainable += 1
            continue
        report.usable += 1
        empty = empty_turns(messages)
        with_empty += bool(empty)
        for role in empty:
            by_role[role] += 1
        if tokenizer is not None:
            size = _conversation_tokens(tokenizer, messages)
            if size > longest:
                longest, report.longest_input_row = size, index
    if longest >= 0:
        report.longest_input_tokens = longest
    report.info = {"conversations_with_empty_turns": with_empty, "empty_turns_by_role": by_role,
                   "dropped_no_trainable_token": untrainable}
    if with_empty:
        report.notes.append(f"{with_empty} conversations with empty turns ("
                            + ", ".join(f"{k} {v}" for k, v in by_role.items() if v)
                            + "): kept, an empty assistant turn trains on its EOS only")
    if untrainable:
        report.notes.append(f"{untrainable} conversations without an assistant turn: dropped")
    return report.conclude()
