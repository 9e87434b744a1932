"""``amuro-hf``: lm-eval's ``hf`` model, computing a prompt prefix shared by many requests once.

With fixed shots every document of a task starts with the same k-shot prefix, about four fifths
of each prompt; lm-eval's ``hf`` model runs it through the network again for every request.
:class:`SharedPrefixHFLM` (registered as ``amuro-hf`` when this module is imported) is a
subclass of lm-eval's :class:`~lm_eval.models.huggingface.HFLM` that finds the prefixes a call's
requests actually share, computes each one's key/value cache once, and runs only the rest of
each request on top of it, in batches, for ``loglikelihood`` (multiple choice included) and
greedy ``generate_until``. Everything else is lm-eval's own code: its tokenization, batching
(:class:`~lm_eval.models.utils.Collator`, the one-token-continuation logits cache), scoring,
stop sequences and post-processing run unchanged, on the requests' remainders.

Exactness (what makes the scores lm-eval's, up to float rounding):

* prefixes are found on lm-eval's own token ids (the ``(context, continuation)`` ids
  :meth:`~lm_eval.api.model.TemplateLM.loglikelihood` made; the ids ``tok_batch_encode`` gives a
  generation context), never by tokenizing a prefix string apart: a group's prefix is a run of
  leading ids all its requests share, so prefix + rest is, id for id, what lm-eval feeds the
  model, whatever the tokenizer does at the prefix's edge (a merge across it just ends the
  shared run one token earlier);
* positions are unchanged: a remainder starts at the prefix's length; for generation the
  remainders are left-padded *after* the prefix (``prefix | pad | rest``) with the padding masked,
  and ``generate`` derives position ids from the attention mask, so every real token keeps the
  position lm-eval's left-padded ``pad | prefix | rest`` gives it;
* lm-eval's path, unchanged, serves what this cannot: requests lm-eval would truncate on the left
  (longer than ``max_length``), sampled or beam generation, encoder-decoder models, caches that
  are not plain full attention (sliding windows, static caches), and requests that share no long
  prefix. Each call logs one line: how many requests were served from shared prefixes, how many
  fell back and why (also kept in :attr:`SharedPrefixHFLM.prefix_stats`).

Speed: a prefix is used only where it pays (defaults: shared by >= 8 requests, >= 16 tokens, and
saving >= 20% of the group's tokens); a call where nothing qualifies (0 shots, per-document shots)
goes to lm-eval's path whole. Memory stays bounded: a prefix cache is computed, used for its
group's batches (expanded per batch, a view, not a copy) and freed before the next group.
Opt out with ``shared_prefix=False`` in the model arguments (then this is exactly ``hf``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import has_bos_prefix, normalize_gen_kwargs
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

MODEL_NAME = "amuro-hf"
"""The lm-eval model name (``--model amuro-hf``); takes every ``hf`` model argument."""

logger = logging.getLogger(__name__)

# fallback reasons (keys of PrefixCallStats.fallback)
NO_SHARED_PREFIX = "no shared prefix"
LEFT_TRUNCATION = "left truncation"
NOT_GREEDY = "not greedy"
UNSUPPORTED = "model unsupported"
MIXED_BOS = "mixed BOS prefix"


# --------------------------------------------------------------------------- grouping
@dataclass(frozen=True)
class PrefixGroup:
    """Requests (indices into the list given to :func:`find_shared_prefixes`) whose token ids
    all start with the same ``length`` ids."""

    length: int
    members: tuple[int, ...]


def _adjacent_lcp(arrays: list[np.ndarray], order: list[int]) -> np.ndarray:
    """Common leading ids of each pair of neighbours in ``order``."""
    out = np.zeros(max(len(order) - 1, 0), dtype=np.int64)
    for k in range(len(order) - 1):
        a, b = arrays[order[k]], arrays[order[k + 1]]
        m = min(len(a), len(b))
        diff = np.flatnonzero(a[:m] != b[:m])
        out[k] = diff[0] if diff.size else m
    return out


def find_shared_prefixes(
    seqs: Sequence[Sequence[int]], lengths: Sequence[int], *, min_tokens: int = 16,
    min_group: int = 8, min_share: float = 0.2,
) -> list[PrefixGroup]:
    """The prefixes worth computing once: groups of ``seqs`` sharing their leading token ids.

    ``seqs[i]`` is the part of request ``i`` a prefix may cover, ``lengths[i]`` the tokens the
    model reads for it (for the saving test). Sorted, sequences sharing a prefix are contiguous,
    and the common prefix of a contiguous run is the minimum of its neighbours' common prefixes;
    the runs form a tree (split a run where that minimum is reached), and a bottom-up pass picks
    the partition that saves the most tokens, ``(members - 1) * prefix`` per group, among groups
    with >= ``min_group`` members, a prefix >= ``min_tokens`` and a saving >= ``min_share`` of
    the group's tokens. Requests in no group are left out (lm-eval's path serves them).
    """
    n = len(seqs)
    if n < max(min_group, 2):
        return []
    arrays = [np.asarray(s, dtype=np.int64) for s in seqs]
    # big-endian bytes sort like the id sequences themselves (ids < 2**32)
    keys = [a.astype(">u4").tobytes() for a in arrays]
    order = sorted(range(n), key=keys.__getitem__)
    lcp = _adjacent_lcp(arrays, order)
    cumlen = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64)[order])])

    # build the tree top-down (explicit stack: nesting can be deep), score it bottom-up
    spans: list[tuple[int, int, int]] = []  # (start, end, common prefix) in sorted positions
    children: list[list[int]] = []
    todo = [(0, n, -1)]
    while todo:
        a, b, parent = todo.pop()
        node = len(spans)
        children.append([])
        if parent >= 0:
            children[parent].append(node)
        if b - a < max(min_group, 2):
            spans.append((a, b, 0))  # too small to be a group, and so is all below it
            continue
        seg = lcp[a:b - 1]
        common = int(seg.min())
        spans.append((a, b, common))
        cuts = (a + 1 + np.flatnonzero(seg == common)).tolist()
        todo.extend((s, e, node) for s, e in zip([a, *cuts], [*cuts, b], strict=True))
    value = [0] * len(spans)
    as_group = [False] * len(spans)
    for node in reversed(range(len(spans))):  # children are created after their parent
        a, b, common = spans[node]
        below = sum(value[c] for c in children[node])
        saving = (b - a - 1) * common
        if (b - a >= min_group and common >= min_tokens and saving > below
                and saving >= min_share * (cumlen[b] - cumlen[a])):
            value[node], as_group[node] = saving, True
        else:
            value[node] = below
    groups, stack = [], [0]
    while stack:
        node = stack.pop()
        if as_group[node]:
            a, b, common = spans[node]
            groups.append(PrefixGroup(common, tuple(sorted(order[a:b]))))
        else:
            stack.extend(children[node])
    return sorted(groups, key=lambda g: g.members[0])


# --------------------------------------------------------------------------- prefix caches
class _ReadOnlyLayer(DynamicLayer):
    """A layer cache holding a shared prefix that a forward pass reads but never grows: scoring
    needs no cache afterwards, so each layer's prefix + new keys live only while it runs."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.cat([self.keys, key_states], dim=-2),
                torch.cat([self.values, value_states], dim=-2))


