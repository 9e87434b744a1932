"""``amuro-hf`` (shared-prefix scoring) gives lm-eval's ``hf`` predictions, on every task family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import amuro_tasks
from amuro_tasks.prefix_lm import (
    LEFT_TRUNCATION,
    MODEL_NAME,
    NO_SHARED_PREFIX,
    UNSUPPORTED,
    PrefixCallStats,
    SharedPrefixHFLM,
    find_shared_prefixes,
    remainder_rows,
)
from amuro_tasks.specs import SPECS

#: One set per task family, the three formats in turn (every family, every format).
FAMILY_SETS = ["mnli_matched", "paws", "xsum", "socialiqa", "arc_easy", "openbookqa",
               "hellaswag", "boolq", "sciq_mc", "llmbar_natural"]
FORMATS = ("default", "instruct", "io")
TASKS = [f"amuro_{s}_{FORMATS[i % 3]}" for i, s in enumerate(FAMILY_SETS)]
LL_TOLERANCE = 1e-4


# --------------------------------------------------------------------------- grouping
def test_groups_are_the_long_shared_prefixes() -> None:
    shots_a, shots_b = list(range(100, 140)), list(range(200, 230))
    seqs = [shots_a + [i, i + 1] for i in range(10)]          # task a: 10 docs, 40-token shots
    seqs += [shots_b + [7, i] for i in range(9)]              # task b: 9 docs, 30 + 1 shared
    seqs += [[5, 6, i] for i in range(12)]                    # 0-shot: 2 tokens shared
    seqs += [shots_a[:20] + [1]]                              # shares 20 tokens with task a
    groups = find_shared_prefixes(seqs, [len(s) for s in seqs], min_tokens=16, min_group=8)
    assert [(g.length, g.members) for g in groups] == [
        (40, tuple(range(10))), (31, tuple(range(10, 19)))]
    # fewer members than min_group, or a prefix below min_tokens / min_share: no group
    assert find_shared_prefixes(seqs[:7], [42] * 7, min_group=8) == []
    assert find_shared_prefixes(seqs[19:31], [3] * 12, min_tokens=2, min_group=8,
                                min_share=0.9) == []
    # when splitting saves more than the common prefix, the split wins
    deep = [shots_a + [9] * 30 + [i] for i in range(8)] + [shots_a + [8] * 30 + [i]
                                                            for i in range(8)]
    groups = find_shared_prefixes(deep, [len(s) for s in deep], min_group=8)
    assert sorted(g.length for g in groups) == [70, 70]


def test_remainder_rows_keep_lm_evals_memory() -> None:
    assert remainder_rows(16, 130, 26) == 80        # 16 x 130 tokens = 80 x 26
    assert remainder_rows(16, 130, 130) == 16       # nothing shared: lm-eval's batch
    assert remainder_rows(16, 2000, 1) == 256       # capped at 16x
    stats = PrefixCallStats("loglikelihood", 10)
    stats.add_group(40, [50] * 8)
    stats.fallback[NO_SHARED_PREFIX] += 2
    stats.fallback[LEFT_TRUNCATION] += 0
    assert stats.line() == ("amuro-hf loglikelihood: 8 of 10 requests from 1 shared prefixes "
                            "(mean 40 tokens; 70% of their tokens not recomputed); 2 on lm-eval's "
                            "path (no shared prefix 2)")


# --------------------------------------------------------------------------- amuro tasks
def _evaluate(lm, tasks: list[str], shots: int | None, limit: int = 8) -> dict:
    from lm_eval import simple_evaluate

    return simple_evaluate(model=lm, tasks=tasks, limit=limit, num_fewshot=shots,
                           log_samples=True, verbosity="ERROR",
                           task_manager=amuro_tasks.task_manager(include_defaults=False))


def _assert_same_predictions(ref: dict, out: dict) -> tuple[int, int]:
    """Every response within tolerance (log-likelihood) or identical (greedy string), and every
    metric equal; returns (log-likelihood responses, strings) compared."""
    lls = strings = 0
    for task, samples in ref["samples"].items():
        assert len(samples) == len(out["samples"][task]) > 0, task
        theirs = {s["doc_id"]: s for s in out["samples"][task]}
        for sample in samples:
            for a, b in zip(sample["resps"], theirs[sample["doc_id"]]["resps"], strict=True):
                a, b = a[0], b[0]
                if isinstance(a, str):
                    assert a == b, (task, sample["doc_id"], a, b)
                    strings += 1
                else:
                    assert abs(a[0] - b[0]) <= LL_TOLERANCE and a[1] == b[1], (task, a, b)
                    lls += 1
        assert out["results"][task] == ref["results"][task], task
    return lls, strings


@pytest.mark.slow
def test_same_predictions_as_lm_eval_on_every_family(tiny_model_dir: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    assert {SPECS[s].family for s in FAMILY_SETS} == {s.family for s in SPECS.values()}
    args = dict(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=16)
    ref, lm = HFLM(**args), SharedPrefixHFLM(**args)

    # the tasks' own shots (4; LLMBar 0): every document of a task starts with the same shots
    ref_out, out = _evaluate(ref, TASKS, None), _evaluate(lm, TASKS, None)
    lls, strings = _assert_same_predictions(ref_out, out)
    assert lls >= 200 and strings == 16  # xsum, socialiqa (qgen): 8 documents each
    assert out["n-shot"]["amuro_llmbar_natural_default"] == 0
    ll_stats, gen_stats = lm.prefix_stats
    assert (ll_stats.kind, gen_stats.kind) == ("loglikelihood", "generate_until")
    # every request from a shared prefix, but LLMBar's (0-shot: 8 documents x 2 choices)
    assert ll_stats.fallback == {NO_SHARED_PREFIX: 16}, ll_stats.line()
    assert ll_stats.shared == ll_stats.requests - 16 and ll_stats.groups == len(TASKS) - 3
    assert gen_stats.shared == gen_stats.requests and not gen_stats.fallback
    assert gen_stats.groups == 2
    assert ll_stats.reused_tokens > 0.6 * ll_stats.input_tokens  # the shots: most of a prompt

    # 0 shots: no long prefix is shared, lm-eval's path takes the whole call
    _assert_same_predictions(_evaluate(ref, TASKS, 0), _evaluate(lm, TASKS, 0))
    for stats in lm.prefix_stats[2:]:
        assert stats.groups == 0 and stats.fallback == {NO_SHARED_PREFIX: stats.requests}


@pytest.mark.slow
def test_per_document_shots_share_nothing_and_take_lm_evals_path(tiny_model_dir: Path) -> None:
    """``amuro_shots=per_document``: no two documents start with the same shots, so no prefix
    is worth sharing: every request goes to lm-eval's path, and the predictions are ``hf``'s."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    args = dict(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=16)
    tasks = ["amuro_mnli_matched_default", "amuro_xsum_io"]

    def run(lm: object) -> dict:
        return simple_evaluate(model=lm, tasks=tasks, limit=12, log_samples=True,
                               verbosity="ERROR", task_manager=amuro_tasks.task_manager(
                                   metadata={"amuro_shots": "per_document"},
                                   include_defaults=False))

    lm = SharedPrefixHFLM(**args)
    ref, out = run(HFLM(**args)), run(lm)
    _assert_same_predictions(ref, out)
    heads = {s["arguments"][0][0].split("\n\n")[0] for s in out["samples"][tasks[0]]}
    assert len(heads) > 4  # the shots differ from document to document
    assert [s.kind for s in lm.prefix_stats] == ["loglikelihood", "generate_until"]
    for stats in lm.prefix_stats:
        assert stats.groups == 0 and stats.fallback == {NO_SHARED_PREFIX: stats.requests}


