"""Evaluation throughput: lm-eval's naive settings vs amuro's recommended settings, side by side.

Same model, same tasks, same documents, one process, measured back to back:

* **naive**: what running each task on its own with lm-eval's defaults costs: one
  ``simple_evaluate`` per task (a model load and a data load each time), ``batch_size=1``;
* **one call, batch 1**: a single ``simple_evaluate`` for every task, ``batch_size=1``: the
  part of the speed-up that batching alone brings;
* **recommended** (``amuro_tasks.settings``): one model load and one ``simple_evaluate`` for
  every task, ``batch_size="auto"``, memoised data shared by the three formats of a set.

It reports examples/s for the classification suite (loglikelihood) and the summarization suite
(generation), their ratio, and, for the recommended run, the time spent in amuro's
own code against the model's: per document (row validation, prompt rendering, metrics) and
one-time (reading each split, importing the metric packages), timed by wall-clock wrappers.

CPU (default): a tiny model. GPU: ``--device cuda --shape olmo-1b`` builds an OLMo-1B-shaped
model with random weights (no hub needed). Usage::

    python benchmarks/eval_throughput.py [--limit 24] [--device cpu] [--shape tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AMURO_DATA", "fixtures")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORMATS = ("default", "instruct", "io")
CLASSIFICATION = [f"amuro_{s}_{f}" for s in ("mnli_matched", "mnli_mismatched", "rte", "gpt3nli",
                                              "paws", "qqp", "stsb") for f in FORMATS]
GENERATION = [f"amuro_{s}_{f}" for s in ("xsum", "xlsum", "cnn") for f in FORMATS]
MODEL_ENTRY_POINTS = ("loglikelihood", "generate_until")


def build_model(shape: str, out: Path) -> Path:
    """The benchmark model: the shared tiny model, or an OLMo-1B-shaped one (random weights)."""
    from amuro_tasks.tiny_model import build_tiny_model

    if shape == "tiny":
        return build_tiny_model(out)
    if shape == "olmo-1b":  # OLMo-1B: d_model 2048, 16 layers, 16 heads, MLP 8192, vocab 50304
        return build_tiny_model(out, hidden_size=2048, num_layers=16, num_heads=16,
                                intermediate_size=8192, model_vocab_size=50304)
    raise SystemExit(f"unknown --shape {shape!r}: tiny or olmo-1b")


def _doc_count(results: dict[str, Any]) -> int:
    return sum(v["effective"] for v in results["n-samples"].values())


def _scores(results: dict[str, Any]) -> dict[str, float]:
    return {t: v for t, r in results["results"].items() for k, v in r.items()
            if k in ("acc,none", "rougeL,none")}


def run_naive(model_dir: Path, tasks: list[str], limit: int, device: str, dtype: str,
              one_call: bool = False) -> dict:
    """Batch size 1. Default: one ``simple_evaluate`` per task, nothing shared between tasks.
    ``one_call``: a single ``simple_evaluate`` for all tasks (isolates the effect of batching)."""
    from lm_eval import simple_evaluate

    import amuro_tasks
    from amuro_tasks.loading import load_docs

    start, docs, scores = time.perf_counter(), 0, {}
    for batch in ([tasks] if one_call else [[t] for t in tasks]):
        load_docs.cache_clear()  # a separate lm_eval run would load the data again
        out = simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype={dtype}",
                              tasks=batch, batch_size=1, device=device, limit=limit,
                              task_manager=amuro_tasks.task_manager(include_defaults=not one_call))
        docs += _doc_count(out)
        scores.update(_scores(out))
    return {"seconds": time.perf_counter() - start, "docs": docs, "scores": scores}


class Stopwatch:
    """Wall-clock seconds per label, accumulated by wrapped functions (no profiler: cProfile's
    per-call cost inflates code made of many tiny calls, like template rendering, ~3x)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, label: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        return timed


def instrument(watch: Stopwatch) -> None:
    """Time amuro's hooks and data loading (patched before any task module is imported)."""
    from amuro_tasks import harness, loading

    loading.load_raw_split = watch.wrap("data_loading", loading.load_raw_split)
    harness.load_docs = watch.wrap("load_docs", harness.load_docs)
    harness.process_results_rouge = watch.wrap("metrics", harness.process_results_rouge)
    factory = harness.doc_to_text
    harness.doc_to_text = lambda family, fmt: watch.wrap("doc_to_text", factory(family, fmt))


