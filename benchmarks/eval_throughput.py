"""Evaluation throughput: amuro's shared-prefix scoring vs lm-eval at its best, side by side.

One process, the same model, the same task manager and the same documents, measured back to back:

* **lm-eval at its best**: lm-eval's ``hf`` model (:class:`~lm_eval.models.huggingface.HFLM`)
  loaded once, one ``simple_evaluate`` call for every task of a suite, batch 16 on CPU and
  ``auto`` on GPU (``amuro_tasks.settings.recommended_eval_kwargs``), amuro's task manager;
* **amuro**: the same call with ``amuro-hf`` (:mod:`amuro_tasks.prefix_lm`: the fixed 4-shot
  prefix of each task computed once), the default of ``amuro-eval`` and ``amuro study``;
* **vLLM** (GPU, when ``vllm`` is importable): lm-eval's ``vllm`` model with prefix caching.

The headline model has SmolLM-135M's shape (Llama, hidden 576, 30 layers, 9 heads / 3 key-value
heads, MLP 1536, vocab 49152, tied embeddings; random weights, built here, nothing downloaded)
with amuro's tiny fixture tokenizer: model time dominates as with a real checkpoint. (Embedding
rows past the tokenizer's 1024 ids are zero, so greedy decoding emits real tokens.) It checks that
the predictions agree (log-likelihoods within 1e-4, greedy strings identical, metrics equal) and
splits model time into multi-token forwards (scoring, prompt prefill) and one-token decoding steps.

Context, on amuro's tiny model (hidden 32, 2 layers): lm-eval in one call with batch 1 and with
batch 16, amuro, and amuro's own per-document time (row validation, prompt rendering, ROUGE-L)
against model time, timed by wall-clock wrappers around its hooks. ``--naive`` adds lm-eval run
once per task with batch 1 (slow: it indexes every upstream task per call).

Usage::

    python benchmarks/eval_throughput.py --json eval.json               # CPU, ~6 min
    python benchmarks/eval_throughput.py --device cuda --shape olmo-1b --limit 24 --json gpu.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("AMURO_DATA", "fixtures")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORMATS = ("default", "instruct", "io")
SUITES = {
    "classification": [f"amuro_{s}_{f}" for s in ("mnli_matched", "mnli_mismatched", "rte",
                                                   "gpt3nli", "paws", "qqp", "stsb")
                       for f in FORMATS],
    "summarization": [f"amuro_{s}_{f}" for s in ("xsum", "xlsum", "cnn") for f in FORMATS],
}
MODEL_ENTRY_POINTS = ("loglikelihood", "generate_until")
LL_TOLERANCE = 1e-4
#: Model shapes (random weights). SmolLM-135M: HuggingFaceTB/SmolLM-135M's config.json.
SHAPES: dict[str, dict[str, Any]] = {
    "smollm-135m": dict(arch="llama", hidden_size=576, intermediate_size=1536,
                        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                        vocab_size=49152, tie_word_embeddings=True),
    # allenai/OLMo-1B-hf: d_model 2048, 16 layers, 16 heads, MLP 8192, vocab 50304
    "olmo-1b": dict(arch="olmo", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                    num_attention_heads=16, vocab_size=50304, tie_word_embeddings=True),
}


# --------------------------------------------------------------------------- models
def build_model(shape: str, out: Path) -> Path:
    """A random-weight model of ``shape`` with amuro's tiny tokenizer, saved to ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, OlmoConfig, OlmoForCausalLM

    from amuro_tasks.tiny_model import build_tiny_model, build_tokenizer, fixture_corpus

    if shape == "tiny":
        return build_tiny_model(out)
    kw = dict(SHAPES[shape])
    arch = kw.pop("arch")
    tokenizer = build_tokenizer(fixture_corpus())
    config_cls, model_cls = ((LlamaConfig, LlamaForCausalLM) if arch == "llama"
                             else (OlmoConfig, OlmoForCausalLM))
    config = config_cls(max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, **kw)
    torch.manual_seed(0)
    model = model_cls(config)
    with torch.no_grad():  # ids the tokenizer cannot decode are never predicted
        model.get_input_embeddings().weight[len(tokenizer):] = 0
        if not kw["tie_word_embeddings"]:
            model.get_output_embeddings().weight[len(tokenizer):] = 0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------- timing
