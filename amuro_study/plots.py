"""The report's figures: one PNG per figure of the paper it reproduces (matplotlib, Agg).

* :func:`figure_performance` (Fig. 2/3/8-12): a grid, one panel per evaluation set, the base
  model and every fine-tune scored on it over the pre-training checkpoints, with 95% CI bands.
* :func:`figure_gain_by_group` (Fig. 4): mean gain from fine-tuning per checkpoint and group.
* :func:`figure_formats` (Fig. 5/13): a grid, one panel per evaluation set, one line per
  (variant, prompt format).
* :func:`figure_ood` (Fig. 7): mean out-of-domain change ratio per fine-tuning task.
* :func:`figure_shot_sets` (amuro's, beside Fig. 5; only for studies with several shot sets or
  0-shot and k-shot scores): one panel per evaluation set, each shot set's score, their mean
  and range, and the 0-shot score, over the pre-training checkpoints.

Points of a model that gives one label to nearly every document (label collapse,
:mod:`amuro_study.shot_analysis`) are marked with a red cross on the performance figure.

Every figure uses the same colour for the same variant (:func:`variant_colors`: fixed for the
paper's fine-tuning tasks, so ``mnli`` is the same blue in every study) and the same step axis
(:class:`StepAxis`): true to scale when the checkpoints are spread out enough to tell apart,
otherwise evenly spaced and labelled "not to scale".
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from amuro_study import analysis as an  # noqa: E402
from amuro_study.records import atomic_write_bytes  # noqa: E402

#: The figures' file names (under ``plots/``): one per reproduced paper figure, and amuro's own.
FIGURE_FILES = {
    "performance": "figure2_performance.png",
    "gain_by_group": "figure4_gain_by_group.png",
    "formats": "figure5_formats.png",
    "ood": "figure7_ood.png",
    "shots": "shot_sensitivity.png",  # not a paper figure: shot sets and counts (issue 14)
}
COLLAPSE_COLOR = "#d62728"
SAMPLING_STYLES = {"fixed": "-", "per_document": "-."}
BASE_COLOR = "#3a3a3a"
#: Fig. 4's colours in the paper: mandarin orange (pre-training group), sage green (fine-tuning).
GROUP_COLORS = {an.PRETRAINING_GROUP: "#e8833a", an.FINETUNING_GROUP: "#8fae7e"}
_PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:olive", "tab:cyan"]
#: Variants with a fixed colour in every study, in palette order.
KNOWN_VARIANTS = [*an.FINETUNE_TASKS, an.INSTRUCTION_TUNING]
_MARKERS = ["s", "D", "^", "v", "P", "X", "<", ">", "h"]
FORMAT_STYLES = {"default": ("-", "o"), "instruct": ("--", "s"), "io": (":", "^")}
OOD_LABELS = {"mnli": "NLI", "paws": "Paraphrase", "xsum": "Summary", "socialiqa": "Question gen."}
DPI = 150
_PANEL = (3.1, 2.3)  # inches per grid panel
_MIN_GAP = 0.04  # smallest step gap (fraction of the span) for a true-to-scale axis


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """Colour of each variant: ``base`` dark grey, the paper's tasks fixed, others after them."""
    colors = {"base": BASE_COLOR}
    colors.update({v: _PALETTE[i] for i, v in enumerate(KNOWN_VARIANTS)})
    extra = sorted(set(variants) - set(colors))
    free = _PALETTE[len(KNOWN_VARIANTS):] or _PALETTE
    colors.update({v: free[i % len(free)] for i, v in enumerate(extra)})
    return colors


def variant_markers(variants: Iterable[str]) -> dict[str, str]:
    """Marker of each variant (base: a dot; fine-tunes: distinct hollow shapes, so that lines
    lying on top of each other stay visible)."""
    markers = {"base": "o"}
    markers.update({v: _MARKERS[i] for i, v in enumerate(KNOWN_VARIANTS)})
    extra = sorted(set(variants) - set(markers))
    free = _MARKERS[len(KNOWN_VARIANTS):] or _MARKERS
    markers.update({v: free[i % len(free)] for i, v in enumerate(extra)})
    return markers


