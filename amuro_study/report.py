"""Write the study report: tables (CSV + Markdown), PNG plots and ``report.md`` / ``report.html``.

:func:`build_report` takes a ``DataFrame`` of result records (our runs, or the paper's release via
:func:`paper_report`) and writes everything under ``out_dir`` atomically (temp file +
``os.replace``). Where a row has ``samples_path`` (lm-eval per-sample ``.jsonl``), its 95%
percentile-bootstrap CI is added to the performance table and drawn as error bars, and the
base-vs-fine-tuned gain gets a paired bootstrap CI.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from amuro_study import analysis as an  # noqa: E402
from amuro_study.records import atomic_write_bytes, atomic_write_text  # noqa: E402
from amuro_tasks.suite import INSTRUCT_SUITE  # noqa: E402

OOD_LABELS = {"mnli": "NLI", "paws": "Paraphrase", "xsum": "Summary", "socialiqa": "Question gen."}
_METRIC_OF_SAMPLES = {"rougeL": "rougeL", "acc": "acc"}


# ============================================================================ writing helpers
def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        return f"{v:.{digits}f}"
    if v is pd.NA:
        return ""
    return str(v)


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); floats to ``digits`` decimals."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _write_table(out: Path, name: str, frame: pd.DataFrame, digits: int = 3) -> str:
    """Write ``name.csv`` (full precision) and ``name.md``; return the Markdown text."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    atomic_write_text(out / "tables" / f"{name}.csv", buf.getvalue())
    md = to_markdown(frame, digits)
    atomic_write_text(out / "tables" / f"{name}.md", md)
    return md


def _save_fig(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ============================================================================ CIs from samples
def _with_cis(frame: pd.DataFrame, intervals: list[an.Interval | None]) -> pd.DataFrame:
    """``frame`` with ``ci_low`` / ``ci_high`` from ``intervals`` (NaN where ``None``)."""
    frame["ci_low"] = [math.nan if ci is None else ci.low for ci in intervals]
    frame["ci_high"] = [math.nan if ci is None else ci.high for ci in intervals]
    return frame


def _samples(path: Any, metric: str) -> dict[Any, float] | None:
    """Per-document scores of an lm-eval samples file, or ``None`` if there is none."""
    if not path or not os.path.isfile(str(path)):
        return None
    return an.read_lm_eval_samples(str(path), _METRIC_OF_SAMPLES.get(metric, metric))


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


# ============================================================================ plots
def _x_positions(labels: list[str]) -> dict[str, int]:
    return {lab: i for i, lab in enumerate(labels)}


def plot_performance(perf: pd.DataFrame, eval_set: str, order: list[str], path: Path) -> None:
    """Base vs fine-tuned (in-domain task, or every fine-tune present) over checkpoints."""
    part = perf[(perf["eval_set"] == eval_set) & (perf["format"] == "default")]
    ft = an.id_finetune(eval_set)
    variants = ["base"] + ([ft] if ft and ft in set(part["variant"]) else
                           sorted(set(part["variant"]) - {"base"}))
    xpos = _x_positions(order)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for v in variants:
        d = part[part["variant"] == v]
        if d.empty:
            continue
        x = [xpos[c] for c in d["checkpoint"]]
        ax.plot(x, d["value"], marker="o", linestyle="--" if v == "base" else "-",
                label="BASE" if v == "base" else f"fine-tuned: {v}")
        if "ci_low" in d.columns and d["ci_low"].notna().any():
            ax.fill_between(x, d["ci_low"], d["ci_high"], alpha=0.25)
        elif d["stderr"].notna().any():
            ax.fill_between(x, d["value"] - d["stderr"], d["value"] + d["stderr"], alpha=0.25)
    ax.set_xticks(range(len(order)), order, rotation=30)
    ax.set_ylabel(str(part["metric"].iloc[0]) if len(part) else "")
    title = eval_set
    if "defect" in part.columns and part["defect"].notna().any():
        title += " (defective in release)"
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save_fig(fig, path)


def plot_group_gain(groups: pd.DataFrame, order: list[str], path: Path, title: str) -> None:
    """Figure 4: mean raw change per checkpoint per group (bars, +- 1 sd over pairs)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(dict.fromkeys(groups["group"]))
    width = 0.8 / max(len(names), 1)
    xpos = _x_positions(order)
    for i, g in enumerate(names):
        d = groups[groups["group"] == g]
        x = np.array([xpos[c] for c in d["checkpoint"]]) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, d["mean_raw_change"], width, yerr=d["std_raw_change"].fillna(0), label=g,
               capsize=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(order)), order, rotation=30)
    ax.set_ylabel("Perf(fine-tuned) - Perf(BASE)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save_fig(fig, path)


def plot_ood(ood: pd.DataFrame, path: Path) -> None:
    """Figure 7: mean OOD change ratio per fine-tuning task (90% bootstrap interval)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = [OOD_LABELS.get(t, t) + ("*" if d else "")
              for t, d in zip(ood["finetune"], ood["defective_sets"], strict=True)]
    y = ood["mean_change_ratio"].to_numpy()
    err = np.vstack([y - ood["ci_low"].to_numpy(), ood["ci_high"].to_numpy() - y])
    ax.bar(range(len(y)), y, yerr=err, capsize=4, color="tab:green")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(y)), labels)
    ax.set_ylabel("mean OOD change ratio")
    ax.set_title("Out-of-domain change (* = includes a defective set)")
    _save_fig(fig, path)


