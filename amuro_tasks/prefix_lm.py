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

Speed: a prefix is used only where it pays (defaults: shared by >= 8 requests, >= 32 tokens, and
>= 40% of the group's tokens: k >= 1 shots, not a 0-shot instruction header); a call where nothing
qualifies (0 shots, per-document shots) goes to lm-eval's path whole. Prefixes are computed in
batches; a remainder batch holds as many rows as fit the memory of lm-eval's batch of whole
requests (:func:`remainder_rows`); generation batches mix the documents of several prefixes, as
lm-eval's batches mix tasks. Memory stays bounded: at most ``prefix_cache_mb`` of prefix caches
are held at once, and a batch's cache is a view of them (expanded, not copied) until the model
appends to it. Opt out with ``shared_prefix=False`` in the model arguments (then this is
exactly ``hf``).
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

from amuro_tasks.settings import SHARED_PREFIX_MODEL

MODEL_NAME = SHARED_PREFIX_MODEL
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
    seqs: Sequence[Sequence[int]], lengths: Sequence[int], *, min_tokens: int = 32,
    min_group: int = 8, min_share: float = 0.4,
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
    """The key/value cache of one prefix (batch 1): ``kv[layer] = (keys, values)``."""

    def __init__(self, ids: Sequence[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.ids = list(ids)
        self.kv = kv
        self.tensor = torch.tensor(self.ids, dtype=torch.long)
        self.nbytes = sum(t.numel() * t.element_size() for pair in kv for t in pair)

    def __len__(self) -> int:
        return len(self.ids)

    def left_padded(self, layer: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s keys and values, left-padded with zeros to ``width`` positions."""
        keys, values = self.kv[layer]
        pad = width - len(self)
        if pad == 0:
            return keys, values
        return (torch.nn.functional.pad(keys, (0, 0, pad, 0)),
                torch.nn.functional.pad(values, (0, 0, pad, 0)))


def compute_prefixes(lm: SharedPrefixHFLM, prefixes: Sequence[Sequence[int]]) -> list[
        _SharedPrefix]:
    """The caches of ``prefixes``, computed in one batched forward (left-padded, each starting
    at position 0; only the last position's logits are computed)."""
    width = max(len(p) for p in prefixes)
    ids = torch.full((len(prefixes), width), lm.tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prefix in enumerate(prefixes):
        ids[row, width - len(prefix):] = torch.tensor(list(prefix), dtype=torch.long)
        mask[row, width - len(prefix):] = 1
    kwargs: dict[str, Any] = {}
    if not bool(mask.all()):
        kwargs = {"attention_mask": mask.to(lm.device),
                  "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(lm.device)}
    if "logits_to_keep" in inspect.signature(lm.model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    cache = DynamicCache(config=lm.model.config)
    with lm._model_context():
        lm.model(ids.to(lm.device), cache=cache, use_cache=True, **kwargs)
    return [_SharedPrefix(prefix, [(layer.keys[row:row + 1, :, width - len(prefix):].clone(),
                                    layer.values[row:row + 1, :, width - len(prefix):].clone())
                                   for layer in cache.layers])
            for row, prefix in enumerate(prefixes)]


def remainder_rows(batch: int, whole: int, rest: int) -> int:
    """Rows per batch for remainders of at most ``rest`` tokens on a prefix cache, in the memory
    lm-eval's ``batch`` rows of ``whole`` tokens take: logits (the largest tensor) and attention
    scores grow with rows x remainder tokens, so ``batch * whole / rest`` rows (<= 16x)."""
    return max(batch, min(16 * batch, batch * whole // max(rest, 1)))


def _batch_cache(config: Any, prefixes: Sequence[_SharedPrefix], *, grow: bool) -> DynamicCache:
    """A cache holding row ``r``'s prefix ``prefixes[r]``, all left-padded to the longest (the
    padding is masked by the caller). One prefix for every row: views of it, no copy.
    ``grow``: a normal cache that generation extends, else one that scoring only reads."""
    width = max(len(p) for p in prefixes)
    distinct = {id(p): p for p in prefixes}
    layers = []
    for i in range(len(prefixes[0].kv)):
        if len(distinct) == 1:
            keys, values = prefixes[0].kv[i]
            keys = keys.expand(len(prefixes), -1, -1, -1)
            values = values.expand(len(prefixes), -1, -1, -1)
        else:
            padded = {k: p.left_padded(i, width) for k, p in distinct.items()}
            keys = torch.cat([padded[id(p)][0] for p in prefixes])
            values = torch.cat([padded[id(p)][1] for p in prefixes])
        layer = (DynamicLayer if grow else _ReadOnlyLayer)()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        layers.append(layer)
    cache = DynamicCache(config=config)
    cache.layers = layers
    return cache


def _prefix_layout(prefixes: Sequence[_SharedPrefix], ids: torch.Tensor, mask: torch.Tensor,
                   pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``pad | prefix | rest`` rows (lm-eval's layout) as ``pad | prefix | pad |
    rest``: every prefix ends at the same column (the end of the batch's cache) and every rest
    at the last column; all padding is masked, so each real token keeps its position."""
    width = max(len(p) for p in prefixes)
    rows = []
    for row, prefix in enumerate(prefixes):
        real = ids[row, int(ids.shape[1] - mask[row].sum()):]
        if not torch.equal(real[:len(prefix)].cpu(), prefix.tensor):
            raise RuntimeError("amuro-hf: a grouped context does not start with its group's "
                               "prefix ids (please report this; shared_prefix=False avoids it)")
        rows.append(real[len(prefix):])
    rest = max(len(r) for r in rows)
    out_ids = torch.full((ids.shape[0], width + rest), pad_id, dtype=ids.dtype, device=ids.device)
    out_mask = torch.zeros_like(out_ids, dtype=mask.dtype)
    for row, (prefix, tail) in enumerate(zip(prefixes, rows, strict=True)):
        out_ids[row, width - len(prefix):width] = prefix.tensor.to(ids.device)
        out_ids[row, out_ids.shape[1] - len(tail):] = tail
        out_mask[row, width - len(prefix):width] = 1
        out_mask[row, out_ids.shape[1] - len(tail):] = 1
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

    def add_group(self, prefix: int, lengths: list[int]) -> None:
        """Count a group of ``len(lengths)`` requests served from one ``prefix``-token prefix."""
        self.groups += 1
        self.shared += len(lengths)
        self.prefix_tokens += prefix
        self.reused_tokens += (len(lengths) - 1) * prefix
        self.input_tokens += sum(lengths)

    def line(self) -> str:
        """The one log line of a call."""
        out = (f"{MODEL_NAME} {self.kind}: {self.shared} of {self.requests} requests from "
               f"{self.groups} shared prefixes")
        if self.groups:
            share = self.reused_tokens / max(self.input_tokens, 1)
            out += (f" (mean {self.prefix_tokens / self.groups:.0f} tokens; {share:.0%} of their "
                    "tokens not recomputed)")
        self.fallback = +self.fallback  # drop zero counts
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
    ``prefix_min_group`` (8), ``prefix_min_tokens`` (32), ``prefix_min_share`` (0.4): what a
    prefix must have to be computed apart (see :func:`find_shared_prefixes`);
    ``prefix_cache_mb`` (1024): generation keeps the caches of several prefixes at once (so a
    batch can mix documents of several tasks, as lm-eval's batches do) up to this many MB.
    """

    def __init__(self, *args: Any, shared_prefix: bool | str = True, prefix_min_group: int = 8,
                 prefix_min_tokens: int = 32, prefix_min_share: float = 0.4,
                 prefix_cache_mb: float = 1024, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_prefix = _as_bool(shared_prefix, "shared_prefix")
        self.prefix_min_group = int(prefix_min_group)
        self.prefix_min_tokens = int(prefix_min_tokens)
        self.prefix_min_share = float(prefix_min_share)
        self.prefix_cache_bytes = float(prefix_cache_mb) * 2**20
        if self.prefix_min_group < 2 or self.prefix_min_tokens < 1:
            raise ValueError(f"{MODEL_NAME}: prefix_min_group must be >= 2 and "
                             "prefix_min_tokens >= 1")
        self.prefix_stats: list[PrefixCallStats] = []
        """One entry per ``loglikelihood``/``generate_until`` call, in order."""
        self._scoring_prefix: _SharedPrefix | None = None
        self._generation_prefixes: dict[str, _SharedPrefix] | None = None
        self._generation_cache: DynamicCache | None = None

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
        if generation and "position_ids" not in params:
            # a batch's rows are laid out pad | prefix | pad | rest; only position ids that
            # transformers' generate derives from the mask (it does so only for a forward
            # that names them) keep each token at its place (a wrapper taking **kwargs hides it)
            return "forward takes no position_ids"
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
        if self._scoring_prefix is None:
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        prefixes = [self._scoring_prefix] * inps.shape[0]
        with self._model_context():  # right-padded remainders; positions follow the cache
            return self.model(inps, cache=_batch_cache(self.model.config, prefixes, grow=False),
                              use_cache=True).logits

    def tok_batch_encode(self, strings: list[str], padding_side: str = "left",
                         left_truncate_len: int | None = None,
                         truncation: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = super().tok_batch_encode(strings, padding_side=padding_side,
                                             left_truncate_len=left_truncate_len,
                                             truncation=truncation)
        if self._generation_prefixes is None:
            return ids, mask
        prefixes = [self._generation_prefixes[s] for s in strings]
        self._generation_cache = _batch_cache(self.model.config, prefixes, grow=True)
        return _prefix_layout(prefixes, ids, mask, self.tokenizer.pad_token_id)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str],
                        **generation_kwargs: Any) -> torch.Tensor:
        if self._generation_cache is not None:  # made with this batch's layout, used once
            generation_kwargs["cache"], self._generation_cache = self._generation_cache, None
        return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # ---------------------------------------------------------------- loglikelihood
    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if not self.shared_prefix:
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        stats = PrefixCallStats("loglikelihood", len(requests))
        if self._unsupported(generation=False) is not None:
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
        base = self._scoring_batch_size(requests, override_bs) if groups else None
        members = [[eligible[m] for m in group.members] for group in groups]
        prefix_ids = [requests[m[0]][1][:g.length] for m, g in zip(members, groups, strict=True)]
        # no group, no waves: lm-eval's "auto" batch size is no int (found only with groups)
        for wave in self._waves(prefix_ids, base or int(self.batch_size)) if groups else ():
            for g, prefix in wave:  # one prefix at a time: lm-eval's batches of remainders
                rest = [(s, ctx[len(prefix):], cont) for s, ctx, cont in
                        (requests[i] for i in members[g])]
                full = [lengths[m] for m in groups[g].members]
                rows = remainder_rows(base or int(self.batch_size), max(full),
                                      max(len(c) + len(t) - 1 for _, c, t in rest))
                self._scoring_prefix = prefix
                try:
                    with self._fixed_batch_size(rows):
                        out = super()._loglikelihood_tokens(rest, disable_tqdm=True)
                finally:
                    self._scoring_prefix = None
                for i, answer in zip(members[g], out, strict=True):
                    results[i] = answer
                stats.add_group(len(prefix), full)
        left = [i for i, r in enumerate(results) if r is None]
        stats.fallback[NO_SHARED_PREFIX] += len(left) - stats.fallback[LEFT_TRUNCATION]
        if left:
            out = super()._loglikelihood_tokens([requests[i] for i in left], disable_tqdm,
                                                override_bs)
            for i, answer in zip(left, out, strict=True):
                results[i] = answer
        self._log(stats)
        return results  # type: ignore[return-value]

    def _scoring_batch_size(self, requests: list, override_bs: int | None) -> int | None:
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
        if not self.shared_prefix or not requests:
            return super().generate_until(requests, disable_tqdm)
        stats = PrefixCallStats("generate_until", len(requests))
        contexts = [req.args[0] for req in requests]
        # lm-eval's tok_batch_encode picks special tokens from a batch's first context; batches
        # here differ from lm-eval's, so every context must take the same choice
        bos = {has_bos_prefix(c, getattr(self.tokenizer, "bos_token", None)) for c in contexts}
        reason = self._unsupported(generation=True) and UNSUPPORTED
        if reason is not None or len(bos) > 1:
            stats.fallback[reason or MIXED_BOS] = len(requests)
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
                stats.fallback[LEFT_TRUNCATION] += 1  # lm-eval would cut the left
            elif len(ids[i]) >= 2:  # a remainder keeps >= 1 token
                eligible.append(i)
        groups = self._groups([ids[i][:-1] for i in eligible], [len(ids[i]) for i in eligible])
        results: list[str | None] = [None] * len(requests)
        batch = self._detect_batch_size() if groups and self.batch_size == "auto" else None
        members = [[eligible[m] for m in group.members] for group in groups]
        prefix_ids = [ids[m[0]][:g.length] for m, g in zip(members, groups, strict=True)]
        with self._fixed_batch_size(batch):
            for wave in self._waves(prefix_ids, batch or int(self.batch_size)) if groups else ():
                wave_members = [i for g, _ in wave for i in members[g]]
                self._generation_prefixes = {contexts[i]: prefix for g, prefix in wave
                                             for i in members[g]}
                try:  # lm-eval's generate_until on the wave; batches mix its prefixes
                    out = super().generate_until([requests[i] for i in wave_members],
                                                 disable_tqdm=True)
                finally:
                    self._generation_prefixes = self._generation_cache = None
                for i, text in zip(wave_members, out, strict=True):
                    results[i] = text
                for g, prefix in wave:
                    stats.add_group(len(prefix), [len(ids[i]) for i in members[g]])
            left = [i for i, r in enumerate(results) if r is None]
            stats.fallback[NO_SHARED_PREFIX] += (len(left) - stats.fallback[NOT_GREEDY]
                                                 - stats.fallback[LEFT_TRUNCATION])
            if left:
                out = super().generate_until([requests[i] for i in left], disable_tqdm)
                for i, text in zip(left, out, strict=True):
                    results[i] = text
        self._log(stats)
        return results  # type: ignore[return-value]

    def _waves(self, prefix_ids: list[Sequence[int]],
               rows: int) -> Iterator[list[tuple[int, _SharedPrefix]]]:
        """``(index, cache)`` of every prefix, computed ``rows`` at a time, yielded in waves
        holding about ``prefix_cache_mb`` at most."""
        order = sorted(range(len(prefix_ids)), key=lambda i: -len(prefix_ids[i]))
        wave: list[tuple[int, _SharedPrefix]] = []
        held = 0
        for start in range(0, len(order), rows):
            chunk = order[start:start + rows]
            for i, prefix in zip(chunk, compute_prefixes(self, [prefix_ids[i] for i in chunk]),
                                 strict=True):
                if wave and held + prefix.nbytes > self.prefix_cache_bytes:
                    yield wave
                    wave, held = [], 0
                wave.append((i, prefix))
                held += prefix.nbytes
        if wave:
            yield wave
