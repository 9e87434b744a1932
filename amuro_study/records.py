"""The typed result record: one scored (model checkpoint, fine-tune, evaluation set) cell.

A run's identity lives in these fields and nowhere else (never parsed back out of file or
directory names). The study runner writes records; :mod:`amuro_study.analysis` reads a
``DataFrame`` made by :func:`to_frame`; :mod:`amuro_study.paper_results` turns the paper's released
CSVs into the same records so both go through the same analyses.

Field meanings
--------------
``model``
    The *pre-trained* model the run starts from (``allenai/OLMo-1B-hf``), not the fine-tuned copy.
``revision`` / ``step`` / ``commit``
    The pre-training checkpoint: Hub branch (``step1000-tokens4B`` or ``main``), its pre-training
    step, and the resolved commit hash. ``main`` has no step in its name; give it the final step of
    the model if known. The paper's release uses :data:`PAPER_MAIN_STEP` (750,000) for ``main`` when
    it computes slopes, and :mod:`~amuro_study.paper_results` stores that value. Analyses label a
    checkpoint ``main`` whenever ``revision == "main"`` (see :func:`checkpoint_label`).
``finetune`` / ``learning_rate`` / ``epochs`` / ``seed``
    The supervised fine-tuning task (``mnli``, ``paws``, ``xsum``, ``socialiqa``, ``tulu``) and its
    hyper-parameters, or ``None`` for the base (never fine-tuned) checkpoint.
``eval_set`` / ``format`` / ``shots`` / ``metric``
    Evaluation set name (as in :mod:`amuro_tasks.specs`), prompt format (``default``, ``instruct``,
    ``io``), number of in-context examples, and metric name (``acc``, ``rougeL``, ...).
``value`` / ``stderr`` / ``samples_path``
    The score, its standard error if known, and the lm-eval per-sample ``.jsonl`` file (for
    bootstrap confidence intervals) if one was kept.
``fewshot_seed`` / ``shot_sampling``
    The shot set of a k-shot score: the seed of its shot pool (``amuro_fewshot_seed``; the
    study's ``eval.fewshot_seeds``) and ``fixed`` (one set for every document) or
    ``per_document`` (``amuro_shots``). ``None`` at 0 shots, for records that predate them and
    for the paper's release (one fixed set, seed unknown).
``protocol`` / ``split`` / ``data_commit``
    Which split protocol the study used (``paper`` or ``upstream``, ``amuro_tasks.family``), the
    split(s) of the set it meant (``validation``; LLMBar's several as ``+``-joined names), and
    the commit the scored rows were read at (Hub or GitHub; ``None`` for local data). ``None``
    for records that predate them or come from the paper's release.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

# the one atomic writer (temp file + fsync + rename, temp removed on failure), shared with
# amuro_sft; re-exported here for the report and the store
from amuro_sft.atomic import atomic_write_bytes, atomic_write_text  # noqa: F401
from amuro_tasks.family import FORMATS  # the three prompt formats (paper, Table 3)
from amuro_tasks.shots import SHOT_MODES  # fixed, per_document

#: Step the paper's release assigns to the final (``main``) checkpoint when computing slopes.
PAPER_MAIN_STEP = 750_000
#: Revision name of the final checkpoint.
MAIN_REVISION = "main"


@dataclass(frozen=True, kw_only=True)
class ResultRecord:
    """One score of one model checkpoint (optionally fine-tuned) on one evaluation set."""

    model: str
    revision: str | None = None
    step: int | None = None
    commit: str | None = None
    finetune: str | None = None
    learning_rate: float | None = None
    epochs: int | None = None
    seed: int | None = None
    eval_set: str
    format: str = "default"
    shots: int | None = None
    fewshot_seed: int | None = None
    shot_sampling: str | None = None
    metric: str
    value: float
    stderr: float | None = None
    samples_path: str | None = None
    protocol: str | None = None
    split: str | None = None
    data_commit: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("ResultRecord.model must be a non-empty string")
        if not self.eval_set:
            raise ValueError("ResultRecord.eval_set must be a non-empty string")
        if not self.metric:
            raise ValueError("ResultRecord.metric must be a non-empty string")
        if self.format not in FORMATS:
            raise ValueError(f"ResultRecord.format must be one of {FORMATS}, got {self.format!r}")
        if not isinstance(self.value, (int, float)) or not math.isfinite(float(self.value)):
            raise ValueError(f"ResultRecord.value must be a finite number, got {self.value!r}")
        if self.step is not None and self.step < 0:
            raise ValueError(f"ResultRecord.step must be >= 0, got {self.step}")
        if self.shots is not None and self.shots < 0:
            raise ValueError(f"ResultRecord.shots must be >= 0, got {self.shots}")
        if self.shot_sampling is not None and self.shot_sampling not in SHOT_MODES:
            raise ValueError(f"ResultRecord.shot_sampling must be one of {SHOT_MODES}, got "
                             f"{self.shot_sampling!r}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRecord:
        """Inverse of :meth:`to_dict`; unknown keys are an error (catches schema drift)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ResultRecord field(s): {sorted(unknown)}")
        return cls(**{k: _clean(v) for k, v in data.items()})

    def to_json(self) -> str:
        """One-line JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ResultRecord:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


#: DataFrame columns made by :func:`to_frame`, in field order.
RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRecord))
_INT_FIELDS = ("step", "epochs", "seed", "shots", "fewshot_seed")
_FLOAT_FIELDS = ("learning_rate", "value", "stderr")


def _clean(value: Any) -> Any:
    """NaN/NA (as pandas writes missing values) -> None; numpy scalars -> Python scalars."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if hasattr(value, "item"):
        return value.item()
    return value


