"""Sensitivity to the in-context examples: shot sets, shot counts, and label collapse.

The paper measures prompt sensitivity over three formats with one fixed set of shots. A study
with ``eval.fewshot_seeds`` (several shot sets), ``eval.shot_sampling`` (fixed and per-document
shots) or ``eval.shots`` holding 0 and k also measures what the shots themselves do; these pure
functions over a frame of result records (:func:`amuro_study.records.to_frame`) compute it, and
:func:`read_label_predictions` reads a per-sample file for the one quantity that needs the
documents' predictions, label collapse. ``docs/analysis.md`` states every formula.

* :func:`primary_shot_set` keeps the one shot set the paper's analyses use (:func:`select` would
  refuse several scores of one run), :func:`select_shot_sets` is :func:`select` per shot set
  (:func:`fill_default_shot_set` first names the shot set of records that predate it);
* :func:`shot_sensitivity`: range and sd of a score across shot sets;
* :func:`shot_format_decomposition`: the spread over the format x shot-set grid split into a
  format part, a shot-set part and their interaction (two-way decomposition of the variance);
* :func:`zero_vs_few_shot`: k-shot minus 0-shot, per shot set;
* :func:`label_collapse`: the share of documents given the most frequent label, and the flag.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amuro_study import analysis as an
from amuro_tasks.family import FORMATS
from amuro_tasks.loading import DEFAULT_FEWSHOT_SEED
from amuro_tasks.shots import DEFAULT_SHOT_MODE

#: A model is *collapsed* on a classification set when it gives one label to at least this share
#: of the documents (and at least :data:`COLLAPSE_MIN_DOCS` were scored).
COLLAPSE_SHARE = 0.95
#: Fewer documents decide nothing: 10 documents of a 2-label set all get one label by chance
#: with probability 2 x 0.5^10 = 0.2% when labels are drawn at random.
COLLAPSE_MIN_DOCS = 10

_SET = ["fewshot_seed", "shot_sampling"]
_CELL = ["eval_set", "metric", "finetune", "step", "revision"]
"""A score's cell without its format and shots: eval set, metric, variant, checkpoint."""


# ============================================================================ which shot sets
def _seeded(df: pd.DataFrame) -> pd.Series:
    """Rows scored with shots from a known shot set (k > 0, seed recorded)."""
    if "fewshot_seed" not in df.columns:
        return pd.Series(False, index=df.index)
    return (df["shots"].astype("Int64").fillna(0) > 0) & df["fewshot_seed"].notna()


