"""Analyses of the study: pure functions over a ``DataFrame`` of result records.

Every function takes a frame with the columns of :func:`amuro_study.records.to_frame` (extra
columns, e.g. ``defect`` from :mod:`amuro_study.paper_results`, are carried along where useful) and
knows nothing about files or where the numbers came from. The only file helper,
:func:`read_lm_eval_samples`, turns an lm-eval per-sample ``.jsonl`` into scores for the bootstrap.

Vocabulary
----------
*checkpoint*: a pre-training checkpoint, keyed by ``(step, revision)`` and labelled by
:func:`~amuro_study.records.checkpoint_label` (``main`` for the final revision).
*pair*: ``(eval_set, finetune)``: evaluate the model fine-tuned on ``finetune`` on ``eval_set``.
*raw change* of a pair at checkpoint ``c``: ``perf(finetune at c) - perf(base at c)`` on the same
eval set, format, shots and metric; *change ratio*: raw change / ``perf(base at c)`` (``NaN`` when
the base score is 0).

The paper's numbers (Table 5, §6.2 MRC, Fig. 7) are averages of these per-(checkpoint, pair) cells;
:func:`group_changes_by_checkpoint`, :func:`mean_ratio_of_change` and :func:`ood_change` document
the exact recipe of the authors' notebook, which ``tests/test_paper_reproduction.py`` checks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amuro_study.records import checkpoint_label
from amuro_tasks.suite import FINETUNE_TASKS, FINETUNING_LEARNED, PRETRAINING_LEARNED

Pair = tuple[str, str]
"""``(eval_set, finetune)``."""

#: The instruction-tuning data set of the paper (its ``finetune`` name).
INSTRUCTION_TUNING = "tulu"
#: Group names used by Table 5 / Figure 4.
PRETRAINING_GROUP = "Learned in Pre-train"
FINETUNING_GROUP = "Learned in Fine-Tune"
CLASS_TO_GEN = "classification->generation"
GEN_TO_CLASS = "generation->classification"

#: Identity of one scored cell, without the fine-tune (used to join base and fine-tuned rows).
_CELL = ["model", "step", "revision", "eval_set", "format", "shots", "metric"]
_RUN = [*_CELL, "finetune", "learning_rate", "epochs"]


# ============================================================================ selection
def _keyed(frame: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Copy of ``frame`` whose key columns have no missing values (sentinels), for joins."""
    out = frame.copy()
    for c in cols:
        if c not in out.columns:
            out[c] = None
        if c in ("step", "shots", "epochs"):
            out[c] = out[c].astype("Int64").fillna(-1).astype(int)
        elif c == "learning_rate":
            out[c] = out[c].astype(float).fillna(-1.0)
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), "")
    return out


def select(
    df: pd.DataFrame,
    *,
    shots: int | None = 4,
    formats: Sequence[str] | None = ("default",),
    learning_rates: Mapping[str, float] | None = None,
    eval_sets: Iterable[str] | None = None,
    primary_metric: bool = True,
) -> pd.DataFrame:
    """Rows with the given shots and formats (``None`` = any), one per run.

    ``learning_rates`` keeps, for each fine-tune named in it, only rows with that learning rate
    (the paper selected one per task). Rows that differ only by ``seed`` are averaged (value: mean;
    stderr: root-sum-square / k). Two learning rates or epoch counts for one fine-tune on one
    cell, or any other duplicate, raise ``ValueError`` (pass ``learning_rates``).
    ``primary_metric`` keeps one metric per eval set: where a set reports both ``acc`` and
    ``acc_norm`` (lm-eval's multiple-choice tasks), ``acc_norm`` is dropped, so that no set
    counts twice in a group mean or the dichotomy.
    """
    out = df
    if primary_metric and "metric" in out.columns:
        with_acc = set(out.loc[out["metric"] == "acc", "eval_set"])
        out = out[~((out["metric"] == "acc_norm") & out["eval_set"].isin(with_acc))]
    if shots is not None:
        out = out[out["shots"].astype("Int64") == shots]
    if formats is not None:
        out = out[out["format"].isin(list(formats))]
    if eval_sets is not None:
        out = out[out["eval_set"].isin(list(eval_sets))]
    if learning_rates:
        keep = pd.Series(True, index=out.index)
        for task, lr in learning_rates.items():
            is_task = out["finetune"] == task
            keep &= ~is_task | np.isclose(out["learning_rate"].astype(float), lr, rtol=1e-9)
        out = out[keep]
    if out.empty:
        return out.copy()
    keyed = _keyed(out, _RUN)
    cell = [*_CELL, "finetune"]
    hp = keyed.groupby(cell, sort=False)[["learning_rate", "epochs"]].transform("nunique")
    clash = (hp > 1).any(axis=1)
    if clash.any():
        raise ValueError(
            "several rows for one run: hyper-parameters differ (pass learning_rates=):\n"
            + out.loc[clash.values, _RUN].to_string()
        )
    counts = keyed.groupby(_RUN, sort=False)["value"].transform("size")
    if (counts == 1).all():
        return out.copy()
    seeds = keyed.groupby(_RUN, sort=False)["seed"].transform(lambda s: s.nunique(dropna=False))
    bad = (counts > 1) & (seeds < counts)
    if bad.any():
        several_sets = "fewshot_seed" in out.columns and out["fewshot_seed"].nunique() > 1
        raise ValueError(
            "several rows for one run (pass learning_rates= or filter first"
            + ("; several shot sets: keep one with amuro_study.shot_analysis."
               "only_primary_shot_set, or use select_shot_sets" if several_sets else "")
            + "):\n" + out.loc[bad.values, _RUN].to_string()
        )
    return _average_seeds(out)