def _short_step(step: float) -> str:
    step = int(step)
    if step >= 1000 and step % 1000 == 0:
        return f"{step // 1000}k"
    return f"{step:,}"


@dataclass(frozen=True)
class StepAxis:
    """Where each checkpoint goes on the x axis, and how the axis is labelled.

    ``to_scale``: positions are the steps themselves; otherwise the checkpoints are evenly
    spaced (their order only) and the label says so.
    """

    position: dict[str, float]
    labels: list[str]
    ticks: list[float]
    to_scale: bool

    @classmethod
    def from_checkpoints(cls, ck: pd.DataFrame) -> StepAxis:
        """``ck``: :func:`amuro_study.analysis.checkpoints` (step order)."""
        labels = list(ck["checkpoint"])
        steps = pd.to_numeric(ck["step"], errors="coerce").to_numpy(dtype=float)
        to_scale = False
        if len(steps) >= 2 and not np.isnan(steps).any():
            gaps = np.diff(steps)
            span = steps[-1] - steps[0]
            to_scale = bool(span > 0 and (gaps > 0).all() and gaps.min() >= _MIN_GAP * span)
        if to_scale:
            pos = dict(zip(labels, steps.tolist(), strict=True))
            names = ["main" if lab == "main" else _short_step(s)
                     for lab, s in zip(labels, steps, strict=True)]
        else:
            pos = {lab: float(i) for i, lab in enumerate(labels)}
            names = [lab if lab == "main" or not lab.isdigit() else _short_step(float(lab))
                     for lab in labels]
        return cls(pos, names, [pos[lab] for lab in labels], to_scale)

    @property
    def title(self) -> str:
        """The axis label."""
        if self.to_scale:
            return "pre-training step (to scale)"
        return "pre-training checkpoint (step; evenly spaced, not to scale)"

    def apply(self, ax: plt.Axes, *, rotate: bool = False) -> None:
        """Ticks and tick labels on ``ax``."""
        ax.set_xticks(self.ticks, self.labels, rotation=40 if rotate else 0,
                      ha="right" if rotate else "center")
        if len(self.ticks) == 1:
            ax.set_xlim(self.ticks[0] - 1, self.ticks[0] + 1)