def fill_default_shot_set(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the default shot set (seed 1234, fixed) named on k-shot rows that name none,
    where other rows name one: those are amuro's records from before the shot set was recorded
    (a study folder resumed with ``eval.fewshot_seeds``: its default units keep their ids and
    their results), scored with the only shot set amuro had. A frame where no row names a shot
    set (the paper's release) is returned as it is."""
    if "fewshot_seed" not in df.columns or not df["fewshot_seed"].notna().any():
        return df
    unnamed = (df["shots"].astype("Int64").fillna(0) > 0) & df["fewshot_seed"].isna()
    if not unnamed.any():
        return df
    out = df.copy()
    out.loc[unnamed, "fewshot_seed"] = DEFAULT_FEWSHOT_SEED
    out.loc[unnamed, "shot_sampling"] = DEFAULT_SHOT_MODE
    out["fewshot_seed"] = out["fewshot_seed"].astype("Int64")
    return out


def shot_sets(df: pd.DataFrame) -> list[tuple[int, str]]:
    """The ``(seed, sampling)`` shot sets of ``df``'s k-shot rows, sorted."""
    part = df[_seeded(df)]
    pairs = {(int(s), str(m or DEFAULT_SHOT_MODE))
             for s, m in zip(part["fewshot_seed"], part["shot_sampling"], strict=True)}
    return sorted(pairs, key=lambda p: (p[1] != DEFAULT_SHOT_MODE, p[1], p[0]))


def primary_shot_set(df: pd.DataFrame) -> tuple[int | None, str | None]:
    """The shot set the paper's analyses use: fixed shots if the study has them (else
    per-document), and among those seed 1234 (amuro's default) if present, else the smallest;
    ``(None, None)`` when no row names a shot set (0-shot only, the paper's release)."""
    sets = shot_sets(df)
    if not sets:
        return None, None
    mode = DEFAULT_SHOT_MODE if any(m == DEFAULT_SHOT_MODE for _, m in sets) else sets[0][1]
    seeds = [s for s, m in sets if m == mode]
    return (DEFAULT_FEWSHOT_SEED if DEFAULT_FEWSHOT_SEED in seeds else min(seeds)), mode


def only_primary_shot_set(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the k-shot rows of other shot sets than :func:`primary_shot_set` (rows
    without a shot set -- 0-shot, older records, the paper's release -- are kept)."""
    seed, mode = primary_shot_set(df)
    if seed is None:
        return df
    seeded = _seeded(df)
    sampling = df["shot_sampling"].fillna(DEFAULT_SHOT_MODE)
    keep = ~seeded | ((df["fewshot_seed"].astype("Int64") == seed) & (sampling == mode))
    return df[keep.fillna(False).astype(bool)]


def has_shot_axes(df: pd.DataFrame) -> bool:
    """Whether ``df`` comes from a study with shot axes: more than one shot set, or 0-shot
    scores beside k-shot scores of a recorded shot set. (The paper's release, whose records
    name no shot set, has a few ad-hoc 0-shot runs; its report keeps the paper's sections.)"""
    if len(shot_sets(df)) > 1:
        return True
    return bool(shot_sets(df)) and bool((df["shots"].astype("Int64") == 0).any())


def select_shot_sets(df: pd.DataFrame, *,
                     learning_rates: Mapping[str, float] | None = None) -> pd.DataFrame:
    """:func:`amuro_study.analysis.select` (any shots, every format) applied to each shot set
    apart: one row per run and shot set, with ``fewshot_seed`` and ``shot_sampling`` kept.
    Rows without a shot count are left out (nothing to compare them with)."""
    df = df[df["shots"].notna()]
    seeded = _seeded(df)
    parts = [an.select(df[~seeded], shots=None, formats=None, learning_rates=learning_rates)]
    keyed = df[seeded].assign(_m=df.loc[seeded, "shot_sampling"].fillna(DEFAULT_SHOT_MODE))
    for _, part in keyed.groupby(["fewshot_seed", "_m"], sort=True):
        parts.append(an.select(part.drop(columns="_m"), shots=None, formats=None,
                               learning_rates=learning_rates))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0].copy()


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Restore missing values of key columns made by :func:`amuro_study.analysis._keyed`; add
    ``variant`` and ``checkpoint``."""
    frame = frame.copy()
    for col in ("finetune", "revision", "shot_sampling"):
        if col in frame.columns:
            frame[col] = frame[col].replace("", None)
    frame["variant"] = frame["finetune"].fillna("base")
    return an._with_label(frame)


def _sorted(frame: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    frame = frame.assign(_b=frame["variant"] != "base")
    order = ["eval_set", "_b", "variant", "step", *extra]
    return frame.sort_values(order, kind="stable").drop(columns="_b").reset_index(drop=True)


# ============================================================================ shot sets
SHOT_SENSITIVITY_COLUMNS = [
    "eval_set", "metric", "variant", "finetune", "step", "checkpoint", "format", "shots",
    "shot_sampling", "n_sets", "seeds", "mean", "min", "max", "range", "std",
]


def shot_sensitivity(d: pd.DataFrame) -> pd.DataFrame:
    """Spread of each k-shot score across shot sets.

    ``d``: :func:`select_shot_sets`. One row per (eval set, metric, variant, checkpoint, format,
    shots, sampling) scored with at least two shot sets: ``n_sets``, the ``seeds``, and over
    the shot sets' scores their ``mean``, ``min``, ``max``, ``range`` (max - min) and ``std``
    (population sd, ddof=0, as :func:`~amuro_study.analysis.format_sensitivity`). Columns:
    :data:`SHOT_SENSITIVITY_COLUMNS`.
    """
    part = d[_seeded(d)]
    if part.empty:
        return pd.DataFrame(columns=SHOT_SENSITIVITY_COLUMNS)
    keys = [*_CELL, "format", "shots", "shot_sampling"]
    k = an._keyed(part, keys)
    k["shot_sampling"] = k["shot_sampling"].replace("", DEFAULT_SHOT_MODE)
    rows = []
    for key, g in k.groupby(keys, sort=True):
        if g["fewshot_seed"].nunique() < 2:
            continue
        if g["fewshot_seed"].duplicated().any():
            raise ValueError(f"shot_sensitivity: several scores of one shot set for {key}; "
                             "select_shot_sets() the frame first")
        v = g["value"].to_numpy(dtype=float)
        rows.append({**dict(zip(keys, key, strict=True)), "n_sets": len(v),
                     "seeds": ", ".join(str(int(s)) for s in sorted(g["fewshot_seed"])),
                     "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                     "range": float(v.max() - v.min()), "std": float(v.std(ddof=0))})
    if not rows:
        return pd.DataFrame(columns=SHOT_SENSITIVITY_COLUMNS)
    out = _labelled(pd.DataFrame(rows))
    out["step"] = out["step"].replace(-1, pd.NA).astype("Int64")
    return _sorted(out[SHOT_SENSITIVITY_COLUMNS], ["format", "shots", "shot_sampling"])


DECOMPOSITION_COLUMNS = [
    "eval_set", "metric", "variant", "finetune", "step", "checkpoint", "shots", "shot_sampling",
    "n_formats", "n_sets", "formats", "grand_mean", "total_var", "format_var", "shot_var",
    "interaction_var", "format_share", "shot_share", "interaction_share", "format_range",
    "shot_range",
]


def decompose_grid(y: np.ndarray) -> dict[str, float]:
    """Two-way decomposition of the spread of a complete grid ``y[f, s]`` (formats x shot sets).

    With ``m`` the grand mean, ``a_f = mean_s y[f, s] - m`` (format effects), ``b_s = mean_f
    y[f, s] - m`` (shot-set effects) and ``e[f, s] = y[f, s] - m - a_f - b_s`` (interaction):
    ``total_var = mean (y - m)^2 = mean_f a_f^2 + mean_s b_s^2 + mean e^2`` exactly (the three
    parts are orthogonal on a complete grid). Also: ``format_range`` (range across formats,
    mean over shot sets) and ``shot_range`` (range across shot sets, mean over formats).
    """
    m = float(y.mean())
    a = y.mean(axis=1) - m
    b = y.mean(axis=0) - m
    e = y - m - a[:, None] - b[None, :]
    total = float(((y - m) ** 2).mean())
    parts = {"format_var": float((a**2).mean()), "shot_var": float((b**2).mean()),
             "interaction_var": float((e**2).mean())}
    shares = {k.replace("_var", "_share"): (v / total if total > 0 else math.nan)
              for k, v in parts.items()}
    return {"grand_mean": m, "total_var": total, **parts, **shares,
            "format_range": float((y.max(axis=0) - y.min(axis=0)).mean()),
            "shot_range": float((y.max(axis=1) - y.min(axis=1)).mean())}


def shot_format_decomposition(d: pd.DataFrame) -> pd.DataFrame:
    """:func:`decompose_grid` of every (eval set, metric, variant, checkpoint, shots, sampling)
    scored on a format x shot-set grid of at least 2 x 2 (formats missing a shot set of the
    others are left out, so the grid is complete). Columns: :data:`DECOMPOSITION_COLUMNS`."""
    part = d[_seeded(d)]
    if part.empty:
        return pd.DataFrame(columns=DECOMPOSITION_COLUMNS)
    keys = [*_CELL, "shots", "shot_sampling"]
    k = an._keyed(part, [*keys, "format"])
    k["shot_sampling"] = k["shot_sampling"].replace("", DEFAULT_SHOT_MODE)
    rows = []
    for key, g in k.groupby(keys, sort=True):
        grid = g.pivot_table(index="format", columns="fewshot_seed", values="value",
                             aggfunc="first")
        grid = grid.dropna(axis=1, how="all")
        grid = grid[grid.notna().all(axis=1)]  # formats scored with every shot set
        grid = grid.loc[:, grid.notna().all(axis=0)]
        if grid.shape[0] < 2 or grid.shape[1] < 2:
            continue
        fmts = [f for f in FORMATS if f in grid.index]
        rows.append({**dict(zip(keys, key, strict=True)), "n_formats": len(fmts),
                     "n_sets": grid.shape[1], "formats": ", ".join(fmts),
                     **decompose_grid(grid.loc[fmts].to_numpy(dtype=float))})
    if not rows:
        return pd.DataFrame(columns=DECOMPOSITION_COLUMNS)
    out = _labelled(pd.DataFrame(rows))
    out["step"] = out["step"].replace(-1, pd.NA).astype("Int64")
    return _sorted(out[DECOMPOSITION_COLUMNS], ["shots", "shot_sampling"])


SHOT_SUMMARY_COLUMNS = [
    "variant", "shots", "shot_sampling", "n_cells", "mean_range", "ci_low", "ci_high",
    "mean_std", "n_grids", "format_range", "shot_range", "format_share", "shot_share",
    "interaction_share",
]


def shot_range_summary(ss: pd.DataFrame, dec: pd.DataFrame, *, n_resamples: int = 2000,
                       confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Headline of the shot sets, per variant (and shot count, sampling): the mean range
    across shot sets over (eval set, format, checkpoint) cells of :func:`shot_sensitivity`, with
    a percentile-bootstrap CI over the cells, and its mean sd; over the grids of
    :func:`shot_format_decomposition` (``n_grids``, NaN without one), the mean range across
    formats and across shot sets on the same grids, and the mean share of each part of the
    variance. Columns: :data:`SHOT_SUMMARY_COLUMNS`."""
    rows = []
    keys = ["variant", "shots", "shot_sampling"]
    for key, part in ss.groupby(keys, sort=True):
        ci = an.bootstrap_mean_ci(part["range"].to_numpy(dtype=float), n_resamples=n_resamples,
                                  confidence=confidence, seed=seed)
        grids = dec
        for col, val in zip(keys, key, strict=True):
            grids = grids[grids[col] == val]
        on_grids = {c: float(grids[c].mean()) if len(grids) else math.nan
                    for c in ("format_range", "shot_range", "format_share", "shot_share",
                              "interaction_share")}
        rows.append({**dict(zip(keys, key, strict=True)), "n_cells": len(part),
                     "mean_range": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "mean_std": float(part["std"].mean()), "n_grids": len(grids), **on_grids})
    out = pd.DataFrame(rows, columns=SHOT_SUMMARY_COLUMNS)
    if out.empty:
        return out
    out = out.assign(_b=out["variant"] != "base")
    return out.sort_values(["_b", "variant", "shots", "shot_sampling"]).drop(
        columns="_b").reset_index(drop=True)


# ============================================================================ 0 vs k shots
ZERO_SHOT_COLUMNS = [
    "eval_set", "metric", "variant", "finetune", "step", "checkpoint", "format", "shots",
    "shot_sampling", "n_sets", "zero_shot", "few_shot", "few_shot_min", "few_shot_max",
    "difference", "difference_min", "difference_max",
]


def zero_vs_few_shot(d: pd.DataFrame) -> pd.DataFrame:
    """k-shot minus 0-shot on the same cell and format.

    ``d``: :func:`select_shot_sets`. For each (eval set, metric, variant, checkpoint, format)
    with a 0-shot score and k-shot scores (per k and sampling; ``n_sets`` shot sets):
    ``few_shot`` is their mean (``few_shot_min``/``max`` over the shot sets), ``difference =
    few_shot - zero_shot`` and ``difference_min``/``max`` the same for the worst and best shot
    set. Columns: :data:`ZERO_SHOT_COLUMNS`.
    """
    keys = [*_CELL, "format"]
    k = an._keyed(d, [*keys, "shots", "shot_sampling"])
    zero = k[k["shots"] == 0]
    few = k[k["shots"] > 0].copy()
    if zero.empty or few.empty:
        return pd.DataFrame(columns=ZERO_SHOT_COLUMNS)
    if zero.duplicated(keys).any():
        raise ValueError("zero_vs_few_shot: several 0-shot scores of one cell; "
                         "select_shot_sets() the frame first")
    few["shot_sampling"] = few["shot_sampling"].replace("", DEFAULT_SHOT_MODE)
    agg = (few.groupby([*keys, "shots", "shot_sampling"], as_index=False)
           .agg(n_sets=("value", "size"), few_shot=("value", "mean"),
                few_shot_min=("value", "min"), few_shot_max=("value", "max")))
    out = agg.merge(zero[[*keys, "value"]].rename(columns={"value": "zero_shot"}), on=keys)
    if out.empty:
        return pd.DataFrame(columns=ZERO_SHOT_COLUMNS)
    out["difference"] = out["few_shot"] - out["zero_shot"]
    out["difference_min"] = out["few_shot_min"] - out["zero_shot"]
    out["difference_max"] = out["few_shot_max"] - out["zero_shot"]
    out = _labelled(out)
    out["step"] = out["step"].replace(-1, pd.NA).astype("Int64")
    return _sorted(out[ZERO_SHOT_COLUMNS], ["format", "shots", "shot_sampling"])


ZERO_SHOT_SUMMARY_COLUMNS = ["variant", "shots", "shot_sampling", "n_cells", "mean_difference",
                             "ci_low", "ci_high", "share_worse"]


def zero_shot_summary(zk: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Per variant (and k, sampling): the mean k-shot minus 0-shot difference over (eval set,
    format, checkpoint) cells with a percentile-bootstrap CI over the cells, and
    ``share_worse``, the share of cells where the k-shot mean is below the 0-shot score.
    Columns: :data:`ZERO_SHOT_SUMMARY_COLUMNS`."""
    rows = []
    for key, part in zk.groupby(["variant", "shots", "shot_sampling"], sort=True):
        diff = part["difference"].to_numpy(dtype=float)
        ci = an.bootstrap_mean_ci(diff, n_resamples=n_resamples, confidence=confidence,
                                  seed=seed)
        rows.append({"variant": key[0], "shots": key[1], "shot_sampling": key[2],
                     "n_cells": len(diff), "mean_difference": ci.estimate, "ci_low": ci.low,
                     "ci_high": ci.high, "share_worse": float((diff < 0).mean())})
    out = pd.DataFrame(rows, columns=ZERO_SHOT_SUMMARY_COLUMNS)
    if out.empty:
        return out
    out = out.assign(_b=out["variant"] != "base")
    return out.sort_values(["_b", "variant", "shots"]).drop(columns="_b").reset_index(drop=True)


# ============================================================================ label collapse
@dataclass(frozen=True)
class LabelPredictions:
    """The predictions a per-sample file of a fixed-label task shows."""

    labels: tuple[str, ...]
    """The choices every document offers (the label words, as continuations)."""
    predicted: tuple[int, ...]
    """Per document: the index of the choice with the highest log-likelihood (lm-eval's
    ``acc`` prediction: ``argmax``, the first choice on ties)."""
    gold: tuple[int | None, ...]
    """Per document: the gold index (``target``), ``None`` if it is not an index."""


def _arguments(sample: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """``(context, continuation)`` of each request of a sample, as lm-eval logs them in memory
    (a list of pairs) or in a ``samples_*.jsonl`` file (``gen_args_N: {arg_0, arg_1}``)."""
    args = sample.get("arguments")
    if isinstance(args, Mapping):
        ordered = sorted(args.items(), key=lambda kv: int(str(kv[0]).rsplit("_", 1)[-1]))
        return [(a.get("arg_0"), a.get("arg_1")) for _, a in ordered]
    return [(a[0], a[1]) for a in args or []]


def read_label_predictions(path: str | os.PathLike[str]) -> LabelPredictions | None:
    """The per-document predictions of a multiple-choice per-sample file whose documents all
    offer the same choices (a classification set: NLI, paraphrase, BoolQ, LLMBar's pairs...);
    ``None`` for generation and for sets whose options differ per document (ARC...), where
    "one label" has no meaning. Lines of another filter than ``none`` are skipped."""
    labels: tuple[str, ...] | None = None
    predicted: list[int] = []
    gold: list[int | None] = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            sample = json.loads(line)
            if sample.get("filter", "none") != "none":
                continue
            conts = [c for _, c in _arguments(sample)]
            if not conts or not all(isinstance(c, str) for c in conts):
                return None  # generation: the second argument holds generation settings
            these = tuple(c.strip() for c in conts)
            if labels is None:
                labels = these
            elif these != labels:
                return None
            resps = sample.get("filtered_resps") or []
            if len(resps) != len(conts):
                raise ValueError(f"{path}:{lineno}: {len(resps)} responses for "
                                 f"{len(conts)} choices")
            lls = [float(r[0] if isinstance(r, (list, tuple)) else r) for r in resps]
            predicted.append(int(np.argmax(lls)))
            target = str(sample.get("target", ""))
            gold.append(int(target) if target.isdigit() and int(target) < len(conts) else None)
    if labels is None:
        return None
    return LabelPredictions(labels, tuple(predicted), tuple(gold))


LABEL_COLLAPSE_COLUMNS = [
    "eval_set", "variant", "finetune", "learning_rate", "step", "checkpoint", "format", "shots",
    "fewshot_seed", "shot_sampling", "n_docs", "labels", "majority_label", "majority_share",
    "gold_majority_label", "gold_majority_share", "accuracy", "collapsed", "samples_path",
]


def collapse_of(pred: LabelPredictions) -> dict[str, Any]:
    """Majority prediction of one file: ``majority_share = max_l #{docs predicted l} / n``,
    the same share for the gold labels, the accuracy of the argmax predictions, and
    ``collapsed = n >= COLLAPSE_MIN_DOCS and majority_share >= COLLAPSE_SHARE``."""
    n = len(pred.predicted)
    counts = np.bincount(pred.predicted, minlength=len(pred.labels))
    top = int(np.argmax(counts))
    gold = [g for g in pred.gold if g is not None]
    gold_counts = np.bincount(gold, minlength=len(pred.labels)) if gold else None
    share = float(counts[top] / n) if n else math.nan
    return {
        "n_docs": n, "labels": ", ".join(pred.labels), "majority_label": pred.labels[top],
        "majority_share": share,
        "gold_majority_label": (pred.labels[int(np.argmax(gold_counts))]
                                if gold_counts is not None else None),
        "gold_majority_share": (float(gold_counts.max() / len(gold))
                                if gold_counts is not None else math.nan),
        "accuracy": (float(np.mean([p == g for p, g in zip(pred.predicted, pred.gold,
                                                            strict=True) if g is not None]))
                     if gold else math.nan),
        "collapsed": bool(n >= COLLAPSE_MIN_DOCS and share >= COLLAPSE_SHARE),
    }


def label_collapse(df: pd.DataFrame) -> pd.DataFrame:
    """The majority prediction (:func:`collapse_of`) of every record whose ``samples_path``
    exists and shows a fixed-label multiple-choice set; one row per file (records of one file,
    ``acc`` and ``acc_norm``, share it). Columns: :data:`LABEL_COLLAPSE_COLUMNS`."""
    if "samples_path" not in df.columns:
        return pd.DataFrame(columns=LABEL_COLLAPSE_COLUMNS)
    rows = []
    seen: set[str] = set()
    for rec in df[df["samples_path"].notna()].to_dict("records"):
        path = str(rec["samples_path"])
        if path in seen or not os.path.isfile(path):
            continue
        seen.add(path)
        pred = read_label_predictions(path)
        if pred is None or not pred.predicted:
            continue
        rows.append({**{c: rec.get(c) for c in [*LABEL_COLLAPSE_COLUMNS, "revision"]
                        if c in rec},
                     **collapse_of(pred), "samples_path": path})
    if not rows:
        return pd.DataFrame(columns=LABEL_COLLAPSE_COLUMNS)
    out = pd.DataFrame(rows)
    out["variant"] = out["finetune"].fillna("base")
    out = an._with_label(out)
    for col in ("step", "shots", "fewshot_seed"):
        out[col] = out[col].astype("Int64")
    return _sorted(out[LABEL_COLLAPSE_COLUMNS], ["format", "shots", "fewshot_seed"])