@pytest.mark.slow
def test_amuro_eval_runs_amuro_hf_and_writes_lm_evals_output(tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:
    import subprocess
    import sys

    task = "amuro_rte_default"
    for name, extra in (("amuro", ""), ("plain", ",shared_prefix=False")):
        subprocess.run(
            [sys.executable, "-m", "amuro_tasks.cli", "--model_args",
             f"pretrained={tiny_model_dir},dtype=float32{extra}", "--tasks", task, "--limit",
             "8", "--output_path", str(tmp_path / name), "--device", "cpu"],
            check=True, capture_output=True, text=True)
    results = {name: json.loads(next((tmp_path / name).rglob("results_*.json")).read_text())
               for name in ("amuro", "plain")}
    assert results["amuro"]["config"]["model"] == MODEL_NAME
    assert results["amuro"]["results"] == results["plain"]["results"]


# --------------------------------------------------------------------------- tokenizers
SHOTS = "Q: is ab ok?\nA: yes\n\nQ: is cd ok?\nA: no\n\n"
DOCS = [f"{c}: is {c}{d} ok?\nA:" for c, d in zip("XZXZXZXZXZ", "fghijlmprt", strict=True)]
#: Documents of unequal lengths: a generation batch pads each remainder after its prefix.
UNEVEN = [f"{c}: is {c}{d * (1 + i % 4)} ok?\nA:"
          for i, (c, d) in enumerate(zip("XZXZXZXZXZ", "fghijlmprt", strict=True))]


def _char_tokenizer(cascade: bool):
    """A character-level BPE tokenizer; ``cascade``: merges that fuse ``SHOTS`` with the next
    character into one token, so the shots' ids depend on the document after them."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(SHOTS + "".join(DOCS) + " yesno"))
    vocab = {t: i for i, t in enumerate(["<eos>", "<pad>", *chars])}
    merges = []
    if cascade:
        for first in "XZ":  # SHOTS[-1]+first, SHOTS[-2:]+first, ..., SHOTS+first
            for k in range(1, len(SHOTS) + 1):
                left, right = SHOTS[-k], SHOTS[len(SHOTS) - k + 1:] + first
                merges.append((left, right))
                vocab.setdefault(left + right, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<eos>",
                                   pad_token="<pad>")


def _model_dir(tokenizer, out: Path) -> Path:
    from transformers import OlmoConfig, OlmoForCausalLM

    torch.manual_seed(0)
    config = OlmoConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256,
                        eos_token_id=0, bos_token_id=0, pad_token_id=1,
                        initializer_range=0.2)  # outputs that depend on positions
    OlmoForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _requests(docs: list[str] = DOCS, max_gen_toks: int = 6, shots: str = SHOTS):
    from lm_eval.api.instance import Instance

    until = {"until": ["\n\n"], "max_gen_toks": max_gen_toks, "do_sample": False}
    ll = [Instance("loglikelihood", {}, (shots + d, f" {a}"), i, metadata=("t", i, 1))
          for i, d in enumerate(docs) for a in ("yes", "no")]
    gen = [Instance("generate_until", {}, (shots + d, until), i, metadata=("t", i, 1))
           for i, d in enumerate(docs)]
    return ll, gen


def _both(model_dir: Path, shared_prefix: bool = True, docs: list[str] = DOCS,
          max_gen_toks: int = 6, hide_position_ids: bool = False, shots: str = SHOTS,
          **kwargs):
    """lm-eval's hf and amuro-hf on the same requests: the same answers; returns amuro-hf.
    ``hide_position_ids``: both models' ``forward`` behind a ``**kwargs`` wrapper (as a
    profiler's or an adapter's may be), so transformers' generate passes no position ids."""
    from lm_eval.models.huggingface import HFLM

    args = dict(pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=4) | kwargs
    ref, lm = HFLM(**args), SharedPrefixHFLM(**args, shared_prefix=shared_prefix)
    if hide_position_ids:
        for model in (ref.model, lm.model):
            forward = model.forward
            model.forward = lambda *a, _f=forward, **k: _f(*a, **k)
    ll, gen = _requests(docs, max_gen_toks, shots)
    for a, b in zip(ref.loglikelihood(ll), lm.loglikelihood(ll), strict=True):
        assert abs(a[0] - b[0]) <= LL_TOLERANCE and a[1] == b[1]
    assert ref.generate_until(gen) == lm.generate_until(gen)
    return lm