def plot_formats(fs: pd.DataFrame, eval_set: str, order: list[str], path: Path) -> None:
    """Figure 5/13: scores per prompt format, base (dashed) vs in-domain fine-tune (solid)."""
    part = fs[fs["eval_set"] == eval_set]
    ft = an.id_finetune(eval_set)
    xpos = _x_positions(order)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = {"default": "tab:blue", "instruct": "tab:orange", "io": "tab:green"}
    for variant in ["base", ft]:
        d = part[part["variant"] == variant]
        if d.empty:
            continue
        x = [xpos[c] for c in d["checkpoint"]]
        for f, color in colors.items():
            if d[f].notna().any():
                ax.plot(x, d[f], marker="o", color=color,
                        linestyle="--" if variant == "base" else "-",
                        label=f"{'BASE' if variant == 'base' else variant} / {f}")
    ax.set_xticks(range(len(order)), order, rotation=30)
    ax.set_title(f"{eval_set}: prompt formats")
    ax.legend(fontsize=7)
    _save_fig(fig, path)


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
    """Write tables, plots, ``report.md`` and ``report.html`` under ``out_dir``; return report.md.

    ``shots`` / ``learning_rates`` select the runs (:func:`amuro_study.analysis.select`).
    ``release_quirks`` computes the paper-grouping table exactly as the release did (SciQ counted
    twice); the corrected table (once) is always written too.
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    d = an.select(df, shots=shots, formats=("default",), learning_rates=learning_rates)
    d_all = an.select(df, shots=shots, formats=None, learning_rates=learning_rates)
    order = an.checkpoints(d)["checkpoint"].tolist()
    has_samples = d["samples_path"].notna().any()
    d_ci = add_sample_cis(d) if has_samples else d.assign(ci_low=np.nan, ci_high=np.nan)

    sections: list[str] = [f"# {title}\n", notes + "\n" if notes else ""]
    sections.append(
        f"Runs: {len(df)} records; analysed (shots={shots}, default format): {len(d)}. "
        f"Checkpoints: {', '.join(order)}.\n"
    )
    if "defect" in df.columns and df["defect"].notna().any():
        bad = sorted(df.loc[df["defect"].notna(), "eval_set"].unique())
        sections.append(
            "**Known-defective evaluation sets** (kept, marked; do not trust): "
            + ", ".join(f"`{s}` ({df.loc[df['eval_set'] == s, 'defect'].dropna().iloc[0]})"
                        for s in bad) + ".\n"
        )

    # performance vs step
    perf = an.performance_table(d_ci)
    perf_cols = [c for c in perf.columns if c not in ("revision",)]
    _write_table(out, "performance", perf[perf_cols], digits=4)
    sections.append("## Performance vs pre-training step (Fig. 2/3/9)\n")
    sections.append("Full table: [tables/performance.csv](tables/performance.csv)"
                    + (" (95% bootstrap CIs from per-sample files in ci_low/ci_high)."
                       if has_samples else ".") + "\n")
    for eval_set in sorted(perf["eval_set"].unique()):
        png = f"plots/perf_{_slug(eval_set)}.png"
        plot_performance(perf, eval_set, order, out / png)
        sections.append(f"![{eval_set}]({png})\n")

    # gains with CIs where samples exist
    if has_samples:
        g = gain_cis(d)
        if not g.empty:
            cols = ["eval_set", "finetune", "checkpoint", "base", "tuned", "raw_change",
                    "ci_low", "ci_high"]
            md = _write_table(out, "gain_ci", g[cols], digits=4)
            sections.append("## In-domain gain with paired bootstrap 95% CI\n\n" + md)

    # Table 5 / Fig 4
    sections.append("## Gain by group per checkpoint (Table 5 / Fig. 4)\n")
    for quirks, name, label in ((True, "table5_release", "as released (SciQ counted twice)"),
                                (False, "table5", "corrected (each set once)")):
        if quirks and not release_quirks:
            continue
        t5 = an.table5(d, release_quirks=quirks).reset_index()
        md = _write_table(out, name, t5)
        sections.append(f"Paper grouping, {label}:\n\n{md}")
    groups = an.group_changes_by_checkpoint(d, an.table5_groups(release_quirks))
    _write_table(out, "group_gain", groups, digits=4)
    if not groups.empty:
        plot_group_gain(groups, order, out / "plots/gain_by_group.png", "Paper grouping")
        sections.append("![gain by group](plots/gain_by_group.png)\n")

    # detected dichotomy
    det = an.compare_dichotomy(an.detect_dichotomy(d))
    md = _write_table(out, "dichotomy", det)
    sections.append(
        "## Dichotomy detected from the base models\n\n"
        f"Pre-training-learned iff headroom gain >= {an.MIN_HEADROOM_GAIN}, delta >= "
        f"{an.MIN_NOISE_MULTIPLE} x sd over later checkpoints, and delta > 1.96 x SE where known "
        "(see docs/analysis.md).\n\n" + md
    )
    dg = an.gain_by_detected_group(d, det)
    if not dg.empty:
        _write_table(out, "group_gain_detected", dg, digits=4)
        plot_group_gain(dg, order, out / "plots/gain_by_detected_group.png", "Detected grouping")
        sections.append("![gain by detected group](plots/gain_by_detected_group.png)\n")

    # MRC
    mrc = an.mrc_summary(d)
    if not mrc.empty:
        md = _write_table(out, "mrc", mrc, digits=2)
        _write_table(out, "mrc_by_checkpoint", an.mrc_by_checkpoint(d), digits=2)
        sections.append("## Cross-task mean ratio of change (MRC, §6.2), percent\n\n" + md)

    # OOD
    ood = an.ood_change(d)
    if not ood.empty:
        md = _write_table(out, "ood_change", ood)
        plot_ood(ood, out / "plots/ood_change_ratio.png")
        sections.append("## Out-of-domain change ratio (Fig. 7)\n\n" + md
                        + "\n![OOD change](plots/ood_change_ratio.png)\n")

    # formats
    fs = an.format_sensitivity(d_all)
    if not fs.empty:
        _write_table(out, "format_sensitivity", fs, digits=4)
        summary = (fs.groupby(["variant", "step", "checkpoint"], as_index=False)
                   .agg(mean_range=("range", "mean"), mean_std=("std", "mean"),
                        n_sets=("eval_set", "nunique")))
        md = _write_table(out, "format_sensitivity_summary", summary, digits=4)
        sections.append("## Format sensitivity (Fig. 5/13)\n\nMean over eval sets of the "
                        "max-min range and sd across formats:\n\n" + md)
        for eval_set in sorted(fs["eval_set"].unique()):
            png = f"plots/formats_{_slug(eval_set)}.png"
            plot_formats(fs, eval_set, order, out / png)
            sections.append(f"![{eval_set} formats]({png})\n")

    text = "\n".join(s for s in sections if s)
    report = atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", _markdown_to_html(text, title))
    return report


def _markdown_to_html(md: str, title: str) -> str:
    """A minimal renderer for the Markdown this module writes (headings, tables, images)."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if not table:
            return
        rows = [r.strip().strip("|").split(" | ") for r in table if not r.startswith("|---")]
        head, *rest = rows
        body.append("<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
                    + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>"
                                                         for c in r) + "</tr>" for r in rest)
                    + "</table>")
        table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            body.append(f'<p><img src="{html.escape(src.rstrip(")"))}" alt="{html.escape(alt)}"'
                        ' style="max-width:720px"></p>')
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


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
