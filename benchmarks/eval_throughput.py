"""Evaluation throughput: lm-eval's naive settings vs amuro's recommended settings, side by side.

Same model, same tasks, same documents, one process, measured back to back:

* **naive**: what running each task on its own with lm-eval's defaults costs: one
  ``simple_evaluate`` per task (a model load and a data load each time), ``batch_size=1``;
* **recommended** (``amuro_tasks.settings``): one model load and one ``simple_evaluate`` for
  every task, ``batch_size="auto"``, memoised data shared by the three formats of a set.

It reports examples/s for the classification suite (loglikelihood) and the summarization suite
(generation), their ratio, and, from a cProfile of the recommended run, the time spent in amuro's
own code (data loading and validation, prompt rendering, metrics) against the model's time.

CPU (default): a tiny model. GPU: ``--device cuda --shape olmo-1b`` builds an OLMo-1B-shaped
model with random weights (no hub needed). Usage::

    python benchmarks/eval_throughput.py [--limit 24] [--device cpu] [--shape tiny]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
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
#: amuro's per-document work: row validation, prompt rendering, lm-eval's prompt look-ups, metrics
PER_DOCUMENT = ("iter_docs", "with_prompts", "_doc_to_text", "process_results_rouge")
#: amuro's one-time work per set and process: reading the split (``datasets`` builders)
ONE_TIME = ("load_raw_split",)
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


def run_naive(model_dir: Path, tasks: list[str], limit: int, device: str, dtype: str) -> dict:
    """One ``simple_evaluate`` per task, batch size 1, nothing shared between tasks."""
    from lm_eval import simple_evaluate

    import amuro_tasks
    from amuro_tasks.loading import load_docs

    start, docs, scores = time.perf_counter(), 0, {}
    for task in tasks:
        load_docs.cache_clear()  # a separate lm_eval run would load the data again
        out = simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype={dtype}",
                              tasks=[task], batch_size=1, device=device, limit=limit,
                              task_manager=amuro_tasks.task_manager())
        docs += _doc_count(out)
        scores.update(_scores(out))
    return {"seconds": time.perf_counter() - start, "docs": docs, "scores": scores}


def run_recommended(model_dir: Path, tasks: list[str], limit: int, device: str, dtype: str,
                    profile: bool = False) -> dict:
    """One model load and one ``simple_evaluate`` for all tasks, with amuro's settings."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    import amuro_tasks
    from amuro_tasks.loading import load_docs
    from amuro_tasks.settings import recommended_eval_kwargs

    load_docs.cache_clear()
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    kwargs = recommended_eval_kwargs(device)
    lm = HFLM(pretrained=str(model_dir), dtype=dtype, device=device, **kwargs)
    out = simple_evaluate(model=lm, tasks=tasks, limit=limit,
                          task_manager=amuro_tasks.task_manager(include_defaults=False))
    if profiler:
        profiler.disable()
    result = {"seconds": time.perf_counter() - start, "docs": _doc_count(out),
              "scores": _scores(out)}
    if profiler:
        result["profile"] = split_profile(profiler)
    return result


def split_profile(profiler: cProfile.Profile) -> dict[str, float]:
    """Seconds in amuro's own code (per document, one-time) and in the model (from cProfile)."""
    stats = pstats.Stats(profiler)
    per_doc = one_time = model = 0.0
    for (filename, _, name), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "/amuro_tasks/" in filename and name in PER_DOCUMENT:
            per_doc += cumtime
        if "/amuro_tasks/" in filename and name in ONE_TIME:
            one_time += cumtime
        if filename.endswith("lm_eval/models/huggingface.py") and name in MODEL_ENTRY_POINTS:
            model += cumtime
    total = stats.total_tt  # type: ignore[attr-defined]
    ours = per_doc + one_time
    return {"per_document_seconds": per_doc, "data_loading_seconds": one_time,
            "model_seconds": model, "total_seconds": total,
            "per_document_vs_model": per_doc / model, "amuro_share_of_total": ours / total}


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
            fast = run_recommended(model_dir, tasks, args.limit, args.device, dtype, profile=True)
            assert naive["docs"] == fast["docs"], "both settings must score the same documents"
            same = naive["scores"] == fast["scores"]
            report[suite] = {
                "docs": fast["docs"],
                "naive_examples_per_s": naive["docs"] / naive["seconds"],
                "recommended_examples_per_s": fast["docs"] / fast["seconds"],
                "speedup": naive["seconds"] / fast["seconds"],
                "identical_scores": same,
                "profile": fast["profile"],
            }
            p = fast["profile"]
            print(f"{suite:>14}: {fast['docs']} docs | naive {naive['docs'] / naive['seconds']:.1f}"
                  f" ex/s | recommended {fast['docs'] / fast['seconds']:.1f} ex/s | "
                  f"speed-up {naive['seconds'] / fast['seconds']:.2f}x | identical scores {same} | "
                  f"amuro per-document {p['per_document_seconds']:.3f}s = "
                  f"{100 * p['per_document_vs_model']:.1f}% of model time; amuro incl. data "
                  f"loading {100 * p['amuro_share_of_total']:.1f}% of total")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