def test_shots_that_tokenize_apart_are_never_reused(tmp_path: Path) -> None:
    plain, cascade = _char_tokenizer(False), _char_tokenizer(True)
    # plain: the shots' ids start every context's ids, and are computed once (for scoring, in
    # two groups: the "X" and the "Z" documents share 7 more characters, which saves more)
    assert plain(SHOTS + DOCS[0])["input_ids"][:len(SHOTS)] == plain(SHOTS)["input_ids"]
    lm = _both(_model_dir(plain, tmp_path / "plain"))
    assert [(s.shared, s.groups, s.prefix_tokens) for s in lm.prefix_stats] == [
        (20, 2, 2 * (len(SHOTS) + 7)), (10, 1, len(SHOTS))]

    # cascade: the shots' ids differ with the document after them (the tokenization does not
    # split at the shots' end), so no context shares them: lm-eval's path, counted
    ids = [cascade(SHOTS + d)["input_ids"] for d in DOCS]
    assert cascade(SHOTS)["input_ids"] != ids[0][:len(cascade(SHOTS)["input_ids"])]
    assert ids[0][0] != ids[1][0] and len(ids[0]) < len(SHOTS)
    lm = _both(_model_dir(cascade, tmp_path / "cascade"))
    assert [(s.shared, s.groups, dict(s.fallback)) for s in lm.prefix_stats] == [
        (0, 0, {NO_SHARED_PREFIX: 20}), (0, 0, {NO_SHARED_PREFIX: 10})]