class _SharedPrefix:
    """The key/value cache of one prefix (batch 1), and per-batch caches expanded from it."""

    def __init__(self, lm: SharedPrefixHFLM, ids: Sequence[int]) -> None:
        self.ids = list(ids)
        self.config = lm.model.config
        cache = DynamicCache(config=self.config)
        with lm._model_context():
            lm.model(torch.tensor([self.ids], dtype=torch.long, device=lm.device), cache=cache,
                     use_cache=True)
        self.kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.tensor = torch.tensor(self.ids, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def cache(self, batch: int, *, grow: bool) -> DynamicCache:
        """A cache of the prefix for ``batch`` rows (views of the one computed); ``grow``: a
        normal cache that generation extends, else one that scoring only reads."""
        cache = DynamicCache(config=self.config)
        layers = []
        for keys, values in self.kv:
            layer = (DynamicLayer if grow else _ReadOnlyLayer)()
            layer.lazy_initialization(keys, values)
            layer.keys = keys.expand(batch, -1, -1, -1)
            layer.values = values.expand(batch, -1, -1, -1)
            layers.append(layer)
        cache.layers = layers
        return cache

    def move_padding(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
        """``pad | prefix | rest`` rows (lm-eval's left padding) as ``prefix | pad | rest``."""
        n = len(self)
        out_ids, out_mask = torch.empty_like(ids), torch.empty_like(mask)
        for row in range(ids.shape[0]):
            pad = int(ids.shape[1] - mask[row].sum())
            if not torch.equal(ids[row, pad:pad + n].cpu(), self.tensor):
                raise RuntimeError("amuro-hf: a grouped context does not start with its group's "
                                   "prefix ids (please report this; shared_prefix=False avoids it)")
            out_ids[row] = torch.cat([ids[row, pad:pad + n], ids[row, :pad], ids[row, pad + n:]])
            out_mask[row] = torch.cat([mask[row, pad:pad + n], mask[row, :pad],
                                       mask[row, pad + n:]])
        return out_ids, out_mask


# --------------------------------------------------------------------------- statistics
@dataclass
class PrefixCallStats:
    """What one ``loglikelihood``/``generate_until`` call did (see :meth:`line`)."""

    kind: str
    requests: int
    shared: int = 0
    groups: int = 0
    prefix_tokens: int = 0
    """Tokens of the prefixes computed (once per group)."""
    reused_tokens: int = 0
    """Tokens not recomputed: the prefix length for every grouped request but the first."""
    input_tokens: int = 0
    """Tokens lm-eval's path would run for the grouped requests."""
    fallback: Counter = field(default_factory=Counter)

    def line(self) -> str:
        """The one log line of a call."""
        out = (f"{MODEL_NAME} {self.kind}: {self.shared} of {self.requests} requests from "
               f"{self.groups} shared prefixes")
        if self.groups:
            share = self.reused_tokens / max(self.input_tokens, 1)
            out += (f" (mean {self.prefix_tokens / self.groups:.0f} tokens; {share:.0%} of their "
                    "tokens not recomputed)")
        if self.fallback:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.fallback.items()))
            out += f"; {sum(self.fallback.values())} on lm-eval's path ({reasons})"
        return out


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{MODEL_NAME}: {name} must be true or false, got {value!r}")