def _average_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    keyed = _keyed(frame, _RUN)
    rows = []
    for _, idx in keyed.groupby(_RUN, sort=False).groups.items():
        part = frame.loc[idx]
        row = part.iloc[0].copy()
        row["value"] = float(part["value"].mean())
        se = part["stderr"].astype(float)
        row["stderr"] = float(np.sqrt((se**2).sum()) / len(se)) if se.notna().all() else np.nan
        row["seed"] = pd.NA if len(part) > 1 else row["seed"]
        row["samples_path"] = None if len(part) > 1 else row["samples_path"]
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def checkpoints(df: pd.DataFrame) -> pd.DataFrame:
    """The checkpoints present, ordered by step (``main`` last on ties): step, revision, label."""
    ck = df[["step", "revision"]].drop_duplicates().copy()
    ck["checkpoint"] = [checkpoint_label(s, r) for s, r in zip(ck["step"], ck["revision"],
                                                                  strict=True)]
    ck["_main"] = ck["checkpoint"] == "main"
    ck = ck.sort_values(["step", "_main"], na_position="last").drop(columns="_main")
    return ck.reset_index(drop=True)


def _with_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["checkpoint"] = [checkpoint_label(s, r) for s, r in zip(frame["step"], frame["revision"],
                                                                   strict=True)]
    return frame


# ============================================================================ the paper's sets
def id_finetune(eval_set: str) -> str | None:
    """The fine-tuning task whose in-domain sets contain ``eval_set`` (paper Table 1), if any."""
    for task in FINETUNE_TASKS.values():
        if eval_set in task.id_sets:
            return task.name
    return None


def table5_groups(release_quirks: bool = True) -> dict[str, list[Pair]]:
    """The (eval_set, finetune) pairs of Table 5 / Figure 4, built from :mod:`amuro_tasks.suite`.

    Fine-tuning-learned sets are paired with the supervised task whose in-domain set they are
    (``boolq`` with TULU instruction tuning); pre-training-learned sets (the OLMo-Eval suite) with
    TULU. With ``release_quirks`` the pre-training group lists ``sciq_mc`` twice, as the authors'
    notebook does (so SciQ weighs 2/6 in that column); without, once.
    """
    ft = [(s, id_finetune(s) or INSTRUCTION_TUNING) for s in FINETUNING_LEARNED]
    pt = [(s, INSTRUCTION_TUNING) for s in PRETRAINING_LEARNED]
    if release_quirks:
        pt.append(("sciq_mc", INSTRUCTION_TUNING))
    return {PRETRAINING_GROUP: pt, FINETUNING_GROUP: ft}


def cross_task_pairs() -> dict[str, list[Pair]]:
    """§6.2's cross-task pairs: each task's training set evaluated after the other kind's tasks.

    classification->generation: {(xsum, mnli), (socialiqa, mnli), (xsum, paws), (socialiqa, paws)};
    generation->classification: {(mnli_matched, xsum), (paws, xsum), (mnli_matched, socialiqa),
    (paws, socialiqa)}, exactly the release's pairs.
    """
    cls = [t for t in FINETUNE_TASKS.values() if t.kind == "classification"]
    gen = [t for t in FINETUNE_TASKS.values() if t.kind == "generation"]
    return {
        CLASS_TO_GEN: [(g.train_set, c.name) for c in cls for g in gen],
        GEN_TO_CLASS: [(c.train_set, g.name) for g in gen for c in cls],
    }