def test_left_truncation_and_opt_out_take_lm_evals_path(tmp_path: Path) -> None:
    model_dir = _model_dir(_char_tokenizer(False), tmp_path / "m")
    # contexts (~55 tokens) longer than max_length: lm-eval cuts their left, so does amuro-hf
    lm = _both(model_dir, max_length=40)
    assert [dict(s.fallback) for s in lm.prefix_stats] == [{LEFT_TRUNCATION: 20},
                                                          {LEFT_TRUNCATION: 10}]
    assert _both(model_dir, shared_prefix=False).prefix_stats == []
    with pytest.raises(ValueError, match="shared_prefix must be true or false"):
        SharedPrefixHFLM(pretrained=str(model_dir), device="cpu", shared_prefix="maybe")


def test_remainders_of_unequal_length_generate_as_lm_eval(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation batches hold remainders of different lengths (pad | prefix | pad | rest):
    every string is lm-eval's, from the shared prefix. A model whose forward hides its
    position_ids from transformers' generate cannot place such rows: lm-eval's path, counted."""
    model_dir = _model_dir(_char_tokenizer(False), tmp_path / "m")
    lm = _both(model_dir, docs=UNEVEN, max_gen_toks=24)
    assert len({len(d) for d in UNEVEN}) == 4
    assert [(s.kind, s.shared) for s in lm.prefix_stats] == [("loglikelihood", 20),
                                                             ("generate_until", 10)]
    hidden = _both(model_dir, docs=UNEVEN, max_gen_toks=24, hide_position_ids=True)
    assert [dict(s.fallback) for s in hidden.prefix_stats[1:]] == [{UNSUPPORTED: 10}]
    assert hidden.prefix_stats[0].shared == 20  # scoring needs no position ids
    # without that fallback the remainders would sit at the wrong positions: other strings
    monkeypatch.setattr(SharedPrefixHFLM, "_unsupported", lambda self, generation: None)
    with pytest.raises(AssertionError):
        _both(model_dir, docs=UNEVEN, max_gen_toks=24, hide_position_ids=True)


def test_auto_batch_size_with_or_without_shared_prefixes(tmp_path: Path) -> None:
    """``batch_size=auto`` (amuro-eval's default on a GPU): 0-shot requests share nothing and
    take lm-eval's path; with shots, the batch size is found once and prefixes are shared."""
    model_dir = _model_dir(_char_tokenizer(False), tmp_path / "m")
    lm = _both(model_dir, shots="", batch_size="auto")
    assert [(s.shared, dict(s.fallback)) for s in lm.prefix_stats] == [
        (0, {NO_SHARED_PREFIX: 20}), (0, {NO_SHARED_PREFIX: 10})]
    lm = _both(model_dir, batch_size="auto")
    assert [s.shared for s in lm.prefix_stats] == [20, 10]


def test_amuro_hf_is_registered_with_lm_eval() -> None:
    from lm_eval.api.registry import get_model

    assert get_model(MODEL_NAME) is SharedPrefixHFLM
    assert get_model("hf").__name__ == "HFLM"  # lm-eval's own names still resolve