def run_recommended(model_dir: Path, tasks: list[str], limit: int, device: str,
                    dtype: str) -> dict:
    """One model load and one ``simple_evaluate`` for all tasks, with amuro's settings."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    import amuro_tasks
    from amuro_tasks.loading import load_docs
    from amuro_tasks.metrics import _scorer
    from amuro_tasks.settings import recommended_eval_kwargs

    load_docs.cache_clear()
    warm = time.perf_counter()
    _scorer(True)  # one-time per process: importing rouge-score/nltk (~1 s); timed separately
    import_seconds = time.perf_counter() - warm
    watch = Stopwatch()
    start = time.perf_counter()
    lm = HFLM(pretrained=str(model_dir), dtype=dtype, device=device,
              **recommended_eval_kwargs(device))
    for name in MODEL_ENTRY_POINTS:
        setattr(lm, name, watch.wrap("model", getattr(lm, name)))
    with _instrumented(watch):
        out = simple_evaluate(model=lm, tasks=tasks, limit=limit,
                              task_manager=amuro_tasks.task_manager(include_defaults=False))
    total = time.perf_counter() - start
    t = watch.seconds
    per_doc = t.get("load_docs", 0.0) - t.get("data_loading", 0.0) + t.get("doc_to_text", 0.0) \
        + t.get("metrics", 0.0)
    return {"seconds": total, "docs": _doc_count(out), "scores": _scores(out),
            "profile": {"per_document_seconds": per_doc,
                        "data_loading_seconds": t.get("data_loading", 0.0),
                        "metric_import_seconds": import_seconds,
                        "model_seconds": t.get("model", 0.0), "total_seconds": total,
                        "per_document_vs_model": per_doc / t["model"],
                        "amuro_share_of_total": (per_doc + t.get("data_loading", 0.0)) / total}}


class _instrumented:
    """Context manager: amuro's hooks timed by ``watch``, restored afterwards."""

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
        self._forget_task_modules()
        instrument(self.watch)

    def __exit__(self, *exc: object) -> None:
        for module, name, value in self.saved:
            setattr(module, name, value)
        self._forget_task_modules()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=24, help="documents per task")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="tiny", choices=["tiny", "olmo-1b"])
    parser.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on GPU")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(args.shape, Path(tmp) / "model")
        report: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor()}".strip(),
                                  "cpus": os.cpu_count(), "device": args.device,
                                  "shape": args.shape, "limit": args.limit}
        if args.device.startswith("cuda"):
            import torch

            report["gpu"] = torch.cuda.get_device_name()
        for suite, tasks in (("classification", CLASSIFICATION), ("generation", GENERATION)):
            naive = run_naive(model_dir, tasks, args.limit, args.device, dtype)
            batch1 = run_naive(model_dir, tasks, args.limit, args.device, dtype, one_call=True)
            fast = run_recommended(model_dir, tasks, args.limit, args.device, dtype)
            assert naive["docs"] == batch1["docs"] == fast["docs"], \
                "every setting must score the same documents"
            same = naive["scores"] == batch1["scores"] == fast["scores"]
            report[suite] = {
                "docs": fast["docs"],
                "naive_examples_per_s": naive["docs"] / naive["seconds"],
                "one_call_batch1_examples_per_s": batch1["docs"] / batch1["seconds"],
                "recommended_examples_per_s": fast["docs"] / fast["seconds"],
                "speedup": naive["seconds"] / fast["seconds"],
                "speedup_from_batching_alone": batch1["seconds"] / fast["seconds"],
                "identical_scores": same,
                "profile": fast["profile"],
            }
            p = fast["profile"]
            print(f"{suite:>14}: {fast['docs']} docs | naive {naive['docs'] / naive['seconds']:.1f}"
                  f" ex/s | one call, batch 1 {batch1['docs'] / batch1['seconds']:.1f} ex/s | "
                  f"recommended {fast['docs'] / fast['seconds']:.1f} ex/s | "
                  f"speed-up {naive['seconds'] / fast['seconds']:.2f}x (batching alone "
                  f"{batch1['seconds'] / fast['seconds']:.2f}x) | identical scores {same} | "
                  f"amuro per-document {p['per_document_seconds']:.3f}s = "
                  f"{100 * p['per_document_vs_model']:.1f}% of model time; amuro incl. data "
                  f"loading {100 * p['amuro_share_of_total']:.1f}% of total; one-time metric "
                  f"import {p['metric_import_seconds']:.2f}s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