def _save(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def display_width(path: Path) -> int:
    """CSS pixels at which a figure shows its fonts at their point size (PNG width at
    :data:`DPI` -> 96 px per inch); read from the PNG header (IHDR width)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    return round(int.from_bytes(head[16:20], "big") * 96 / DPI)


def _grid(n: int, ncols: int = 3) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(_PANEL[0] * ncols, _PANEL[1] * nrows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _style_panel(ax: plt.Axes) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _set_order(eval_sets: Iterable[str]) -> list[str]:
    """Panels ordered by fine-tuning task (its in-domain sets first), then the rest by name."""
    sets = set(eval_sets)
    ordered = [s for t in an.FINETUNE_TASKS.values() for s in t.id_sets if s in sets]
    return ordered + sorted(sets - set(ordered))


def figure_performance(perf: pd.DataFrame, axis: StepAxis, path: Path) -> str:
    """Fig. 2/3/8-12: one panel per eval set (default format), base (dashed) and every fine-tune
    (solid) with a 95% CI band. Returns a sentence saying where the bands come from."""
    part = perf[perf["format"] == "default"]
    sets = _set_order(part["eval_set"].unique())
    colors = variant_colors(part["variant"].unique())
    markers = variant_markers(part["variant"].unique())
    fig, axes = _grid(len(sets), ncols=3)
    band_sources: set[str] = set()
    collapsed = False
    for ax, eval_set in zip(axes.flat, sets, strict=False):
        d_set = part[part["eval_set"] == eval_set]
        variants = ["base"] + sorted(set(d_set["variant"]) - {"base"})
        for v in variants:
            d = d_set[d_set["variant"] == v]
            if d.empty:
                continue
            x = [axis.position[c] for c in d["checkpoint"]]
            y = d["value"].to_numpy(dtype=float)
            lo, hi = _band(d, band_sources)
            ax.plot(x, y, linewidth=1.4, color=colors[v], zorder=3 if v == "base" else 2,
                    **_line_style(v, markers))
            if lo is not None and len(x) == 1:  # a band needs two points: an error bar
                ax.errorbar(x, y, yerr=[y - lo, hi - y], color=colors[v], capsize=3,
                            linewidth=1, linestyle="none")
            elif lo is not None:
                ax.fill_between(x, lo, hi, color=colors[v], alpha=0.18, linewidth=0)
            if "collapsed" in d.columns and d["collapsed"].fillna(False).astype(bool).any():
                hit = d["collapsed"].fillna(False).astype(bool).to_numpy()
                ax.scatter(np.asarray(x)[hit], y[hit], marker="x", s=46, linewidths=1.8,
                           color=COLLAPSE_COLOR, zorder=5)
                collapsed = True
        title = eval_set + (" *" if "defect" in d_set.columns and d_set["defect"].notna().any()
                            else "")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(str(d_set["metric"].iloc[0]), fontsize=8)
        axis.apply(ax, rotate=not axis.to_scale and len(axis.ticks) > 5)
        _style_panel(ax)
    fig.supxlabel(axis.title, fontsize=9)
    handles = [Line2D([], [], color=colors["base"], label="base (not fine-tuned)",
                      **_line_style("base", markers))]
    handles += [Line2D([], [], color=colors[v], label=f"fine-tuned: {v}",
                       **_line_style(v, markers))
                for v in sorted(set(part["variant"]) - {"base"})]
    if band_sources:
        handles.append(Patch(color="0.6", alpha=0.4, label="95% CI"))
    if collapsed:
        handles.append(Line2D([], [], color=COLLAPSE_COLOR, marker="x", linestyle="none",
                              markersize=7, markeredgewidth=1.8,
                              label="label collapse (one label for ≥ 95% of documents)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4),
               fontsize=8, frameon=False)
    _save(fig, path)
    if not band_sources:
        return "No confidence bands: these results have neither per-sample files nor stderr."
    sources = {"samples": "percentile bootstrap over the per-sample scores (lm-eval samples "
                          "files)", "stderr": "value ± 1.96 × stderr (normal approximation)"}
    return "Bands: 95% CI, " + "; elsewhere ".join(sources[s] for s in sorted(band_sources)) + "."


def _line_style(variant: str, markers: dict[str, str]) -> dict[str, object]:
    if variant == "base":
        return {"linestyle": "--", "marker": "o", "markersize": 3.5}
    return {"linestyle": "-", "marker": markers[variant], "markersize": 5,
            "markerfacecolor": "white", "markeredgewidth": 1.2}


def _band(d: pd.DataFrame, sources: set[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """CI band of one line: bootstrap CI columns if present, else +-1.96 stderr, else none."""
    if "ci_low" in d.columns and d["ci_low"].notna().all():
        sources.add("samples")
        return d["ci_low"].to_numpy(dtype=float), d["ci_high"].to_numpy(dtype=float)
    se = d["stderr"].to_numpy(dtype=float)
    if not np.isnan(se).all():
        sources.add("stderr")
        y = d["value"].to_numpy(dtype=float)
        return y - an.Z_95 * se, y + an.Z_95 * se
    return None, None


def figure_gain_by_group(panels: Sequence[tuple[str, pd.DataFrame]], order: list[str],
                         path: Path) -> None:
    """Fig. 4: mean raw change per checkpoint, one bar per group (+- 1 sd over the pairs);
    one panel per grouping (e.g. the paper's, the detected one)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.2), squeeze=False,
                             layout="constrained")
    for ax, (title, groups) in zip(axes.flat, panels, strict=True):
        names = [g for g in GROUP_COLORS if g in set(groups["group"])]
        names += sorted(set(groups["group"]) - set(names))
        width = 0.8 / max(len(names), 1)
        xpos = {c: i for i, c in enumerate(order)}
        for i, g in enumerate(names):
            d = groups[groups["group"] == g]
            x = np.array([xpos[c] for c in d["checkpoint"]]) + (i - (len(names) - 1) / 2) * width
            ax.bar(x, d["mean_raw_change"], width, yerr=d["std_raw_change"].fillna(0),
                   label=g, capsize=2, color=GROUP_COLORS.get(g, "0.6"),
                   error_kw={"linewidth": 0.8})
        ax.axhline(0, color="black", linewidth=0.8)
        labels = [c if c == "main" or not c.isdigit() else _short_step(float(c)) for c in order]
        ax.set_xticks(range(len(order)), labels, rotation=40 if len(order) > 5 else 0,
                      ha="right" if len(order) > 5 else "center")
        ax.set_xlabel("pre-training checkpoint (categorical)", fontsize=8)
        ax.set_ylabel("Perf(fine-tuned) − Perf(base)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        _style_panel(ax)
    _save(fig, path)


def figure_formats(fs: pd.DataFrame, axis: StepAxis, path: Path) -> None:
    """Fig. 5/13: one panel per eval set; colour = variant (base and the in-domain fine-tune,
    or every fine-tune if the set has none), line style and marker = prompt format."""
    sets = _set_order(fs["eval_set"].unique())
    colors = variant_colors(fs["variant"].unique())
    fig, axes = _grid(len(sets), ncols=3)
    shown: set[str] = set()
    for ax, eval_set in zip(axes.flat, sets, strict=False):
        part = fs[fs["eval_set"] == eval_set]
        ft = an.id_finetune(eval_set)
        present = set(part["variant"])
        variants = ["base"] + ([ft] if ft in present else sorted(present - {"base"}))
        for v in variants:
            d = part[part["variant"] == v]
            if d.empty:
                continue
            shown.add(v)
            x = [axis.position[c] for c in d["checkpoint"]]
            for f, (style, marker) in FORMAT_STYLES.items():
                if d[f].notna().any():
                    ax.plot(x, d[f], color=colors[v], linestyle=style, marker=marker,
                            markersize=3, linewidth=1.2)
        ax.set_title(eval_set, fontsize=9)
        ax.set_ylabel(str(part["metric"].iloc[0]), fontsize=8)
        axis.apply(ax, rotate=not axis.to_scale and len(axis.ticks) > 5)
        _style_panel(ax)
    fig.supxlabel(axis.title, fontsize=9)
    handles = [Line2D([], [], color=colors[v], linewidth=3,
                      label="base" if v == "base" else f"fine-tuned: {v}")
               for v in ["base", *sorted(shown - {"base"})] if v in shown]
    handles += [Line2D([], [], color="0.3", linestyle=s, marker=m, markersize=3,
                       label=f"format: {f}") for f, (s, m) in FORMAT_STYLES.items()]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4),
               fontsize=8, frameon=False)
    _save(fig, path)


