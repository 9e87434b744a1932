"""Synthetic studies for the report tests (records in the runner's shape, optional per-sample
files), and a reader of the links a rendered page or a Markdown file makes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from amuro_study.records import ResultRecord, to_frame

#: eval set -> metric of the synthetic study (in-domain, OOD and cross-task sets of mnli / xsum)
SETS = {"mnli_matched": "acc", "rte": "acc", "xsum": "rougeL", "cnn": "rougeL"}


def synthetic_study(
    folder: Path,
    *,
    steps: tuple[int, ...] = (1000, 2000, 3000),
    finetunes: tuple[str, ...] = ("mnli", "xsum"),
    formats: tuple[str, ...] = ("default",),
    samples: bool = True,
    n_docs: int = 80,
    seed: int = 0,
) -> pd.DataFrame:
    """Base and fine-tuned scores on :data:`SETS` at ``steps``; with ``samples`` each score
    comes from a per-sample file (``doc_id`` + metric per line) as lm-eval writes it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, step in enumerate(steps):
        revision = "main" if step == steps[-1] and len(steps) > 1 else f"step{step}"
        for finetune in (None, *finetunes):
            for eval_set, metric in SETS.items():
                for fmt in formats:
                    level = 0.3 + 0.05 * i + (0.2 if finetune else 0.0) - 0.03 * formats.index(fmt)
                    if metric == "acc":
                        scores = (rng.random(n_docs) < level).astype(float)
                    else:
                        scores = np.clip(rng.normal(level / 2, 0.05, n_docs), 0, 1)
                    path = None
                    if samples:
                        path = folder / f"{step}_{finetune}_{eval_set}_{fmt}.jsonl"
                        path.write_text("".join(json.dumps({"doc_id": d, metric: float(s)}) + "\n"
                                                for d, s in enumerate(scores)))
                    records.append(ResultRecord(
                        model="tiny", revision=revision, step=step, finetune=finetune,
                        learning_rate=1e-3 if finetune else None, seed=1 if finetune else None,
                        eval_set=eval_set, format=fmt, shots=4, metric=metric,
                        value=float(scores.mean()),
                        stderr=float(scores.std(ddof=1) / np.sqrt(n_docs)),
                        samples_path=str(path) if path else None))
    return to_frame(records)


#: The degraded studies every report must still render (name -> keyword arguments).
DEGRADED = {
    "base_only": {"finetunes": ()},
    "one_checkpoint": {"steps": (1000,)},
    "no_samples": {"samples": False, "formats": ("default", "instruct", "io")},
    "no_finetune_no_samples": {"finetunes": (), "samples": False},
}


#: Label words of the synthetic classification set (MNLI's).
LABELS = ("entailment", "neutral", "contradiction")


def write_choice_samples(path: Path, gold: np.ndarray, predicted: np.ndarray,
                         rng: np.random.Generator, *, as_file: bool = True) -> None:
    """A per-sample file of a 3-label task as lm-eval writes it (``as_file``: the
    ``samples_*.jsonl`` layout, arguments as ``gen_args_N`` and responses as strings; else as
    ``simple_evaluate`` returns samples): the predicted label gets the highest log-likelihood."""
    lines = []
    for doc_id, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        lls = -rng.uniform(2.0, 6.0, len(LABELS))
        lls[p] = lls.max() + rng.uniform(0.1, 1.0)
        args = [[f"context {doc_id}", f" {lab}"] for lab in LABELS]
        resps = [[float(ll), False] for ll in lls]
        if as_file:
            args = {f"gen_args_{i}": {"arg_0": a, "arg_1": b} for i, (a, b) in enumerate(args)}
            resps = [[str(ll), "False"] for ll, _ in resps]
        lines.append(json.dumps({"doc_id": doc_id, "target": str(g) if as_file else int(g),
                                 "arguments": args, "filtered_resps": resps, "filter": "none",
                                 "acc": float(g == p)}))
    path.write_text("\n".join(lines) + "\n")


def shot_study(
    folder: Path,
    *,
    steps: tuple[int, ...] = (1000, 2000, 3000),
    finetunes: tuple[str, ...] = ("mnli",),
    formats: tuple[str, ...] = ("default", "instruct"),
    seeds: tuple[int, ...] = (1234, 1, 2),
    shots: tuple[int, ...] = (0, 4),
    n_docs: int = 40,
    collapsed: tuple[tuple[str | None, int, int], ...] = (),
    seed: int = 0,
) -> pd.DataFrame:
    """A study with shot sets: ``mnli_matched`` (3 labels, per-sample files with predictions)
    and ``xsum`` (scores only), base and fine-tuned, every format, every shot count; 0-shot runs
    have no shot set. ``collapsed``: ``(finetune, step, seed)`` runs whose model answers
    ``contradiction`` for every document (4-shot, every format)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    gold = rng.integers(0, len(LABELS), n_docs)
    records = []
    for i, step in enumerate(steps):
        for finetune in (None, *finetunes):
            for k in shots:
                for shot_seed in (seeds if k else (None,)):
                    for fmt in formats:
                        shift = 0.1 * ((shot_seed or 0) % 3) + 0.05 * formats.index(fmt)
                        level = min(0.3 + 0.1 * i + (0.2 if finetune else 0) + shift, 0.95)
                        if (finetune, step, shot_seed) in collapsed:
                            predicted = np.full(n_docs, 2)
                        else:
                            right = rng.random(n_docs) < level
                            predicted = np.where(right, gold,
                                                 (gold + rng.integers(1, 3, n_docs)) % 3)
                        path = folder / f"{step}_{finetune}_{k}_{shot_seed}_{fmt}.jsonl"
                        write_choice_samples(path, gold, predicted, rng)
                        common = {"model": "tiny", "revision": f"step{step}", "step": step,
                                  "finetune": finetune,
                                  "learning_rate": 1e-3 if finetune else None,
                                  "format": fmt, "shots": k, "fewshot_seed": shot_seed,
                                  "shot_sampling": "fixed" if k else None}
                        records.append(ResultRecord(
                            **common, eval_set="mnli_matched", metric="acc",
                            value=float((predicted == gold).mean()), samples_path=str(path)))
                        records.append(ResultRecord(
                            **common, eval_set="xsum", metric="rougeL",
                            value=float(np.clip(level / 2 + rng.normal(0, 0.02), 0, 1))))
    return to_frame(records)
