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