def ood_pairs() -> dict[str, list[Pair]]:
    """Fig. 7's out-of-domain pairs per fine-tuning task (Table 1's OOD sets)."""
    return {t.name: [(s, t.name) for s in t.ood_sets] for t in FINETUNE_TASKS.values()}


# ============================================================================ performance
def performance_table(df: pd.DataFrame) -> pd.DataFrame:
    """Tidy performance vs step: one row per (eval_set, format, variant, checkpoint).

    ``variant`` is ``base`` or the fine-tuning task. Columns: eval_set, format, shots, metric,
    variant, finetune, step, revision, checkpoint, value, stderr (+ ``ci_low``/``ci_high``,
    ``defect`` and ``collapsed`` when present).
    Sorted by eval set, format, variant (base first), step.
    """
    cols = ["eval_set", "format", "shots", "metric", "finetune", "step", "revision", "value",
            "stderr"]
    cols += [c for c in ("ci_low", "ci_high", "defect", "collapsed") if c in df.columns]
    out = _with_label(df[cols])
    out.insert(4, "variant", out["finetune"].fillna("base"))
    out["_b"] = out["variant"] != "base"
    out["_main"] = out["checkpoint"] == "main"
    out = out.sort_values(["eval_set", "format", "_b", "variant", "step", "_main"])
    return out.drop(columns=["_b", "_main"]).reset_index(drop=True)