class Stopwatch:
    """Wall-clock seconds per label, accumulated by wrapped functions (no profiler: cProfile's
    per-call cost inflates code made of many tiny calls, like template rendering, ~3x)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, label: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
                self.calls[label] = self.calls.get(label, 0) + 1

        return timed


def time_model(lm: Any, watch: Stopwatch) -> None:
    """Time ``lm``'s entry points, and its network's forwards split into multi-token ones
    (scoring, prompt prefill) and one-token ones (greedy decoding steps). Replaces the wrappers
    of an earlier run."""
    for name in MODEL_ENTRY_POINTS:
        lm.__dict__.pop(name, None)
        setattr(lm, name, watch.wrap("model", getattr(lm, name)))
    network = getattr(lm, "model", None)
    if network is None or not hasattr(network, "forward"):
        return
    network.__dict__.pop("forward", None)
    forward = network.forward
    multi, single = watch.wrap("forward_multi_token", forward), watch.wrap("decode_step", forward)

    @functools.wraps(forward)  # transformers reads forward's signature (position_ids, ...)
    def routed(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        one = ids is not None and ids.shape[-1] == 1
        return (single if one else multi)(*args, **kwargs)

    network.forward = routed


class _instrumented:
    """amuro's own hooks timed by ``watch`` (per document: row validation, prompt rendering,
    ROUGE-L; data loading apart), restored afterwards."""

    def __init__(self, watch: Stopwatch) -> None:
        from amuro_tasks import harness, loading

        self.watch = watch
        self.saved = [(harness, n, getattr(harness, n)) for n in
                      ("load_docs", "process_results_rouge", "doc_to_text")]
        self.saved.append((loading, "load_raw_split", loading.load_raw_split))

    @staticmethod
    def _forget_task_modules() -> None:
        """lm-eval caches each task folder's utils.py, which binds our hooks at import."""
        import sys

        import amuro_tasks

        for name in [m for m in sys.modules if m.startswith(amuro_tasks.include_path())]:
            del sys.modules[name]

    def __enter__(self) -> None:
        from amuro_tasks import harness, loading

        self._forget_task_modules()
        w = self.watch
        loading.load_raw_split = w.wrap("data_loading", loading.load_raw_split)
        harness.load_docs = w.wrap("load_docs", harness.load_docs)
        harness.process_results_rouge = w.wrap("metrics", harness.process_results_rouge)
        factory = harness.doc_to_text
        harness.doc_to_text = lambda family, fmt: w.wrap("doc_to_text", factory(family, fmt))

    def __exit__(self, *exc: object) -> None:
        for module, name, value in self.saved:
            setattr(module, name, value)
        self._forget_task_modules()


# --------------------------------------------------------------------------- runs
def _clear_data_cache() -> None:
    """Every run loads and validates its data itself, as a separate process would."""
    from amuro_tasks.loading import load_docs

    load_docs.cache_clear()


def make_lm(engine: str, model_dir: Path, device: str, dtype: str, batch: dict[str, Any]) -> Any:
    """The lm-eval model of ``engine``: ``hf`` (lm-eval), ``amuro-hf`` or ``vllm``."""
    if engine == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        from amuro_tasks.settings import recommended_model_args

        return VLLM(pretrained=str(model_dir), dtype=dtype, batch_size="auto",
                    gpu_memory_utilization=0.8, **recommended_model_args("vllm"))
    from lm_eval.models.huggingface import HFLM

    from amuro_tasks.prefix_lm import SharedPrefixHFLM

    cls = SharedPrefixHFLM if engine == "amuro-hf" else HFLM
    return cls(pretrained=str(model_dir), dtype=dtype, device=device, **batch)