def figure_ood(ood: pd.DataFrame, path: Path) -> None:
    """Fig. 7: mean OOD change ratio per fine-tuning task, with its 90% bootstrap interval over
    (checkpoint, OOD set) cells; ``*`` and hatching mark tasks whose OOD sets include a
    defective one."""
    ood = ood[ood["mean_change_ratio"].notna()]
    colors = variant_colors(ood["finetune"])
    fig, ax = plt.subplots(figsize=(max(3.2, 1.3 * len(ood) + 1.5), 3.0), layout="constrained")
    y = ood["mean_change_ratio"].to_numpy(dtype=float)
    err = np.vstack([y - ood["ci_low"].to_numpy(dtype=float),
                     ood["ci_high"].to_numpy(dtype=float) - y])
    defective = [bool(d) for d in ood["defective_sets"]]
    ax.bar(range(len(y)), y, yerr=err, capsize=4, width=0.6,
           color=[colors[t] for t in ood["finetune"]],
           hatch=["//" if d else "" for d in defective], edgecolor="white",
           error_kw={"linewidth": 0.9})
    ax.axhline(0, color="black", linewidth=0.8)
    labels = [f"{OOD_LABELS.get(t, t)}\n({t}){' *' if d else ''}"
              for t, d in zip(ood["finetune"], defective, strict=True)]
    ax.set_xticks(range(len(y)), labels, fontsize=8)
    ax.set_xlabel("fine-tuning task", fontsize=8)
    ax.set_ylabel("mean OOD change ratio", fontsize=8)
    if any(defective):
        ax.set_title("* includes a defective OOD set", fontsize=8)
    _style_panel(ax)
    _save(fig, path)