# ============================================================================ changes
def paired_changes(df: pd.DataFrame, pairs: Sequence[Pair]) -> pd.DataFrame:
    """One row per (pair, checkpoint) where both the base and the fine-tuned score exist.

    ``df`` should already be :func:`select`-ed (one row per run). Pairs may repeat (each
    occurrence yields its own rows, which is how the release double-counts SciQ). Columns:
    pair_index, eval_set, finetune, format, shots, metric, step, revision, checkpoint, base,
    tuned, base_stderr, tuned_stderr, raw_change, change_ratio (+ defect if present).
    """
    base = df[df["finetune"].isna()]
    frames = []
    for i, (eval_set, finetune) in enumerate(pairs):
        b = _keyed(base[base["eval_set"] == eval_set], _CELL)
        t = _keyed(df[(df["finetune"] == finetune) & (df["eval_set"] == eval_set)], _CELL)
        if b.duplicated(_CELL).any() or t.duplicated(_CELL).any():
            raise ValueError(f"pair {(eval_set, finetune)}: several rows per checkpoint; "
                             "select() the frame first")
        keep = [*_CELL, "value", "stderr"] + (["defect"] if "defect" in df.columns else [])
        m = b[keep].merge(t[[*_CELL, "value", "stderr"]], on=_CELL, suffixes=("_b", "_t"))
        if m.empty:
            continue
        m.insert(0, "pair_index", i)
        m.insert(1, "finetune", finetune)
        frames.append(m)
    cols = ["pair_index", "eval_set", "finetune", "format", "shots", "metric", "step", "revision",
            "checkpoint", "base", "tuned", "base_stderr", "tuned_stderr", "raw_change",
            "change_ratio"] + (["defect"] if "defect" in df.columns else [])
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out = out.rename(columns={"value_b": "base", "value_t": "tuned", "stderr_b": "base_stderr",
                              "stderr_t": "tuned_stderr"})
    out["revision"] = out["revision"].replace("", None)
    out["step"] = out["step"].replace(-1, pd.NA).astype("Int64")
    out["shots"] = out["shots"].replace(-1, pd.NA).astype("Int64")
    out = _with_label(out)
    out["raw_change"] = out["tuned"] - out["base"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out["raw_change"] / out["base"]
    out["change_ratio"] = ratio.where(out["base"] != 0)
    return out[cols].sort_values(["step", "pair_index"], kind="stable").reset_index(drop=True)


def group_changes_by_checkpoint(
    df: pd.DataFrame, groups: Mapping[str, Sequence[Pair]]
) -> pd.DataFrame:
    """Mean raw change and mean change ratio per (group, checkpoint): Table 5 / Figure 4.

    Recipe (the authors' ``avg_change_table_by_checkpoint``): at each checkpoint, average the
    raw change over the group's pairs that have both scores at that checkpoint (a pair listed
    twice counts twice). Also reported: ``n_pairs`` used, ``n_expected`` listed, the sample
    standard deviation of the raw changes, and the release's "slope per 100k steps" (difference
    of consecutive means / step difference x 100,000; ``main`` uses its ``step``, i.e. 750,000
    for the release).
    """
    rows = []
    for name, pairs in groups.items():
        ch = paired_changes(df, pairs)
        prev: tuple[float, float] | None = None
        for (step, label), part in ch.groupby(["step", "checkpoint"], sort=True):
            mean = float(part["raw_change"].mean())
            slope = 0.0 if prev is None else (mean - prev[1]) / (float(step) - prev[0]) * 1e5
            rows.append({
                "group": name, "step": int(step), "checkpoint": label,
                "mean_raw_change": mean,
                "mean_change_ratio": float(part["change_ratio"].mean()),
                "std_raw_change": float(part["raw_change"].std(ddof=1)) if len(part) > 1
                else math.nan,
                "n_pairs": int(len(part)), "n_expected": len(pairs),
                "slope_per_100k": slope,
            })
            prev = (float(step), mean)
    return pd.DataFrame(rows, columns=["group", "step", "checkpoint", "mean_raw_change",
                                       "mean_change_ratio", "std_raw_change", "n_pairs",
                                       "n_expected", "slope_per_100k"])


def table5(df: pd.DataFrame, release_quirks: bool = True) -> pd.DataFrame:
    """Appendix G, Table 5: mean raw change per checkpoint, one column per group.

    ``df`` must be :func:`select`-ed (4 shots, default format, one learning rate per task).
    Index: checkpoint labels in step order; columns: :data:`PRETRAINING_GROUP`,
    :data:`FINETUNING_GROUP`.
    """
    g = group_changes_by_checkpoint(df, table5_groups(release_quirks))
    if g.empty:  # no fine-tuned result yet
        return pd.DataFrame(columns=[PRETRAINING_GROUP, FINETUNING_GROUP],
                            index=pd.Index([], name="checkpoint"))
    wide = g.pivot(index=["step", "checkpoint"], columns="group", values="mean_raw_change")
    wide = wide.reset_index(level="step", drop=True)
    wide.columns.name = None
    return wide[[c for c in (PRETRAINING_GROUP, FINETUNING_GROUP) if c in wide.columns]]


def group_change_summary(
    df: pd.DataFrame,
    groups: Mapping[str, Sequence[Pair]],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group: mean raw change over all its (checkpoint, pair) cells, with a bootstrap CI.

    The headline companion of :func:`group_changes_by_checkpoint` (Table 5): the same cells,
    pooled over checkpoints; the CI is a percentile bootstrap over the cells (like
    :func:`mrc_summary`; cells of one pair at different checkpoints are not independent, so it
    is a rough check of "different from 0"). Columns: group, mean_raw_change, ci_low, ci_high,
    n_cells, n_checkpoints. Groups without any cell are left out.
    """
    rows = []
    for name, pairs in groups.items():
        ch = paired_changes(df, pairs)
        if ch.empty:
            continue
        ci = bootstrap_mean_ci(ch["raw_change"].to_numpy(dtype=float), n_resamples=n_resamples,
                               confidence=confidence, seed=seed)
        rows.append({"group": name, "mean_raw_change": ci.estimate, "ci_low": ci.low,
                     "ci_high": ci.high, "n_cells": len(ch),
                     "n_checkpoints": int(ch["checkpoint"].nunique())})
    return pd.DataFrame(rows, columns=["group", "mean_raw_change", "ci_low", "ci_high",
                                       "n_cells", "n_checkpoints"])


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    se: float
    n: int
    confidence: float


def mean_ratio_of_change(df: pd.DataFrame, pairs: Sequence[Pair]) -> float:
    """§6.2's MRC in percent: the mean change ratio over all (checkpoint, pair) cells x 100.

    Recipe (the authors' ``change_table_by_checkpoint_for_plot`` then ``.mean()``): one row per
    checkpoint and pair with both scores; the MRC is the plain mean of all rows' ratios. With every
    pair present at every checkpoint this equals the mean over checkpoints of the per-checkpoint
    MRC formula of §6.2. ``NaN`` ratios (base score 0) are skipped.
    """
    ch = paired_changes(df, pairs)
    return float(ch["change_ratio"].mean() * 100.0)


def mrc_summary(
    df: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """MRC (percent) for both §6.2 directions, with the spread over cells.

    Columns: direction, mrc_percent, n_cells, std_percent (sample sd of the cell ratios),
    ci_low / ci_high (percentile bootstrap over cells; a rough check of "different from 0").
    """
    rows = []
    for direction, pairs in cross_task_pairs().items():
        ch = paired_changes(df, pairs)
        r = ch["change_ratio"].dropna().to_numpy() * 100.0
        if len(r) == 0:
            continue
        ci = bootstrap_mean_ci(r, n_resamples=n_resamples, confidence=confidence, seed=seed)
        rows.append({
            "direction": direction, "mrc_percent": float(r.mean()), "n_cells": len(r),
            "std_percent": float(r.std(ddof=1)) if len(r) > 1 else math.nan,
            "ci_low": ci.low, "ci_high": ci.high,
        })
    return pd.DataFrame(rows)


def mrc_by_checkpoint(df: pd.DataFrame) -> pd.DataFrame:
    """Per-checkpoint MRC (percent) for both directions (the §6.2 formula at each checkpoint)."""
    rows = []
    for direction, pairs in cross_task_pairs().items():
        ch = paired_changes(df, pairs)
        for (step, label), part in ch.groupby(["step", "checkpoint"], sort=True):
            rows.append({"direction": direction, "step": int(step), "checkpoint": label,
                         "mrc_percent": float(part["change_ratio"].mean() * 100.0),
                         "n_pairs": len(part)})
    return pd.DataFrame(rows)


def ood_change(
    df: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.90, seed: int = 0
) -> pd.DataFrame:
    """Figure 7: out-of-domain change per fine-tuning task, averaged over checkpoints and sets.

    For each task, the cells are (checkpoint, OOD set) pairs of :func:`ood_pairs`; reported are
    the mean change ratio and mean raw change over all cells (the release pools cells the same
    way; its bars show a 90% bootstrap interval over cells, reproduced as ci_low/ci_high of the
    ratio). ``defective_sets`` lists OOD sets flagged in a ``defect`` column (the release's QQP,
    STS-B, RTE and TweetQA scores are not trustworthy).
    """
    rows = []
    for task, pairs in ood_pairs().items():
        ch = paired_changes(df, pairs)
        if ch.empty:
            continue
        r = ch["change_ratio"].dropna().to_numpy()  # cells with a base score of 0 have none
        ci = bootstrap_mean_ci(r, n_resamples=n_resamples, confidence=confidence, seed=seed) \
            if len(r) else Interval(math.nan, math.nan, math.nan, math.nan, 0, confidence)
        defective: list[str] = []
        if "defect" in ch.columns:
            defective = sorted(ch.loc[ch["defect"].notna(), "eval_set"].unique())
        rows.append({
            "finetune": task, "ood_sets": ",".join(s for s, _ in pairs),
            "mean_change_ratio": float(r.mean()) if len(r) else math.nan,
            "mean_raw_change": float(ch["raw_change"].mean()),
            "n_cells": len(ch), "ci_low": ci.low, "ci_high": ci.high,
            "defective_sets": ",".join(defective),
        })
    return pd.DataFrame(rows, columns=["finetune", "ood_sets", "mean_change_ratio",
                                       "mean_raw_change", "n_cells", "ci_low", "ci_high",
                                       "defective_sets"])


# ============================================================================ formats
def format_sensitivity(df: pd.DataFrame) -> pd.DataFrame:
    """Spread of scores across prompt formats, per (eval_set, variant, checkpoint).

    ``df``: select-ed with ``formats=None`` (all formats). Only cells scored in at least two
    formats are kept. Columns: eval_set, metric, variant, finetune, step, checkpoint, one column
    per format (``default``, ``instruct``, ``io``; NaN if missing), n_formats,
    range (max - min) and std (population sd, ddof=0, over the available formats).
    """
    keys = ["eval_set", "metric", "finetune", "step", "revision", "shots"]
    k = _keyed(df, keys + ["format"])
    wide = k.pivot_table(index=keys, columns="format", values="value", aggfunc="first")
    fmts = [f for f in ("default", "instruct", "io") if f in wide.columns]
    wide = wide[fmts]
    vals = wide.to_numpy(dtype=float)
    n = np.sum(~np.isnan(vals), axis=1)
    wide = wide.assign(
        n_formats=n,
        range=np.nanmax(vals, axis=1) - np.nanmin(vals, axis=1),
        std=np.nanstd(vals, axis=1, ddof=0),
    )
    wide = wide[wide["n_formats"] >= 2].reset_index()
    wide["finetune"] = wide["finetune"].replace("", None)
    wide["revision"] = wide["revision"].replace("", None)
    wide["variant"] = wide["finetune"].fillna("base")
    wide = _with_label(wide)
    for f in ("default", "instruct", "io"):
        if f not in wide.columns:
            wide[f] = np.nan
    cols = ["eval_set", "metric", "variant", "finetune", "step", "checkpoint", "default",
            "instruct", "io", "n_formats", "range", "std"]
    wide["_b"] = wide["variant"] != "base"
    return wide.sort_values(["eval_set", "_b", "variant", "step"])[cols].reset_index(drop=True)


FORMAT_RANGE_COLUMNS = [
    "variant", "eval_sets", "n_cells", "mean_range", "ci_low", "ci_high", "base_range",
    "change", "change_ci_low", "change_ci_high",
]
"""Columns of :func:`format_range_summary`."""


def format_range_summary(
    fs: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Headline of Fig. 5/13: how much the score moves across prompt formats, per variant.

    ``fs``: :func:`format_sensitivity`. A *cell* is one (eval set, checkpoint) of a variant;
    its spread is ``range`` (max - min over formats). Row ``base``: mean range over every base
    cell with a percentile-bootstrap CI over cells. One row per fine-tune: its mean range, and
    ``change`` = its range minus the base model's range on the *same* cells (same eval sets and
    checkpoints), with a paired bootstrap CI over those cells (``base_range`` / ``change`` are
    NaN where the base model has no such cell). Columns: :data:`FORMAT_RANGE_COLUMNS`.
    """
    rows: list[dict[str, Any]] = []
    nan = math.nan
    cell = ["eval_set", "metric", "step", "checkpoint"]
    base = fs.loc[fs["variant"] == "base", [*cell, "range"]]
    for variant in ["base"] + sorted(set(fs["variant"]) - {"base"}):
        part = fs[fs["variant"] == variant]
        if part.empty:
            continue
        ci = bootstrap_mean_ci(part["range"].to_numpy(dtype=float), n_resamples=n_resamples,
                               confidence=confidence, seed=seed)
        row: dict[str, Any] = {
            "variant": variant, "eval_sets": ",".join(sorted(part["eval_set"].unique())),
            "n_cells": len(part), "mean_range": ci.estimate, "ci_low": ci.low,
            "ci_high": ci.high, "base_range": nan, "change": nan, "change_ci_low": nan,
            "change_ci_high": nan,
        }
        same = part[[*cell, "range"]].merge(base, on=cell, suffixes=("", "_base"))
        if variant != "base" and not same.empty:
            diff = bootstrap_diff_ci(same["range_base"].to_numpy(dtype=float),
                                     same["range"].to_numpy(dtype=float), paired=True,
                                     n_resamples=n_resamples, confidence=confidence, seed=seed)
            row.update(base_range=float(same["range_base"].mean()), change=diff.estimate,
                       change_ci_low=diff.low, change_ci_high=diff.high)
        rows.append(row)
    return pd.DataFrame(rows, columns=FORMAT_RANGE_COLUMNS)


# ============================================================================ dichotomy
#: Defaults of the detected-dichotomy rule (see :func:`detect_dichotomy`).
MIN_HEADROOM_GAIN = 0.10
MIN_NOISE_MULTIPLE = 2.0
Z_95 = 1.959963984540054


DICHOTOMY_COLUMNS = [
    "eval_set", "metric", "n_checkpoints", "first", "late_mean", "delta", "headroom_gain",
    "sd_after_first", "noise_multiple", "se_delta", "detected",
]
"""Columns of :func:`detect_dichotomy` (present even when no set has enough checkpoints)."""


def detect_dichotomy(
    df: pd.DataFrame,
    eval_sets: Iterable[str] | None = None,
    *,
    min_headroom_gain: float = MIN_HEADROOM_GAIN,
    min_noise_multiple: float = MIN_NOISE_MULTIPLE,
    z: float = Z_95,
) -> pd.DataFrame:
    """Classify each eval set as learned in pre-training or not, from the base models' scores.

    Rule (documented in ``docs/analysis.md``): order the base checkpoints by step; let
    ``first`` be the score at the earliest checkpoint, ``late`` the mean score over the later half
    of the checkpoints (the last ``ceil(n/2)``), and ``delta = late - first``. A set is
    **pre-training-learned** iff all of

    1. effect size: ``headroom_gain = delta / (1 - first) >= min_headroom_gain`` (the base model
       closes at least 10% of the distance to a perfect score; scores are in [0, 1]; undefined,
       hence not learned, when ``first > 0.99``, e.g. the release's label-less QQP/STS-B);
    2. beyond checkpoint-to-checkpoint noise: ``delta >= min_noise_multiple * sd_after`` where
       ``sd_after`` is the sample sd of the scores at all checkpoints after the first (a set that
       merely wobbles between checkpoints does not count as learned); the reported
       ``noise_multiple = delta / sd_after`` is NaN when ``sd_after`` is 0;
    3. beyond sampling error, where standard errors are known: ``delta > z * se_delta`` with
       ``se_delta = sqrt(se_first^2 + sum(se_late^2) / k^2)`` (the stderr column, e.g. the
       release's bootstrap standard errors, or bootstrap SEs from per-sample files).

    Otherwise the set is **fine-tuning-learned** (not learned by pre-training alone). Needs at
    least 3 checkpoints. ``df``: select-ed base rows (fine-tuned rows are ignored).
    """
    base = df[df["finetune"].isna()]
    if eval_sets is not None:
        base = base[base["eval_set"].isin(list(eval_sets))]
    rows = []
    for (eval_set, metric), part in base.groupby(["eval_set", "metric"], sort=True):
        part = _with_label(part).sort_values(["step"], kind="stable")
        if len(part) < 3:
            continue
        vals = part["value"].to_numpy(dtype=float)
        ses = part["stderr"].to_numpy(dtype=float)
        k = math.ceil(len(vals) / 2)
        first, late = vals[0], vals[-k:]
        delta = float(late.mean() - first)
        headroom = delta / (1.0 - first) if first <= 0.99 else math.nan
        sd_after = float(np.std(vals[1:], ddof=1))
        if np.isnan(ses[0]) or np.isnan(ses[-k:]).any():
            se_delta = math.nan
        else:
            se_delta = float(math.sqrt(ses[0] ** 2 + np.sum(ses[-k:] ** 2) / k**2))
        ok_effect = bool(headroom >= min_headroom_gain)
        ok_noise = bool(delta >= min_noise_multiple * sd_after)
        ok_sampling = bool(math.isnan(se_delta) or delta > z * se_delta)
        learned = ok_effect and ok_noise and ok_sampling
        row: dict[str, Any] = {
            "eval_set": eval_set, "metric": metric, "n_checkpoints": len(vals),
            "first": float(first), "late_mean": float(late.mean()), "delta": delta,
            "headroom_gain": headroom, "sd_after_first": sd_after,
            # no spread after the first checkpoint: the ratio is undefined (NaN), not +inf --
            # which would read as "infinitely beyond noise" even for a negative delta
            "noise_multiple": delta / sd_after if sd_after > 0 else math.nan,
            "se_delta": se_delta,
            "detected": "pre-training" if learned else "fine-tuning",
        }
        if "defect" in part.columns:
            d = part["defect"].dropna()
            row["defect"] = d.iloc[0] if len(d) else None
        rows.append(row)
    return pd.DataFrame(rows, columns=DICHOTOMY_COLUMNS) if not rows else pd.DataFrame(rows)


def compare_dichotomy(detected: pd.DataFrame) -> pd.DataFrame:
    """Join :func:`detect_dichotomy` with the paper's grouping (Table 5 / Figure 4).

    Adds ``paper`` (``pre-training`` / ``fine-tuning`` / ``None`` for sets the paper did not
    group) and ``agrees``.
    """
    paper = {s: "pre-training" for s in PRETRAINING_LEARNED}
    paper.update({s: "fine-tuning" for s in FINETUNING_LEARNED})
    out = detected.copy()
    out["paper"] = out["eval_set"].map(paper)
    out["agrees"] = np.where(out["paper"].isna(), None, out["paper"] == out["detected"])
    return out


def detected_groups(df: pd.DataFrame, detected: pd.DataFrame) -> dict[str, list[Pair]]:
    """The (evaluation set, fine-tune) pairs of each detected group: each set with its ID
    fine-tune, OLMo-Eval sets with TULU; sets with neither are skipped; empty groups left out."""
    groups: dict[str, list[Pair]] = {PRETRAINING_GROUP: [], FINETUNING_GROUP: []}
    available = set(df["finetune"].dropna())
    for row in detected.itertuples(index=False):
        ft = id_finetune(row.eval_set)
        if ft is None and INSTRUCTION_TUNING in available and row.eval_set in (
            *PRETRAINING_LEARNED, *FINETUNING_LEARNED
        ):
            ft = INSTRUCTION_TUNING
        if ft is None:
            continue
        name = PRETRAINING_GROUP if row.detected == "pre-training" else FINETUNING_GROUP
        groups[name].append((row.eval_set, ft))
    return {k: v for k, v in groups.items() if v}


def gain_by_detected_group(df: pd.DataFrame, detected: pd.DataFrame) -> pd.DataFrame:
    """Mean raw change per checkpoint for the detected groups (:func:`detected_groups`)."""
    return group_changes_by_checkpoint(df, detected_groups(df, detected))


# ============================================================================ bootstrap
def _resample_means(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator, chunk: int = 256
) -> np.ndarray:
    """Means of ``n_resamples`` with-replacement resamples of the rows of ``values``.

    ``values`` is 1-D (resample scalars) or 2-D (resample rows jointly: paired statistics).
    """
    n = values.shape[0]
    out = []
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        out.append(values[idx].mean(axis=1))
        done += b
    return np.concatenate(out, axis=0)


def _interval(est: float, boots: np.ndarray, confidence: float, n: int) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return Interval(float(est), float(lo), float(hi), float(np.std(boots, ddof=1)), n, confidence)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """Percentile-bootstrap CI of the mean of ``values`` (NaNs are an error)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("bootstrap_mean_ci needs a non-empty 1-D sample")
    if np.isnan(x).any():
        raise ValueError("bootstrap_mean_ci: sample contains NaN")
    rng = np.random.default_rng(seed)
    boots = _resample_means(x, n_resamples, rng)
    return _interval(float(x.mean()), boots, confidence, len(x))


def bootstrap_diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    paired: bool = False,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """Percentile-bootstrap CI of ``mean(b) - mean(a)``.

    ``paired``: ``a[i]`` and ``b[i]`` are scores of the same item (same doc_id); items are
    resampled jointly, which removes the between-item variance from the difference. Unpaired:
    ``a`` and ``b`` are resampled independently.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xa) == 0 or len(xb) == 0:
        raise ValueError("bootstrap_diff_ci needs non-empty samples")
    rng = np.random.default_rng(seed)
    est = float(xb.mean() - xa.mean())
    if paired:
        if len(xa) != len(xb):
            raise ValueError("paired bootstrap needs samples of equal length")
        boots = _resample_means(xb - xa, n_resamples, rng)
        return _interval(est, boots, confidence, len(xa))
    boots = _resample_means(xb, n_resamples, rng) - _resample_means(xa, n_resamples, rng)
    return _interval(est, boots, confidence, min(len(xa), len(xb)))


def align_by_doc_id(
    a: Mapping[Any, float], b: Mapping[Any, float]
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Common doc_ids (sorted by their string form) and the two aligned score arrays."""
    ids = sorted(set(a) & set(b), key=str)
    return ids, np.array([a[i] for i in ids], float), np.array([b[i] for i in ids], float)


def bootstrap_diff_from_samples(
    a: Mapping[Any, float],
    b: Mapping[Any, float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """CI of ``mean(b) - mean(a)`` from per-sample scores keyed by doc_id.

    Paired when both score the same doc_ids (the usual case: one eval set, two models);
    otherwise an unpaired bootstrap over each side's own items.
    """
    if set(a) == set(b):
        _, xa, xb = align_by_doc_id(a, b)
        return bootstrap_diff_ci(xa, xb, paired=True, n_resamples=n_resamples,
                                 confidence=confidence, seed=seed)
    return bootstrap_diff_ci(list(a.values()), list(b.values()), paired=False,
                             n_resamples=n_resamples, confidence=confidence, seed=seed)


def read_lm_eval_samples(
    path: str | os.PathLike[str], metric: str, *, filter_name: str | None = None
) -> dict[Any, float]:
    """Per-sample scores ``{doc_id: score}`` from an lm-eval ``samples_*.jsonl`` file.

    Each line is a JSON object with ``doc_id`` and the metric as a key (``acc``, ``rougeL``, ...).
    ``filter_name`` keeps only lines whose ``filter`` equals it (lm-eval writes one line per
    filter); a doc_id seen twice otherwise is an error.
    """
    out: dict[Any, float] = {}
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if filter_name is not None and obj.get("filter") != filter_name:
                continue
            if "doc_id" not in obj or metric not in obj:
                raise ValueError(f"{path}:{lineno}: needs 'doc_id' and {metric!r}")
            doc_id = obj["doc_id"]
            if doc_id in out:
                raise ValueError(f"{path}:{lineno}: doc_id {doc_id!r} seen twice "
                                 "(pass filter_name=)")
            val = obj[metric]
            if isinstance(val, list):
                val = val[0]
            out[doc_id] = float(val)
    return out