def run_suite(lm: Any, tasks: list[str], limit: int | None, *, profile: bool = False) -> dict:
    """One ``simple_evaluate`` call for ``tasks`` on ``lm``, timed; samples kept."""
    from lm_eval import simple_evaluate

    import amuro_tasks

    _clear_data_cache()
    watch = Stopwatch()
    time_model(lm, watch)
    seen = len(getattr(lm, "prefix_stats", []))
    start = time.perf_counter()
    if profile:
        with _instrumented(watch):
            out = simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=True,
                                  task_manager=amuro_tasks.task_manager(include_defaults=False),
                                  verbosity="ERROR")
    else:
        out = simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=True,
                              task_manager=amuro_tasks.task_manager(include_defaults=False),
                              verbosity="ERROR")
    seconds = time.perf_counter() - start
    docs = sum(v["effective"] for v in out["n-samples"].values())
    t = watch.seconds
    result = {"seconds": seconds, "docs": docs, "examples_per_s": docs / seconds,
              "model_seconds": t.get("model", 0.0),
              "forward_multi_token_seconds": t.get("forward_multi_token", 0.0),
              "decode_step_seconds": t.get("decode_step", 0.0),
              "decode_steps": watch.calls.get("decode_step", 0),
              "_out": out}
    if profile:
        per_doc = (t.get("load_docs", 0.0) - t.get("data_loading", 0.0)
                   + t.get("doc_to_text", 0.0) + t.get("metrics", 0.0))
        result["amuro_per_document_seconds"] = per_doc
        result["data_loading_seconds"] = t.get("data_loading", 0.0)
        result["per_document_vs_model"] = per_doc / t["model"]
    stats = getattr(lm, "prefix_stats", [])[seen:]
    if stats:
        result["shared_prefix"] = [s.line() for s in stats]
    return result


def run_naive(model_dir: Path, tasks: list[str], limit: int | None, device: str,
              dtype: str) -> dict:
    """lm-eval once per task with batch 1 (a model load, a data load and an index each)."""
    from lm_eval import simple_evaluate

    import amuro_tasks

    start, docs = time.perf_counter(), 0
    for task in tasks:
        _clear_data_cache()
        out = simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype={dtype}",
                              tasks=[task], batch_size=1, device=device, limit=limit,
                              task_manager=amuro_tasks.task_manager(), verbosity="ERROR")
        docs += sum(v["effective"] for v in out["n-samples"].values())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "docs": docs, "examples_per_s": docs / seconds}


# --------------------------------------------------------------------------- agreement
def _metrics(out: dict) -> dict[str, float]:
    return {f"{t}/{k}": v for t, r in out["results"].items() for k, v in r.items()
            if k in ("acc,none", "acc_norm,none", "rougeL,none", "f1,none")}


def agreement(ref: dict, other: dict, model_dir: Path | None = None) -> dict[str, Any]:
    """How ``other``'s predictions compare with ``ref``'s (same tasks, same documents). With
    ``model_dir`` (float32 runs), a greedy string that differs is checked for a near tie: the
    smallest gap between the two best next-token logits along the document's greedy decoding."""
    worst, greedy_flags, strings, same_strings = 0.0, True, 0, 0
    differing: list[tuple[str, int, str]] = []
    for task, samples in ref["samples"].items():
        theirs = {s["doc_id"]: s for s in other["samples"][task]}
        for sample in samples:
            for a, b in zip(sample["resps"], theirs[sample["doc_id"]]["resps"], strict=True):
                a, b = a[0], b[0]
                if isinstance(a, str):
                    strings += 1
                    same_strings += a == b
                    if a != b:
                        differing.append((task, sample["doc_id"], sample["arguments"][0][0]))
                else:
                    worst = max(worst, abs(float(a[0]) - float(b[0])))
                    greedy_flags &= bool(a[1]) == bool(b[1])
    out: dict[str, Any] = {"metrics_equal": _metrics(ref) == _metrics(other)}
    if strings:
        out["identical_strings"] = f"{same_strings}/{strings}"
    if strings < sum(len(s) for s in ref["samples"].values()):
        out["max_loglikelihood_difference"] = worst
        out["greedy_flags_equal"] = greedy_flags
    out["identical"] = (out["metrics_equal"] and same_strings == strings
                        and worst <= LL_TOLERANCE and greedy_flags)
    if differing and model_dir is not None:
        out["differing_strings_min_top2_logit_gap"] = {
            f"{task}/{doc}": gap for (task, doc, _), gap in
            zip(differing, near_tie_gaps(model_dir, [c for *_, c in differing]), strict=True)}
    return out