def figure_shot_sets(d: pd.DataFrame, axis: StepAxis, path: Path) -> None:
    """Shot sensitivity: one panel per evaluation set (one prompt format: ``default`` where
    scored); colour = variant; per k-shot count and sampling (solid: fixed, dash-dot: per
    document) a dot per shot set, a line through their mean and a bar over their range; the
    0-shot score dotted.

    ``d``: :func:`amuro_study.shot_analysis.select_shot_sets` (one row per run and shot set).
    """
    from amuro_tasks.shots import DEFAULT_SHOT_MODE

    d = d.copy()
    d["variant"] = d["finetune"].fillna("base")
    d["shot_sampling"] = d["shot_sampling"].fillna(DEFAULT_SHOT_MODE)
    d = an._with_label(d)
    d = d[d["checkpoint"].isin(list(axis.position))]
    sets = _set_order(d["eval_set"].unique())
    colors = variant_colors(d["variant"].unique())
    fig, axes = _grid(len(sets), ncols=3)
    shown: set[tuple[int, str]] = set()
    zero = False
    # each (variant, sampling) a little apart, so that their dots and bars do not overlap
    series = sorted(set(zip(d.loc[d["shots"] > 0, "variant"],
                            d.loc[d["shots"] > 0, "shot_sampling"], strict=True)),
                    key=lambda p: (p[0] != "base", p))
    span = (max(axis.ticks) - min(axis.ticks)) or 1.0
    step = min(0.025, 0.1 / max(len(series), 1)) * span
    shift = {p: (i - (len(series) - 1) / 2) * step for i, p in enumerate(series)}
    for ax, eval_set in zip(axes.flat, sets, strict=False):
        part = d[d["eval_set"] == eval_set]
        formats = list(part["format"].unique())
        fmt = "default" if "default" in formats else sorted(formats)[0]
        part = part[part["format"] == fmt]
        for v in ["base", *sorted(set(part["variant"]) - {"base"})]:
            pv = part[part["variant"] == v]
            for (shots, mode), g in pv.groupby([pv["shots"].astype(int), "shot_sampling"]):
                stats = g.groupby("checkpoint")["value"].agg(["mean", "min", "max"])
                stats = stats.loc[[c for c in axis.position if c in stats.index]]
                x = np.array([axis.position[c] for c in stats.index])
                if shots == 0:
                    zero = True
                    ax.plot(x, stats["mean"], color=colors[v], linestyle=":", marker="x",
                            markersize=4, linewidth=1.2)
                    continue
                shown.add((int(shots), str(mode)))
                dx = shift.get((v, mode), 0.0)
                ax.plot(x + dx, stats["mean"], color=colors[v], linewidth=1.4, marker="_",
                        markersize=9, markeredgewidth=1.6,
                        linestyle=SAMPLING_STYLES.get(mode, "-"))
                ax.vlines(x + dx, stats["min"], stats["max"], color=colors[v], linewidth=2.2,
                          alpha=0.35)
                ax.scatter([axis.position[c] + dx for c in g["checkpoint"]], g["value"], s=9,
                           color=colors[v], zorder=3)
        ax.set_title(f"{eval_set} ({fmt})", fontsize=9)
        ax.set_ylabel(str(part["metric"].iloc[0]) if len(part) else "", fontsize=8)
        axis.apply(ax, rotate=not axis.to_scale and len(axis.ticks) > 5)
        _style_panel(ax)
    fig.supxlabel(axis.title, fontsize=9)
    variants = ["base", *sorted(set(d["variant"]) - {"base"})]
    handles = [Line2D([], [], color=colors[v], linewidth=3,
                      label="base" if v == "base" else f"fine-tuned: {v}")
               for v in variants if v in set(d["variant"])]
    handles += [Line2D([], [], color="0.3", linestyle=SAMPLING_STYLES.get(m, "-"), marker="_",
                       markersize=9, label=f"{k}-shot, {m.replace('_', ' ')} shots: shot sets "
                       "(dots), mean (line), range (bar)") for k, m in sorted(shown)]
    if zero:
        handles.append(Line2D([], [], color="0.3", linestyle=":", marker="x", markersize=4,
                              label="0-shot"))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 3),
               fontsize=8, frameon=False)
    _save(fig, path)