# --------------------------------------------------------------------------- the model
@register_model(MODEL_NAME)
class SharedPrefixHFLM(HFLM):
    """lm-eval's ``hf`` model that computes a prefix shared by many requests once (module doc).

    Extra model arguments: ``shared_prefix`` (default true; false: exactly ``hf``),
    ``prefix_min_group`` (8), ``prefix_min_tokens`` (16), ``prefix_min_share`` (0.2): what a
    prefix must have to be computed apart (see :func:`find_shared_prefixes`).
    """

    def __init__(self, *args: Any, shared_prefix: bool | str = True, prefix_min_group: int = 8,
                 prefix_min_tokens: int = 16, prefix_min_share: float = 0.2,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_prefix = _as_bool(shared_prefix, "shared_prefix")
        self.prefix_min_group = int(prefix_min_group)
        self.prefix_min_tokens = int(prefix_min_tokens)
        self.prefix_min_share = float(prefix_min_share)
        if self.prefix_min_group < 2 or self.prefix_min_tokens < 1:
            raise ValueError(f"{MODEL_NAME}: prefix_min_group must be >= 2 and "
                             "prefix_min_tokens >= 1")
        self.prefix_stats: list[PrefixCallStats] = []
        """One entry per ``loglikelihood``/``generate_until`` call, in order."""
        self._prefix: _SharedPrefix | None = None

    # ---------------------------------------------------------------- support and helpers
    def _unsupported(self, generation: bool) -> str | None:
        """Why shared prefixes cannot serve this model (None: they can)."""
        if self.backend != "causal":
            return "encoder-decoder model"
        try:
            layers = DynamicCache(config=self.model.config).layers
        except Exception as exc:  # a config transformers cannot build a cache for
            return f"no dynamic cache ({type(exc).__name__})"
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            return "cache is not plain full attention"
        params = inspect.signature(self.model.forward).parameters
        if "cache" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return "forward takes no cache"
        if generation and getattr(self.model.generation_config, "cache_implementation", None):
            return "generation config sets its own cache"
        return None

    def _model_context(self) -> contextlib.ExitStack:
        """``no_grad`` and lm-eval's autocast, as :meth:`HFLM._model_call` uses them."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(torch.autocast(device_type=self.device.type,
                                           dtype=self.mixed_precision_dtype,
                                           enabled=self.mixed_precision_dtype is not None))
        return stack

    @contextlib.contextmanager
    def _serving(self, prefix_ids: Sequence[int]) -> Iterator[None]:
        """Within: lm-eval's code runs on remainders after ``prefix_ids``."""
        self._prefix = _SharedPrefix(self, prefix_ids)
        try:
            yield
        finally:
            self._prefix = None

    @contextlib.contextmanager
    def _fixed_batch_size(self, size: int | None) -> Iterator[None]:
        """lm-eval's batch size pinned to ``size`` (one detection per call, not per group)."""
        saved = self.batch_size_per_gpu
        if size is not None:
            self.batch_size_per_gpu = size
        try:
            yield
        finally:
            self.batch_size_per_gpu = saved

    def _groups(self, seqs: list[Sequence[int]], lengths: list[int]) -> list[PrefixGroup]:
        return find_shared_prefixes(seqs, lengths, min_tokens=self.prefix_min_tokens,
                                    min_group=self.prefix_min_group,
                                    min_share=self.prefix_min_share)

    def _log(self, stats: PrefixCallStats) -> None:
        self.prefix_stats.append(stats)
        logger.info(stats.line())

    # ---------------------------------------------------------------- lm-eval hooks
    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        if self._prefix is None:
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        with self._model_context():  # right-padded remainders; positions follow the cache
            return self.model(inps, cache=self._prefix.cache(inps.shape[0], grow=False),
                              use_cache=True).logits

    def tok_batch_encode(self, strings: list[str], padding_side: str = "left",
                         left_truncate_len: int | None = None,
                         truncation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = super().tok_batch_encode(strings, padding_side=padding_side,
                                             left_truncate_len=left_truncate_len,
                                             truncation=truncation)
        if self._prefix is None:
            return ids, mask
        return self._prefix.move_padding(ids, mask)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str],
                        **generation_kwargs: Any) -> torch.Tensor:
        if self._prefix is not None:
            generation_kwargs["cache"] = self._prefix.cache(context.shape[0], grow=True)
        return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # ---------------------------------------------------------------- loglikelihood
    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if not self.shared_prefix:
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        stats = PrefixCallStats("loglikelihood", len(requests))
        reason = self._unsupported(generation=False)
        if reason is not None:
            stats.fallback[UNSUPPORTED] = len(requests)
            self._log(stats)
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        eligible: list[int] = []
        for i, (_, ctx, cont) in enumerate(requests):
            if len(ctx) + len(cont) > self.max_length + 1:  # lm-eval would cut the left
                stats.fallback[LEFT_TRUNCATION] += 1
            elif len(ctx) >= 2:  # a remainder keeps >= 1 context token
                eligible.append(i)
        lengths = [len(requests[i][1]) + len(requests[i][2]) - 1 for i in eligible]
        groups = self._groups([requests[i][1][:-1] for i in eligible], lengths)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        grouped: set[int] = set()
        if groups:
            batch = self._group_batch_size(requests, override_bs)
            for group in groups:
                members = [eligible[m] for m in group.members]
                prefix = requests[members[0]][1][:group.length]
                rest = [(s, ctx[group.length:], cont) for s, ctx, cont in
                        (requests[i] for i in members)]
                with self._serving(prefix), self._fixed_batch_size(batch):
                    out = super()._loglikelihood_tokens(rest, disable_tqdm=True)
                for i, answer in zip(members, out, strict=True):
                    results[i] = answer
                grouped.update(members)
                stats.groups += 1
                stats.prefix_tokens += group.length
                stats.reused_tokens += (len(members) - 1) * group.length
                stats.input_tokens += sum(lengths[m] for m in group.members)
        stats.shared = len(grouped)
        left = [i for i in range(len(requests)) if i not in grouped]
        stats.fallback[NO_SHARED_PREFIX] += len(left) - stats.fallback[LEFT_TRUNCATION]
        stats.fallback = +stats.fallback  # drop zero counts
        if left:
            out = super()._loglikelihood_tokens([requests[i] for i in left], disable_tqdm,
                                                override_bs)
            for i, answer in zip(left, out, strict=True):
                results[i] = answer
        self._log(stats)
        return results  # type: ignore[return-value]

    def _group_batch_size(self, requests: list, override_bs: int | None) -> int | None:
        """Rows per batch for remainders: lm-eval's batch size; with ``auto``, found once per
        call on the longest whole request (a remainder on a prefix cache needs less memory)."""
        if self.batch_size != "auto":
            return None
        if override_bs is not None:
            return override_bs
        longest = max(requests, key=lambda r: len(r[1]) + len(r[2]))
        return self._detect_batch_size([longest], 0)

    # ---------------------------------------------------------------- generation
    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        if not self.shared_prefix:
            return super().generate_until(requests, disable_tqdm)
        stats = PrefixCallStats("generate_until", len(requests))
        reason = self._unsupported(generation=True)
        contexts = [req.args[0] for req in requests]
        # lm-eval's tok_batch_encode picks special tokens from a batch's first context; batches
        # here differ from lm-eval's, so every context must take the same choice
        bos = {has_bos_prefix(c, getattr(self.tokenizer, "bos_token", None)) for c in contexts}
        if reason is None and len(bos) > 1:
            reason = MIXED_BOS
        if reason is not None or not requests:
            if requests:
                stats.fallback[reason if reason == MIXED_BOS else UNSUPPORTED] = len(requests)
                self._log(stats)
            return super().generate_until(requests, disable_tqdm)
        if bos == {True}:
            special = {"add_special_tokens": False}
        elif self.add_bos_token is not None:
            special = {"add_special_tokens": self.add_bos_token}
        else:
            special = {}
        ids = self.tokenizer(contexts, truncation=self.truncation, **special)["input_ids"]
        eligible: list[int] = []
        for i, req in enumerate(requests):
            kwargs = normalize_gen_kwargs(req.args[1], self.max_gen_toks)
            if kwargs.get("do_sample") or int(kwargs.get("num_beams", 1) or 1) > 1 \
                    or "max_length" in kwargs:
                stats.fallback[NOT_GREEDY] += 1
            elif len(ids[i]) > self.max_length - kwargs["max_gen_toks"]:
                stats.fallback[LEFT_TRUNCATION] += 1
            elif len(ids[i]) >= 2:
                eligible.append(i)
        groups = self._groups([ids[i][:-1] for i in eligible], [len(ids[i]) for i in eligible])
        results: list[str | None] = [None] * len(requests)
        grouped: set[int] = set()
        batch = None
        if groups and self.batch_size == "auto":
            batch = self._detect_batch_size()  # as lm-eval does once per call
        with self._fixed_batch_size(batch):
            for group in groups:
                members = [eligible[m] for m in group.members]
                with self._serving(ids[members[0]][:group.length]):
                    out = super().generate_until([requests[i] for i in members],
                                                 disable_tqdm=True)
                for i, text in zip(members, out, strict=True):
                    results[i] = text
                grouped.update(members)
                stats.groups += 1
                stats.prefix_tokens += group.length
                stats.reused_tokens += (len(members) - 1) * group.length
                stats.input_tokens += sum(len(ids[i]) for i in members)
            stats.shared = len(grouped)
            left = [i for i in range(len(requests)) if i not in grouped]
            stats.fallback[NO_SHARED_PREFIX] += (len(left) - stats.fallback[NOT_GREEDY]
                                                 - stats.fallback[LEFT_TRUNCATION])
            stats.fallback = +stats.fallback
            if left:
                out = super().generate_until([requests[i] for i in left], disable_tqdm)
                for i, text in zip(left, out, strict=True):
                    results[i] = text
        self._log(stats)
        return results  # type: ignore[return-value]