def near_tie_gaps(model_dir: Path, contexts: list[str], max_new_tokens: int = 60) -> list[float]:
    """For each context, alone (no batch, no padding, float32): the smallest gap between the two
    highest next-token logits over ``max_new_tokens`` greedy steps. A gap near float32 rounding
    (~1e-5 here) means two tokens tie and any change in summation order may pick either."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    gaps = []
    for context in contexts:
        ids = tokenizer(context, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 output_scores=True, return_dict_in_generate=True,
                                 pad_token_id=tokenizer.pad_token_id)
        gaps.append(min(float(step[0].topk(2).values[0] - step[0].topk(2).values[1])
                        for step in out.scores))
    return gaps


def _median_run(rounds: list[dict]) -> dict:
    """The round with the median time (the first of the middle two for an even count)."""
    ordered = sorted(rounds, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2] | {"seconds_per_round": [r["seconds"] for r in rounds]}


def _record(entry: dict[str, Any], runs: dict[str, dict], model_dir: Path | None = None) -> None:
    """``runs`` (keyed by engine, lm-eval's ``hf`` the reference) into a suite's entry
    (``model_dir``: check differing greedy strings for near ties, see :func:`agreement`)."""
    ref = runs["hf"]
    for engine, run in runs.items():
        assert run["docs"] == ref["docs"], "every engine must score the same documents"
        if engine == "hf":
            entry[engine] = _public(run)
            continue
        entry[engine] = _public(run) | {"speedup_vs_lm_eval_best": ref["seconds"] / run["seconds"],
                                        "agreement": agreement(ref["_out"], run["_out"],
                                                               model_dir)}


def _public(run: dict) -> dict:
    return {k: v for k, v in run.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- main
def _machine(device: str) -> dict[str, Any]:
    import lm_eval
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device, "torch": torch.__version__,
            "transformers": transformers.__version__, "lm_eval": lm_eval.__version__,
            "load_average_at_start": os.getloadavg()[0]}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="documents per task")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="smollm-135m", choices=[*sorted(SHAPES), "tiny"],
                        help="the headline model's shape")
    parser.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU: torch threads (1 keeps a shared machine's noise down)")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds per engine and suite, in alternating order; the median "
                             "round is reported")
    parser.add_argument("--no-context", action="store_true",
                        help="skip the tiny-model runs (batch-1 context, amuro's overhead)")
    parser.add_argument("--context-limit", type=int, default=None,
                        help="documents per task in the tiny-model runs (default: all)")
    parser.add_argument("--naive", action="store_true",
                        help="also run lm-eval once per task with batch 1 (tiny model; slow)")
    parser.add_argument("--vllm", choices=["auto", "on", "off"], default="auto",
                        help="vLLM column (GPU): auto = when vllm is importable")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import importlib.util

    import torch

    from amuro_tasks.settings import recommended_eval_kwargs

    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("bfloat16" if cuda else "float32")
    batch = recommended_eval_kwargs(args.device)
    suites = {name: SUITES[name] for name in args.suites.split(",")}
    use_vllm = cuda and args.vllm != "off" and (
        args.vllm == "on" or importlib.util.find_spec("vllm") is not None)
    report: dict[str, Any] = {"machine": _machine(args.device), "shape": args.shape,
                              "dtype": dtype, "limit": args.limit, "batch": batch,
                              "context_limit": args.context_limit,
                              "shots": 4, "suites": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(args.shape, Path(tmp) / args.shape)
        from amuro_tasks.metrics import _scorer

        _scorer(True)  # import the ROUGE packages now, not inside the first timed run
        lms, loads = {}, report.setdefault("model_load_seconds", {})
        for engine in ("hf", "amuro-hf"):
            start = time.perf_counter()
            lms[engine] = make_lm(engine, model_dir, args.device, dtype, batch)
            loads[engine] = time.perf_counter() - start
        refs = {}
        for suite, tasks in suites.items():  # side by side, suite by suite
            rounds: dict[str, list[dict]] = {engine: [] for engine in lms}
            for r in range(args.repeats):  # alternating order: drift hits both alike
                for engine in (list(lms) if r % 2 == 0 else list(lms)[::-1]):
                    rounds[engine].append(run_suite(lms[engine], tasks, args.limit,
                                                    profile=engine == "amuro-hf"))
            runs = {engine: _median_run(rs) for engine, rs in rounds.items()}
            refs[suite] = ref = runs["hf"]
            report["suites"][suite] = {"tasks": len(tasks), "docs": ref["docs"]}
            _record(report["suites"][suite], runs, model_dir if dtype == "float32" else None)
            a = report["suites"][suite]["amuro-hf"]
            if args.repeats > 1:
                a["speedup_per_round"] = [h["seconds"] / m["seconds"] for h, m in
                                          zip(rounds["hf"], rounds["amuro-hf"], strict=True)]
            print(f"{suite:>14} ({args.shape}, {ref['docs']} docs): lm-eval at its best "
                  f"{ref['examples_per_s']:.2f} ex/s | amuro {a['examples_per_s']:.2f} ex/s | "
                  f"**{a['speedup_vs_lm_eval_best']:.2f}x** "
                  f"{a.get('speedup_per_round', '')} | {a['agreement']}", flush=True)
        del lms
        if use_vllm:  # alone on the GPU (lm-eval's auto batch sizing saw all of it, too)
            import gc

            gc.collect()
            torch.cuda.empty_cache()
            start = time.perf_counter()
            vllm = make_lm("vllm", model_dir, args.device, dtype, batch)
            loads["vllm"] = time.perf_counter() - start
            for suite, tasks in suites.items():
                _record(report["suites"][suite], {"hf": refs[suite],
                                                  "vllm": run_suite(vllm, tasks, args.limit)})
                v = report["suites"][suite]["vllm"]
                print(f"{suite:>14} vLLM with prefix caching {v['examples_per_s']:.2f} ex/s "
                      f"({v['speedup_vs_lm_eval_best']:.2f}x) | {v['agreement']}", flush=True)
            del vllm
        if not args.no_context:
            tiny_dir = build_model("tiny", Path(tmp) / "tiny")
            report["tiny_model"] = context_runs(tiny_dir, suites, args, dtype, batch)
    report["machine"]["load_average_at_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


def context_runs(model_dir: Path, suites: dict[str, list[str]], args: argparse.Namespace,
                 dtype: str, batch: dict[str, Any]) -> dict[str, Any]:
    """The tiny model: batch-1 context figures and amuro's own per-document time (on every
    fixture document by default: amuro validates and renders a whole split when it loads it, so a
    small ``--limit`` would charge unscored rows to the scored ones)."""
    out: dict[str, Any] = {}
    limit = args.context_limit
    for suite, tasks in suites.items():
        batch1 = run_suite(make_lm("hf", model_dir, args.device, dtype, {"batch_size": 1}),
                           tasks, limit)
        best = run_suite(make_lm("hf", model_dir, args.device, dtype, batch), tasks, limit)
        amuro = run_suite(make_lm("amuro-hf", model_dir, args.device, dtype, batch), tasks,
                          limit, profile=True)
        entry = {"docs": best["docs"], "lm_eval_one_call_batch1": _public(batch1),
                 "lm_eval_best": _public(best), "amuro": _public(amuro),
                 "amuro_vs_batch1": batch1["seconds"] / amuro["seconds"],
                 "amuro_vs_lm_eval_best": best["seconds"] / amuro["seconds"],
                 "agreement": agreement(best["_out"], amuro["_out"],
                                        model_dir if dtype == "float32" else None)}
        if args.naive:
            naive = run_naive(model_dir, tasks, limit, args.device, dtype)
            entry["lm_eval_per_task_batch1"] = naive
            entry["amuro_vs_per_task_batch1"] = naive["seconds"] / amuro["seconds"]
        out[suite] = entry
        print(f"{suite:>14} (tiny model): lm-eval one call batch 1 {batch1['examples_per_s']:.1f}"
              f" ex/s | lm-eval batch 16 {best['examples_per_s']:.1f} ex/s | amuro "
              f"{amuro['examples_per_s']:.1f} ex/s | amuro per-document "
              f"{amuro['amuro_per_document_seconds']:.3f}s = "
              f"{100 * amuro['per_document_vs_model']:.1f}% of model time", flush=True)
    return out


if __name__ == "__main__":
    main()
