"""Write the study report: tables (CSV + Markdown), one PNG per reproduced figure, and the
page itself as ``report.md`` and ``report.html``.

:func:`build_report` takes a ``DataFrame`` of result records (our runs, or the paper's release via
:func:`paper_report`) and writes everything under ``out_dir`` atomically (temp file +
``os.replace``). The page opens with a summary of the headline numbers (Table 5 by group, MRC,
out-of-domain change, format sensitivity, each with its CI and a link to its section), then the
sections (:mod:`amuro_study.report_doc` writes both formats from the same content; the figures
are drawn by :mod:`amuro_study.plots`). Where a row has ``samples_path`` (lm-eval per-sample
``.jsonl``), its 95% percentile-bootstrap CI is added to the performance table and drawn as a
band, and the base-vs-fine-tuned gain gets a paired bootstrap CI.

Studies with several shot sets (``eval.fewshot_seeds``, ``eval.shot_sampling``) or with 0-shot
and k-shot scores also get a shot-sensitivity section (:mod:`amuro_study.shot_analysis`); the
paper's analyses then use one shot set (:func:`~amuro_study.shot_analysis.primary_shot_set`).
Wherever per-sample files of classification sets exist, the label-collapse section says which
models give one label to nearly every document, marked on the performance figure too.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amuro_study import analysis as an
from amuro_study import plots
from amuro_study import shot_analysis as sa
from amuro_study.records import atomic_write_text
from amuro_study.report_doc import (
    Card,
    Document,
    Section,
    anchor,
    fmt,
    link,
    md_table,
    md_text,
)
from amuro_tasks.suite import INSTRUCT_SUITE

_METRIC_OF_SAMPLES = {"rougeL": "rougeL", "acc": "acc"}

# Section titles (their anchors are the links of the summary and the contents).
PERFORMANCE = "Figure 2: performance over pre-training"
GAIN_CI = "In-domain gain with 95% CI"
TABLE5 = "Table 5 and Figure 4: gain from fine-tuning by group"
DICHOTOMY = "Dichotomy detected from the base models"
MRC = "Cross-task change: MRC (section 6.2)"
OOD = "Figure 7: out-of-domain change"
FORMATS = "Figure 5: prompt formats"
SHOTS = "Shot sensitivity: shot sets and shot counts"
COLLAPSE = "Label collapse"
TABLES = "All tables"


# ============================================================================ writing helpers
@dataclass
class _Tables:
    """Writes ``tables/<name>.csv`` (full precision) and ``.md``; remembers them for the index."""

    out: Path
    written: list[tuple[str, str]] = field(default_factory=list)

    def write(self, name: str, frame: pd.DataFrame, what: str, digits: int = 3) -> str:
        """Write both files; return the Markdown table."""
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        atomic_write_text(self.out / "tables" / f"{name}.csv", buf.getvalue())
        md = md_table(frame, digits)
        atomic_write_text(self.out / "tables" / f"{name}.md", md)
        self.written.append((name, what))
        return md

    @staticmethod
    def ref(name: str) -> str:
        """A link to one table's CSV (and its Markdown copy)."""
        return (f"{link(name + '.csv', f'tables/{name}.csv')} "
                f"({link('Markdown', f'tables/{name}.md')})")


def _figure(name: str, alt: str) -> str:
    return f"![{md_text(alt)}](plots/{plots.FIGURE_FILES[name]})"


def _ci_cell(est: object, low: object, high: object, digits: int = 3, *,
             signed: bool = True, unit: str = "", n: object = None) -> str:
    """``+0.123 [+0.050, +0.200]``; the estimate alone when there is no interval, or when it
    rests on fewer than 2 cells (``n``; a bootstrap of one value is no interval)."""
    e = fmt(est, digits, signed=signed)
    if not e:
        return "n/a"
    if n is not None and int(n) < 2:
        return e + unit
    lo, hi = fmt(low, digits, signed=signed), fmt(high, digits, signed=signed)
    return f"{e}{unit} [{lo}, {hi}]" if lo and hi else e + unit


# ============================================================================ CIs from samples
def _with_cis(frame: pd.DataFrame, intervals: list[an.Interval | None]) -> pd.DataFrame:
    """``frame`` with ``ci_low`` / ``ci_high`` from ``intervals`` (NaN where ``None``)."""
    frame["ci_low"] = [math.nan if ci is None else ci.low for ci in intervals]
    frame["ci_high"] = [math.nan if ci is None else ci.high for ci in intervals]
    return frame