def to_frame(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """A ``DataFrame`` with one row per record and exactly :data:`RECORD_COLUMNS` as columns.

    Integer fields use pandas' nullable ``Int64`` so that ``None`` survives; missing values
    are ``<NA>``/``NaN`` (``None`` for strings).
    """
    rows = [r.to_dict() for r in records]
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    for name in _INT_FIELDS:
        frame[name] = pd.array(frame[name].tolist(), dtype="Int64")
    for name in _FLOAT_FIELDS:
        frame[name] = pd.to_numeric(frame[name], errors="raise").astype(float)
    for name in set(RECORD_COLUMNS) - set(_INT_FIELDS) - set(_FLOAT_FIELDS):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def from_frame(frame: pd.DataFrame) -> list[ResultRecord]:
    """Records from a frame with (at least) :data:`RECORD_COLUMNS`; extra columns are ignored."""
    missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks record column(s): {missing}")
    out = []
    for row in frame[list(RECORD_COLUMNS)].itertuples(index=False):
        data = {k: _clean(v) for k, v in zip(RECORD_COLUMNS, row, strict=True)}
        for name in _INT_FIELDS:
            if data[name] is not None:
                data[name] = int(data[name])
        out.append(ResultRecord(**data))
    return out


def checkpoint_label(step: int | None, revision: str | None) -> str:
    """Display label of a checkpoint: ``main`` for the final revision, else the step."""
    if revision == MAIN_REVISION:
        return "main"
    if step is None or (not isinstance(step, str) and pd.isna(step)):
        return str(revision) if revision else "?"
    return str(int(step))


def write_records_json(records: Iterable[ResultRecord], path: str | os.PathLike[str]) -> Path:
    """Write records as a JSON list (atomically)."""
    payload = json.dumps([r.to_dict() for r in records], indent=1, sort_keys=True)
    return atomic_write_text(path, payload + "\n")


def read_records_json(path: str | os.PathLike[str]) -> list[ResultRecord]:
    """Read a JSON list written by :func:`write_records_json` (or a single record object)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    return [ResultRecord.from_dict(d) for d in data]