def _samples(path: Any, metric: str) -> dict[Any, float] | None:
    """Per-document scores of an lm-eval samples file, or ``None`` if there is none (read
    once per file version: the CIs of single scores and of gains read a base file many times)."""
    if not path or not os.path.isfile(str(path)):
        return None
    st = os.stat(str(path))
    return _read_samples(str(path), _METRIC_OF_SAMPLES.get(metric, metric),
                         (st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _read_samples(path: str, metric: str, _version: tuple[int, int, int]) -> dict[Any, float]:
    return an.read_lm_eval_samples(path, metric)


def add_sample_cis(df: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Copy of ``df`` with ``ci_low`` / ``ci_high`` (95% bootstrap of the per-sample mean) for
    rows whose ``samples_path`` exists; NaN elsewhere."""
    intervals = []
    for path, metric in zip(df["samples_path"], df["metric"], strict=True):
        scores = _samples(path, metric)
        intervals.append(None if scores is None else an.bootstrap_mean_ci(
            list(scores.values()), n_resamples=n_resamples, seed=seed))
    return _with_cis(df.copy(), intervals)


def gain_cis(df: pd.DataFrame, *, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Gain of each fine-tune on its in-domain sets per checkpoint, with a paired bootstrap CI
    where both the base and the fine-tuned row have per-sample files."""
    pairs = [(s, t.name) for t in an.FINETUNE_TASKS.values() for s in t.id_sets]
    pairs += [(s, an.INSTRUCTION_TUNING) for s in INSTRUCT_SUITE]  # TULU's "in-domain" suite
    ch = an.paired_changes(df, pairs)
    if ch.empty:
        return ch
    # each change's base and fine-tuned samples files, joined on the whole cell
    keys = [c for c in an._CELL if c in ch.columns]
    files = an._keyed(df, [*keys, "finetune"])[[*keys, "finetune", "samples_path"]]
    base = files[files["finetune"] == ""].drop(columns="finetune")
    joined = (an._keyed(ch, keys)[[*keys, "finetune"]]
              .merge(base, on=keys, how="left")
              .merge(files, on=[*keys, "finetune"], how="left", suffixes=("_base", "_tuned")))
    intervals = []
    for row in joined.itertuples(index=False):
        b = _samples(row.samples_path_base, row.metric)
        t = _samples(row.samples_path_tuned, row.metric)
        intervals.append(None if b is None or t is None else an.bootstrap_diff_from_samples(
            b, t, n_resamples=n_resamples, seed=seed))
    return _with_cis(ch, intervals)

# ============================================================================ the report
def build_report(
    df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    title: str = "amuro study report",
    shots: int | None = 4,
    learning_rates: Mapping[str, float] | None = None,
    release_quirks: bool = False,
    notes: str = "",
) -> Path:
    """Write tables, figures, ``report.md`` and ``report.html`` under ``out_dir``; return
    report.md.

    ``shots`` / ``learning_rates`` select the runs (:func:`amuro_study.analysis.select`).
    ``release_quirks`` computes the paper-grouping table exactly as the release did (SciQ counted
    twice); the corrected table (once) is always written too. ``notes``: Markdown put under the
    title. Sections a study cannot have (no fine-tune, fewer than 3 checkpoints, one prompt
    format, ...) are left out and the summary says which and why.
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    r = _Report(df, out, shots, learning_rates, release_quirks)
    doc = Document(title, lead=r.lead(notes))
    for step in (r.performance, r.gain_ci, r.table5, r.dichotomy, r.mrc, r.ood, r.formats,
                 r.shot_sensitivity, r.label_collapse):
        step(doc)
    if not doc.cards:  # e.g. a base-only study: its headline is the base models' scores
        r.base_card(doc)
    doc.sections.append(Section(TABLES, r.table_index()))
    figures = [f for f in plots.FIGURE_FILES.values() if f in r.figures]
    doc.image_widths = {f"plots/{f}": plots.display_width(out / "plots" / f) for f in figures}
    r.remove_stale()
    report = atomic_write_text(out / "report.md", doc.markdown())
    atomic_write_text(out / "report.html", doc.html())
    return report


class _Report:
    """The analyses of one study, each adding its section (and summary card) to a document."""

    def __init__(self, df: pd.DataFrame, out: Path, shots: int | None,
                 learning_rates: Mapping[str, float] | None, release_quirks: bool) -> None:
        df = sa.fill_default_shot_set(df)  # records from before the shot set was recorded
        self.df, self.out, self.shots, self.release_quirks = df, out, shots, release_quirks
        self.learning_rates = learning_rates
        self.tables = _Tables(out)
        self.shot_set = sa.primary_shot_set(df)
        one_set = sa.only_primary_shot_set(df)  # the paper's analyses: one shot set
        self.d = an.select(one_set, shots=shots, formats=("default",),
                           learning_rates=learning_rates)
        self.d_all = an.select(one_set, shots=shots, formats=None, learning_rates=learning_rates)
        self.collapse = sa.label_collapse(df)
        self.order = an.checkpoints(self.d)["checkpoint"].tolist()
        self.dichotomy_table = an.compare_dichotomy(an.detect_dichotomy(self.d))
        self.axis = plots.StepAxis.from_checkpoints(an.checkpoints(self.d_all))
        self.has_samples = bool(self.d["samples_path"].notna().any())
        self.figures: set[str] = set()

    def _fig_path(self, key: str) -> Path:
        """Where figure ``key`` of :data:`amuro_study.plots.FIGURE_FILES` goes (and remember
        that it was drawn)."""
        self.figures.add(plots.FIGURE_FILES[key])
        return self.out / "plots" / plots.FIGURE_FILES[key]

    def remove_stale(self) -> None:
        """Delete figures and tables an earlier report left in this folder that this one did
        not write (a study that lost a section must not keep showing its old files)."""
        tables = {n for n, _ in self.tables.written}
        for path in (self.out / "plots").glob("*.png"):
            if path.name not in self.figures:
                path.unlink()
        for path in [*(self.out / "tables").glob("*.csv"), *(self.out / "tables").glob("*.md")]:
            if path.stem not in tables:
                path.unlink()

    # ------------------------------------------------------------------ lead
    def lead(self, notes: str) -> str:
        """What was run and analysed, in a few bullet points (plus ``notes``)."""
        d = self.d
        tunes = sorted(d["finetune"].dropna().unique())
        sets = sorted(d["eval_set"].unique())
        models = ", ".join(f"`{m}`" for m in sorted(d["model"].dropna().unique())) or "?"
        set_text = (", ".join(f"`{s}`" for s in sets) if len(sets) <= 8
                    else f"{len(sets)} ({', '.join(f'`{s}`' for s in sets[:6])}, ...)")
        items = [
            f"**Model** {models}; **checkpoints** {', '.join(self.order) or 'none'}; "
            f"**fine-tunes** {', '.join(f'`{t}`' for t in tunes) or 'none (base models only)'}"
            f"; **evaluation sets** {set_text or 'none'}.",
            f"**Analysed** {len(d)} of {len(self.df)} records: "
            + (f"{self.shots}-shot" if self.shots is not None else "any shot count")
            + ", default prompt format" + (", one learning rate per fine-tune" if tunes else "")
            + ("; the format comparison uses every format." if len(self.d_all) > len(d) else ".")
            + (" CIs of single scores and in-domain gains: bootstrap over the per-sample files."
               if self.has_samples else ""),
        ]
        sets = sa.shot_sets(self.df)
        if len(sets) > 1:
            seed, mode = self.shot_set
            modes = {m: [str(x) for x, mm in sets if mm == m] for _, m in sets}
            listed = "; ".join(f"{m.replace('_', ' ')} shots, seeds {', '.join(v)}"
                               for m, v in modes.items())
            items.append(
                f"**Shot sets** {len(sets)} ({listed}): the analyses above the shot section "
                f"use {_shot_set_name(seed, mode)}; "
                f"{link(SHOTS, '#' + anchor(SHOTS))} compares them all.")
        if "defect" in self.df.columns and self.df["defect"].notna().any():
            bad = sorted(self.df.loc[self.df["defect"].notna(), "eval_set"].unique())
            items.append(
                "**Known-defective evaluation sets** (kept, marked with \\*; do not trust): "
                + ", ".join(f"`{s}` ({md_text(self._defect(s))})" for s in bad) + ".")
        text = (notes.strip() + "\n\n" if notes.strip() else "")
        return text + "\n".join(f"- {i}" for i in items) + "\n"

    def _defect(self, eval_set: str) -> str:
        return str(self.df.loc[self.df["eval_set"] == eval_set, "defect"].dropna().iloc[0])

    # ------------------------------------------------------------------ sections
    def performance(self, doc: Document) -> None:
        """Fig. 2/3/8-12: the performance grid and the tidy performance table."""
        d = self.d
        d_ci = (add_sample_cis(d) if self.has_samples
                else d.assign(ci_low=np.nan, ci_high=np.nan))
        if not self.collapse.empty:
            flagged = set(self.collapse.loc[self.collapse["collapsed"], "samples_path"])
            d_ci = d_ci.assign(collapsed=d_ci["samples_path"].isin(flagged))
        perf = an.performance_table(d_ci)
        self.tables.write("performance", perf.drop(columns=["revision"]),
                          "score per eval set, variant and checkpoint (Fig. 2/3/9)", digits=4)
        if perf.empty:
            doc.missing.append("any score (no record matches the selection)")
            return
        bands = plots.figure_performance(perf, self.axis, self._fig_path("performance"))
        body = (
            ("Score of the base model (dashed) and of every fine-tuned model (solid) on each "
               if d["finetune"].notna().any() else "Score of the base model on each ")
            + "evaluation set, over the pre-training checkpoints (paper Fig. 2, 3 and 8-12). "
            f"{bands}" + (" Panel titles marked \\* are known-defective sets."
                          if "defect" in perf.columns and perf["defect"].notna().any() else "")
            + (f" Red crosses: label collapse (one label for ≥ {sa.COLLAPSE_SHARE:.0%} of the "
               f"documents; {link(COLLAPSE, '#' + anchor(COLLAPSE))})."
               if "collapsed" in perf.columns and perf["collapsed"].any() else "")
            + "\n\n"
            f"{_figure('performance', 'performance per evaluation set over pre-training')}\n\n"
            f"Data: {self.tables.ref('performance')}"
            + (" (95% bootstrap CI in ci_low / ci_high)." if self.has_samples else ".")
        )
        doc.sections.append(Section(PERFORMANCE, body))

    def gain_ci(self, doc: Document) -> None:
        """In-domain gain per checkpoint with a paired bootstrap CI (needs per-sample files)."""
        if not self.has_samples:
            return
        g = gain_cis(self.d)
        if g.empty:
            return
        cols = ["eval_set", "finetune", "checkpoint", "base", "tuned", "raw_change", "ci_low",
                "ci_high"]
        md = self.tables.write("gain_ci", g[cols], "in-domain gain with paired bootstrap CI",
                               digits=4)
        doc.sections.append(Section(GAIN_CI, (
            "Perf(fine-tuned) − Perf(base) on each fine-tune's in-domain sets, with a paired "
            "bootstrap 95% CI over the documents (both models scored the same documents).\n\n"
            + md + f"\nData: {self.tables.ref('gain_ci')}.")))

    def table5(self, doc: Document) -> None:
        """Table 5 / Fig. 4 (paper grouping; corrected and, for the release, as released)."""
        d = self.d
        variants = [(True, "table5_release", "as released (SciQ counted twice)"),
                    (False, "table5", "corrected (each set once)")]
        if not self.release_quirks:
            variants = variants[1:]
        parts: list[str] = []
        card_rows: list[tuple[bool, dict[str, str]]] = []
        summaries: dict[bool, pd.DataFrame] = {}
        for quirks, name, label in variants:
            t5 = an.table5(d, release_quirks=quirks)
            md = self.tables.write(name, t5.reset_index(),
                                   f"Table 5: mean gain per checkpoint and group, {label}")
            parts.append(f"Paper grouping, {label}:\n\n{md}")
            summaries[quirks] = an.group_change_summary(d, an.table5_groups(quirks))
            summary = summaries[quirks].set_index("group")
            for group in t5.columns if not t5.empty else []:
                if quirks is False and group == an.FINETUNING_GROUP and self.release_quirks:
                    continue  # identical in both tables
                row: dict[str, str] = {"group": md_text(group)}
                if self.release_quirks and group == an.PRETRAINING_GROUP:
                    row["group"] += " (SciQ twice, as released)" if quirks else " (SciQ once)"
                row.update({ck: fmt(t5.loc[ck, group], 3, signed=True) for ck in t5.index})
                s = summary.loc[group]
                row["all checkpoints, 95% CI"] = _ci_cell(
                    s["mean_raw_change"], s["ci_low"], s["ci_high"], n=s["n_cells"])
                card_rows.append((group != an.PRETRAINING_GROUP, row))
        card_rows.sort(key=lambda r: r[0])  # the pre-training group's rows first (stable)
        det = self.dichotomy_table
        found = an.detected_groups(d, det) if not det.empty else {}
        by_step = an.group_changes_by_checkpoint(d, found) if found else pd.DataFrame()
        if card_rows and found:  # the grouping detected from this study's own base models
            for _, row in card_rows:
                row["group"] += ", paper grouping"
            summary = an.group_change_summary(d, found).set_index("group")
            for group in (an.PRETRAINING_GROUP, an.FINETUNING_GROUP):
                if group not in found:
                    continue
                row = {"group": f"{md_text(group)}, detected ("
                       + ", ".join(f"`{s}`" for s, _ in found[group]) + ")"}
                cells = by_step[by_step["group"] == group].set_index("checkpoint")
                row.update({ck: fmt(cells["mean_raw_change"].get(ck), 3, signed=True)
                            for ck in t5.index})
                s = summary.loc[group]
                row["all checkpoints, 95% CI"] = _ci_cell(
                    s["mean_raw_change"], s["ci_low"], s["ci_high"], n=s["n_cells"])
                card_rows.append((True, row))
        if not card_rows:
            doc.missing.append("Table 5 / Fig. 4 (needs fine-tuned scores on the paper's "
                               "grouped sets: an in-domain set of a fine-tune, or TULU's suite)")
            return
        groups = an.group_changes_by_checkpoint(d, an.table5_groups(self.release_quirks))
        self.tables.write("group_gain", groups, "Fig. 4: per group and checkpoint, mean, sd, n, "
                          "slope", digits=4)
        self.tables.write("table5_summary", summaries[self.release_quirks],
                          "Table 5 pooled over checkpoints, bootstrap CI over cells", digits=4)
        panels = [("Paper grouping", groups)]
        dg = by_step
        if not dg.empty:
            self.tables.write("group_gain_detected", dg,
                              "Fig. 4 with the detected grouping", digits=4)
            panels.append(("Detected grouping (from the base models)", dg))
        plots.figure_gain_by_group(panels, self.order,
                                   self._fig_path("gain_by_group"))
        doc.cards.append(Card(
            "Gain from fine-tuning by group (Table 5)",
            "Perf(fine-tuned) − Perf(base), mean over each group's (evaluation set, "
            "fine-tune) pairs per checkpoint, in the paper's grouping"
            + (" and in the grouping detected from this study's base models" if found else "")
            + "; last column: all checkpoints pooled, 95% bootstrap CI over the cells.\n\n"
            + md_table(pd.DataFrame([r for _, r in card_rows]), markdown_cells=True),
            TABLE5, wide=True))
        doc.sections.append(Section(TABLE5, (
            "Mean raw change Perf(fine-tuned) − Perf(base) per checkpoint over the pairs of "
            "each group (paper Appendix G, Table 5, and Fig. 4; pairs listed in "
            "docs/analysis.md).\n\n" + "\n".join(parts)
            + f"\n{_figure('gain_by_group', 'gain from fine-tuning by group')}\n\n"
            "Bars: mean over the group's pairs, whiskers ± 1 sd over the pairs"
            + (" (right: the grouping detected from the base models, each set once)."
               if len(panels) > 1 else ".")
            + f"\n\nData: {self.tables.ref('group_gain')}, "
            f"{self.tables.ref('table5_summary')}.")))

    def dichotomy(self, doc: Document) -> None:
        """§4: which sets the base models learn during pre-training, detected from the data."""
        det = self.dichotomy_table
        self.tables.write("dichotomy", det, "detected pre-training vs fine-tuning dichotomy")
        if det.empty:
            doc.missing.append("the detected dichotomy (needs at least 3 checkpoints)")
            return
        show = [c for c in ("eval_set", "metric", "first", "late_mean", "headroom_gain",
                            "noise_multiple", "detected", "paper", "agrees", "defect")
                if c in det.columns]
        doc.sections.append(Section(DICHOTOMY, (
            f"Pre-training-learned iff headroom gain ≥ {an.MIN_HEADROOM_GAIN}, delta ≥ "
            f"{an.MIN_NOISE_MULTIPLE} × sd over the later checkpoints, and delta > 1.96 × SE "
            "where known (docs/analysis.md); `paper` is the paper's grouping; "
            "`noise_multiple` = delta / sd, blank where the later checkpoints do not vary.\n\n"
            + md_table(det[show]) + f"\nAll columns: {self.tables.ref('dichotomy')}.")))

    def mrc(self, doc: Document) -> None:
        """§6.2: mean ratio of change across task kinds."""
        mrc = an.mrc_summary(self.d)
        if mrc.empty:
            doc.missing.append("MRC (needs a classification fine-tune scored on a generation "
                               "training set, or the reverse)")
            return
        md = self.tables.write("mrc", mrc, "§6.2 MRC per direction, percent", digits=2)
        by_ck = an.mrc_by_checkpoint(self.d)
        self.tables.write("mrc_by_checkpoint", by_ck, "§6.2 MRC per checkpoint", digits=2)
        wide = by_ck.pivot(index="direction", columns="checkpoint", values="mrc_percent")
        wide = wide[[c for c in self.order if c in wide.columns]].reset_index()
        card = pd.DataFrame({
            "direction": [md_text(x) for x in mrc["direction"]],
            "MRC, 95% CI": [_ci_cell(m, lo, hi, 2, unit="%", n=n) for m, lo, hi, n in zip(
                mrc["mrc_percent"], mrc["ci_low"], mrc["ci_high"], mrc["n_cells"], strict=True)],
            "cells": [str(n) for n in mrc["n_cells"]],
        })
        doc.cards.append(Card(
            "Cross-task change (MRC, section 6.2)",
            "Mean % change of a model fine-tuned on one kind of task, scored on the other "
            "kind's task; 95% CI over (checkpoint, pair) cells.\n\n"
            + md_table(card, markdown_cells=True), MRC))
        doc.sections.append(Section(MRC, (
            "Mean of (Perf(fine-tuned) − Perf(base)) / Perf(base) × 100 over the (checkpoint, "
            "pair) cells of each direction (paper §6.2).\n\n" + md
            + "\nPer checkpoint (percent):\n\n" + md_table(wide, 2)
            + f"\nData: {self.tables.ref('mrc')}, {self.tables.ref('mrc_by_checkpoint')}.")))

    def ood(self, doc: Document) -> None:
        """Fig. 7: out-of-domain change ratio per fine-tuning task."""
        ood = an.ood_change(self.d)
        if ood.empty:
            doc.missing.append("out-of-domain change (needs a fine-tune scored on its "
                               "out-of-domain sets)")
            return
        md = self.tables.write("ood_change", ood, "Fig. 7: OOD change per fine-tuning task")
        plots.figure_ood(ood, self._fig_path("ood"))
        star = [" \\*" if d else "" for d in ood["defective_sets"]]
        card = pd.DataFrame({
            "fine-tune": [f"`{t}`{s}" for t, s in zip(ood["finetune"], star, strict=True)],
            "OOD sets": [md_text(x.replace(",", ", ")) for x in ood["ood_sets"]],
            "change ratio, 90% CI": [_ci_cell(m, lo, hi, 2, n=n) for m, lo, hi, n in zip(
                ood["mean_change_ratio"], ood["ci_low"], ood["ci_high"], ood["n_cells"],
                strict=True)],
            "cells": [str(n) for n in ood["n_cells"]],
        })
        note = (" \\* = includes a known-defective set." if any(star) else "")
        doc.cards.append(Card(
            "Out-of-domain change (Figure 7)",
            "Mean change ratio (fine-tuned vs base) on each fine-tune's out-of-domain sets; "
            f"90% CI over (checkpoint, set) cells, as in the paper.{note}\n\n"
            + md_table(card, markdown_cells=True), OOD))
        doc.sections.append(Section(OOD, (
            "Change ratio on each fine-tuning task's out-of-domain sets (paper Table 1), pooled "
            "over (checkpoint, set) cells; the bars show a 90% bootstrap interval over the "
            "cells (paper Fig. 7). n/a: every base score was 0, so no ratio.\n\n" + md
            + f"\n{_figure('ood', 'out-of-domain change ratio per fine-tuning task')}\n\n"
            f"Data: {self.tables.ref('ood_change')}.")))

    def formats(self, doc: Document) -> None:
        """Fig. 5/13: how much the score moves across prompt formats."""
        fs = an.format_sensitivity(self.d_all)
        if fs.empty:
            doc.missing.append("format sensitivity (needs an evaluation set scored in at least "
                               "two prompt formats)")
            return
        self.tables.write("format_sensitivity", fs, "Fig. 5/13: score per format", digits=4)
        per_ck = (fs.groupby(["variant", "step", "checkpoint"], as_index=False)
                  .agg(mean_range=("range", "mean"), mean_std=("std", "mean"),
                       n_sets=("eval_set", "nunique")))
        self.tables.write("format_sensitivity_summary", per_ck,
                          "format spread per variant and checkpoint", digits=4)
        rng = an.format_range_summary(fs)
        md = self.tables.write("format_range", rng, "format range per variant, with CIs",
                               digits=4)
        plots.figure_formats(fs, self.axis, self._fig_path("formats"))
        card = pd.DataFrame({
            "model": ["base" if v == "base" else f"`{v}`" for v in rng["variant"]],
            "range, 95% CI": [_ci_cell(m, lo, hi, signed=False, n=n) for m, lo, hi, n in zip(
                rng["mean_range"], rng["ci_low"], rng["ci_high"], rng["n_cells"], strict=True)],
            "minus base, 95% CI": [
                "" if v == "base" else _ci_cell(c, lo, hi, n=n) for v, c, lo, hi, n in zip(
                    rng["variant"], rng["change"], rng["change_ci_low"], rng["change_ci_high"],
                    rng["n_cells"], strict=True)],
            "cells": [str(n) for n in rng["n_cells"]],
        })
        doc.cards.append(Card(
            "Format sensitivity (Figure 5)",
            "Range (max − min) of the score across prompt formats, mean over (evaluation set, "
            "checkpoint) cells; fine-tunes also minus base on the same cells. 95% CIs over "
            "cells.\n\n" + md_table(card, markdown_cells=True), FORMATS))
        doc.sections.append(Section(FORMATS, (
            "Score in each prompt format (default, instruct, io; paper Table 3) per checkpoint, "
            "for the base model and the in-domain fine-tune (paper Fig. 5 and 13).\n\n"
            f"{_figure('formats', 'score per prompt format over pre-training')}\n\n"
            "Spread across formats (range = max − min):\n\n" + md
            + f"\nData: {self.tables.ref('format_sensitivity')}, "
            f"{self.tables.ref('format_sensitivity_summary')}, "
            f"{self.tables.ref('format_range')}.")))

    def shot_sensitivity(self, doc: Document) -> None:
        """Shot sets (range, sd, format x shot-set decomposition) and 0 vs k shots."""
        if not sa.has_shot_axes(self.df):
            return
        d = sa.select_shot_sets(self.df, learning_rates=self.learning_rates)
        ss = sa.shot_sensitivity(d)
        dec = sa.shot_format_decomposition(d)
        zk = sa.zero_vs_few_shot(d)
        if ss.empty and zk.empty:
            doc.missing.append("shot sensitivity (needs a cell scored with two shot sets, or "
                               "0-shot and k-shot)")
            return
        parts: list[str] = []
        card_rows: list[dict[str, str]] = []
        if not ss.empty:
            self.tables.write("shot_sensitivity", ss, "score per cell across shot sets: range "
                              "and sd", digits=4)
            summary = sa.shot_range_summary(ss, dec)
            md = self.tables.write("shot_summary", summary, "shot-set range per variant, with "
                                   "CIs, and the variance decomposition on the grids",
                                   digits=4)
            parts.append(
                "**Shot sets.** Each k-shot score was computed with several shot sets (seeds "
                "of the shot pool; fixed shots: one set for every document, per document: a "
                "seeded draw for each). Range = max − min and sd (population) of a score across "
                "its shot sets, per (evaluation set, prompt format, checkpoint) cell; mean over "
                "the cells of each variant with a 95% bootstrap CI over cells. On the cells "
                "scored in every format with every shot set, the variance of the scores over "
                "the format × shot-set grid is split into a format part, a shot-set part and "
                "their interaction (shares of the total; formula in docs/analysis.md), and "
                "format_range / shot_range give the two ranges on the same grids.\n\n" + md)
            if not dec.empty:  # one row per grid: in the CSV, not on the page
                self.tables.write("shot_format_decomposition", dec, "variance of each cell's "
                                  "score over the format x shot-set grid, by part", digits=5)
            for row in summary.itertuples(index=False):
                card_rows.append({
                    "model": _variant_cell(row.variant), "shots": _shots_cell(
                        row.shots, row.shot_sampling, name_fixed=True),
                    "shot-set range, 95% CI": _ci_cell(row.mean_range, row.ci_low,
                                                       row.ci_high, signed=False,
                                                       n=row.n_cells),
                    "format range": fmt(row.format_range),
                    "variance: shot sets / formats": (
                        f"{fmt(row.shot_share, 2)} / {fmt(row.format_share, 2)}"
                        if row.n_grids else ""),
                    "cells": str(row.n_cells)})
        if not zk.empty:
            self.tables.write("zero_vs_few_shot", zk, "k-shot minus 0-shot per cell and shot "
                              "count", digits=4)
            zs = sa.zero_shot_summary(zk)
            md = self.tables.write("zero_shot_summary", zs, "k-shot minus 0-shot per variant, "
                                   "with CIs", digits=4)
            parts.append(
                "**0-shot vs k-shot.** difference = k-shot score (mean over its shot sets) − "
                "0-shot score, per (evaluation set, format, checkpoint) cell; mean over the "
                "cells of each variant with a 95% bootstrap CI over cells; share_worse: the "
                "share of cells where the shots lower the score.\n\n" + md)
            for row in zs.itertuples(index=False):
                match = [r for r in card_rows
                         if r["model"] == _variant_cell(row.variant)
                         and r["shots"] == _shots_cell(row.shots, row.shot_sampling,
                                                       name_fixed=True)]
                cell = _ci_cell(row.mean_difference, row.ci_low, row.ci_high, n=row.n_cells)
                if match:
                    match[0]["k-shot − 0-shot, 95% CI"] = cell
                else:
                    card_rows.append({"model": _variant_cell(row.variant),
                                      "shots": _shots_cell(row.shots, row.shot_sampling,
                                                           name_fixed=True),
                                      "k-shot − 0-shot, 95% CI": cell,
                                      "cells": str(row.n_cells)})
        plots.figure_shot_sets(d, self.axis, self._fig_path("shots"))
        card = pd.DataFrame(card_rows).fillna("")
        doc.cards.append(Card(
            "Shot sensitivity",
            "How much the score moves with the in-context examples: range across shot sets "
            "(mean over (set, format, checkpoint) cells), the range across prompt formats on "
            "the same grids, the shares of the score's variance due to each, and k-shot minus "
            "0-shot. 95% CIs over cells.\n\n" + md_table(card, markdown_cells=True), SHOTS,
            wide=True))
        files = [self.tables.ref(n) for n in ("shot_sensitivity", "shot_summary",
                                              "shot_format_decomposition", "zero_vs_few_shot",
                                              "zero_shot_summary")
                 if n in {w for w, _ in self.tables.written}]
        doc.sections.append(Section(SHOTS, (
            "\n\n".join(parts)
            + f"\n\n{_figure('shots', 'score per shot set and shot count over pre-training')}"
            "\n\nDots: one shot set; line: their mean; bar: their range (min to max); "
            "dotted: 0-shot. One prompt format per panel (default where scored).\n\n"
            f"Data: {', '.join(files)}.")))

    def label_collapse(self, doc: Document) -> None:
        """Which models give one label to nearly every document (from the per-sample files)."""
        lc = self.collapse
        if lc.empty:
            return
        self.tables.write("label_collapse", lc, "majority prediction per per-sample file of "
                          "a classification set", digits=4)
        flagged = lc[lc["collapsed"]]
        show = ["eval_set", "variant", "checkpoint", "format", "shots", "fewshot_seed",
                "n_docs", "majority_label", "majority_share", "gold_majority_share",
                "accuracy"]
        rule = (f"collapsed: at least {sa.COLLAPSE_MIN_DOCS} documents scored and one label "
                f"predicted for at least {sa.COLLAPSE_SHARE:.0%} of them")
        if flagged.empty:
            body = (f"No model collapsed onto one label ({rule}). Largest majority shares:\n\n"
                    + md_table(lc.nlargest(min(8, len(lc)), "majority_share")[show], 3))
        else:
            rows = flagged.sort_values("majority_share", ascending=False)
            body = (f"{len(flagged)} of {len(lc)} scored classification runs collapsed "
                    f"({rule}); they are marked on the performance figure.\n\n"
                    + md_table(rows[show], 3))
            card = pd.DataFrame({
                "model": [_variant_cell(v) for v in rows["variant"]],
                "checkpoint": [md_text(c) for c in rows["checkpoint"]],
                "set, format, shots": [
                    f"{md_text(e)}, {md_text(f)}, {_shots_cell(k, m, s)}" for e, f, k, m, s in
                    zip(rows["eval_set"], rows["format"], rows["shots"],
                        rows["shot_sampling"], rows["fewshot_seed"], strict=True)],
                "one label": [f"{md_text(lab)} ({fmt(x, 2)})" for lab, x in
                              zip(rows["majority_label"], rows["majority_share"], strict=True)],
                "gold share": [fmt(x, 2) for x in rows["gold_majority_share"]],
            }).head(8)
            more = len(rows) - len(card)
            doc.cards.append(Card(
                "Label collapse",
                f"Models that give one label to nearly every document ({rule}); their scores "
                "measure that label's frequency, not the task. Share of documents given that "
                "label; gold share: the most frequent gold label's share.\n\n"
                + md_table(card, markdown_cells=True)
                + (f"\n...and {more} more (see the section).\n" if more > 0 else ""),
                COLLAPSE, wide=True))
        doc.sections.append(Section(COLLAPSE, (
            "For every per-sample file of a classification set (every document offers the same "
            "labels), the label each document is given (the choice with the highest "
            "log-likelihood, lm-eval's acc prediction) and majority_share, the share of "
            "documents given the most frequent one; gold_majority_share is the same for the "
            "gold labels (a model that always answers the majority gold label scores exactly "
            "that). " + body
            + f"\nAll runs: {self.tables.ref('label_collapse')}.")))

    def base_card(self, doc: Document) -> None:
        """The base model at the first and the last checkpoint, per evaluation set."""
        base = an.performance_table(self.d[self.d["finetune"].isna()])
        if base.empty or not self.order:
            return
        det = self.dichotomy_table
        detected = dict(zip(det["eval_set"], det["detected"], strict=True)) if len(det) else {}
        rows = []
        for eval_set, part in base.groupby("eval_set", sort=True):
            first, last = part.iloc[0], part.iloc[-1]
            rows.append({
                "evaluation set": md_text(eval_set), "metric": md_text(first["metric"]),
                "first checkpoint": f"{fmt(first['value'])} ({md_text(first['checkpoint'])})",
                "last checkpoint": f"{fmt(last['value'])} ({md_text(last['checkpoint'])})",
                "learned in": detected.get(eval_set, "n/a (< 3 checkpoints)"),
            })
        doc.cards.append(Card(
            "Base model over pre-training (Figure 2)",
            "Score of the base model at its first and last checkpoint; *learned in*: the "
            "dichotomy detected from these scores (pre-training or fine-tuning).\n\n"
            + md_table(pd.DataFrame(rows), markdown_cells=True), PERFORMANCE,
            wide=True))

    def table_index(self) -> str:
        """The list of every table written (CSV, full precision; Markdown copy)."""
        return ("Every table as CSV (full precision) with a Markdown copy:\n\n"
                + "\n".join(f"- {self.tables.ref(n)}: {md_text(what)}"
                             for n, what in self.tables.written) + "\n")


def _shot_set_name(seed: object, mode: object) -> str:
    """``shot set 1234`` / ``shot set 7 (per document)``."""
    return f"shot set {seed}" + (" (per document)" if mode == "per_document" else "")


def _variant_cell(variant: str) -> str:
    return "base" if variant == "base" else f"`{variant}`"


def _shots_cell(shots: object, mode: object, seed: object = None, *,
                name_fixed: bool = False) -> str:
    """``4``, ``4 fixed`` (``name_fixed``), ``4 per document``, ``4 (set 7)``."""
    if shots is None or shots is pd.NA:
        return "?"
    text = str(int(shots))
    if mode == "per_document" or (name_fixed and isinstance(mode, str)):
        text += " " + mode.replace("_", " ")
    if seed is not None and seed is not pd.NA and not (isinstance(seed, float)
                                                       and math.isnan(seed)):
        text += f" (set {int(seed)})"
    return text


def paper_report(
    out_dir: str | os.PathLike[str], results_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Ingest the paper's released CSVs and build the same report (with the release's quirks
    reproduced in ``table5_release`` and corrected in ``table5``). Returns report.md."""
    from amuro_study.paper_results import PAPER_LEARNING_RATES, load_paper_frame

    df = load_paper_frame(results_dir)
    notes = ("Numbers are the authors' released per-run results (shared/paper/results), ingested "
             "by amuro_study.paper_results; 4-shot runs with the paper's learning rates.")
    return build_report(df, out_dir, title="Amuro & Char: the paper's released results",
                        shots=4, learning_rates=PAPER_LEARNING_RATES, release_quirks=True,
                        notes=notes)
