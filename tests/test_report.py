"""Report smoke tests: written tables equal values computed independently from raw CSV rows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amuro_study.records import ResultRecord, to_frame
from amuro_study.report import build_report, paper_report

RESULTS = Path(__file__).resolve().parent / "data" / "paper_results"  # see its README
CKPTS = ["1000", "18000", "342000", "424000", "505000", "592000", "738000", "main"]
LRS = {"xsum": "2e-7", "socialiqa": "2e-6", "mnli": "2e-6", "paws": "2e-6"}
OLMO_EVAL = {"boolq", "openbookqa", "arc_challenge", "arc_easy", "hellaswag", "sciq"}


def _raw_lookup(raw: pd.DataFrame, model_id: str, eval_ds: str) -> float:
    hit = raw[(raw["model_id"] == model_id) & (raw["eval dataset"] == eval_ds)]
    assert len(hit) == 1, (model_id, eval_ds)
    return float(hit["Performance"].iloc[0])


def _raw_change(raw: pd.DataFrame, ckpt: str, eval_ds: str, train: str) -> float:
    """Raw change looked up directly by the release's model_id strings (independent path)."""
    if eval_ds in OLMO_EVAL:
        base = "olmo1b_original_hf" if ckpt == "main" else f"checkpoint-{ckpt}"
        tuned = ("olmo1b_hf_main_tulu_5epoch_2e-6" if ckpt == "main"
                 else f"olmo1b_hf_ckpt{ckpt}_tulu_5epoch_2e-6")
    else:
        base = ("olmo1b_original_hf_4shots" if ckpt == "main"
                else f"olmo1b_checkpoint-{ckpt}_original_hf_4shots")
        mid = "main" if ckpt == "main" else f"ckpt{ckpt}"
        tuned = f"olmo1b_hf_{mid}_{train}_3epoch_{LRS[train]}_4shots"
    return _raw_lookup(raw, tuned, eval_ds) - _raw_lookup(raw, base, eval_ds)


def test_paper_report_tables_match_raw_rows(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = paper_report(tmp_path / "rep", RESULTS)
    assert report.is_file() and (report.parent / "report.html").is_file()
    text = report.read_text()
    # one image per reproduced figure of the paper (no longer one plot per eval set)
    pngs = sorted(p.name for p in (report.parent / "plots").iterdir())
    assert pngs == ["figure2_performance.png", "figure4_gain_by_group.png",
                    "figure5_formats.png", "figure7_ood.png"]
    for png in pngs:
        assert f"(plots/{png})" in text and (report.parent / "plots" / png).stat().st_size > 1000
    assert "Known-defective" in text and "`qqp`" in text

    raw = pd.concat([pd.read_csv(RESULTS / "all_perf_table.csv", index_col=0),
                     pd.read_csv(RESULTS / "official_eval_table.csv", index_col=0)])
    ft_pairs = [("mnli_matched", "mnli"), ("mnli_mismatched", "mnli"), ("paws", "paws"),
                ("xsum", "xsum"), ("xlsum", "xsum"), ("socialiqa", "socialiqa")]
    pt_sets = ["sciq", "sciq", "hellaswag", "arc_challenge", "arc_easy", "openbookqa"]
    t5 = pd.read_csv(report.parent / "tables" / "table5_release.csv", dtype={"checkpoint": str})
    assert t5["checkpoint"].tolist() == CKPTS
    for row in t5.to_dict("records"):
        ft = [_raw_change(raw, row["checkpoint"], e, t) for e, t in ft_pairs]
        ft.append(_raw_change(raw, row["checkpoint"], "boolq", "tulu"))
        pt = [_raw_change(raw, row["checkpoint"], e, "tulu") for e in pt_sets]
        assert row["Learned in Pre-train"] == pytest.approx(np.mean(pt), abs=1e-12)
        assert row["Learned in Fine-Tune"] == pytest.approx(np.mean(ft), abs=1e-12)

    perf = pd.read_csv(report.parent / "tables" / "performance.csv", dtype={"checkpoint": str})
    p = perf[(perf["eval_set"] == "paws") & (perf["variant"] == "paws")
             & (perf["checkpoint"] == "18000")]
    assert p["value"].item() == pytest.approx(
        _raw_lookup(raw, "olmo1b_hf_ckpt18000_paws_3epoch_2e-6_4shots", "paws"))

    ood = pd.read_csv(report.parent / "tables" / "ood_change.csv").set_index("finetune")
    cells = []
    for c in CKPTS:
        for e in ("qqp", "stsb"):
            base = _raw_lookup(raw, "olmo1b_original_hf_4shots" if c == "main"
                               else f"olmo1b_checkpoint-{c}_original_hf_4shots", e)
            cells.append(_raw_change(raw, c, e, "paws") / base)
    assert ood.loc["paws", "mean_change_ratio"] == pytest.approx(np.mean(cells), abs=1e-12)
    assert ood.loc["paws", "defective_sets"] == "qqp,stsb"


def test_build_report_with_sample_cis(tmp_path) -> None:
    """Own-run shaped records with per-sample files: CIs land in the tables."""
    rng = np.random.default_rng(0)
    records = []
    for step, rev in ((1000, "step1000-tokens4B"), (2000, "step2000-tokens8B"), (3000, "main")):
        for finetune, p in ((None, 0.35), ("mnli", 0.6 + step / 1e5)):
            path = tmp_path / f"s{step}_{finetune}.jsonl"
            scores = (rng.random(300) < p).astype(float)
            path.write_text("".join(json.dumps({"doc_id": i, "acc": s}) + "\n"
                                    for i, s in enumerate(scores)))
            records.append(ResultRecord(
                model="tiny", revision=rev, step=step, finetune=finetune,
                learning_rate=2e-6 if finetune else None, seed=42, eval_set="mnli_matched",
                shots=4, metric="acc", value=float(scores.mean()), samples_path=str(path)))
    report = build_report(to_frame(records), tmp_path / "out", title="tiny")
    tables = report.parent / "tables"
    perf = pd.read_csv(tables / "performance.csv")
    assert perf["ci_low"].notna().all()
    assert ((perf["ci_low"] <= perf["value"]) & (perf["value"] <= perf["ci_high"])).all()
    gain = pd.read_csv(tables / "gain_ci.csv")
    assert len(gain) == 3
    assert ((gain["ci_low"] < gain["raw_change"]) & (gain["raw_change"] < gain["ci_high"])).all()
    assert (gain["raw_change"] - (gain["tuned"] - gain["base"])).abs().max() < 1e-12
    assert "paired bootstrap" in report.read_text()
    assert not list(report.parent.rglob("*.tmp"))


def test_report_builds_for_a_two_checkpoint_study(tmp_path) -> None:
    from amuro_study.records import ResultRecord, to_frame
    from amuro_study.report import build_report

    records = [
        ResultRecord(model="m", revision=None, step=step, finetune=ft,
                     learning_rate=1e-5 if ft else None, seed=None, eval_set=s, format="default",
                     shots=4, metric=metric, value=value, stderr=None)
        for step in (10, 20)
        for ft, bump in ((None, 0.0), ("mnli", 0.2))
        for s, metric, value in (("mnli_matched", "acc", 0.3), ("xsum", "rougeL", 0.1))
        for value in [value + bump]
    ]
    report = build_report(to_frame(records), tmp_path)
    assert report.is_file() and "mnli_matched" in report.read_text()


# ============================================================================ the page's layout
def _paper_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return paper_report(tmp_path_factory.mktemp("paper") / "rep", RESULTS)


@pytest.fixture(scope="module")
def paper_md(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _paper_report(tmp_path_factory)


def _commonmark(text: str) -> str:
    """``text`` rendered by markdown-it-py (CommonMark + GitHub tables), a renderer other than
    the one report.html uses: what a code host or a Markdown viewer shows."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(text)


def _headings(md: str) -> list[str]:
    return [line.lstrip("#").strip() for line in md.splitlines() if line.startswith("#")]


def test_report_md_is_valid_markdown_with_working_links(paper_md: Path) -> None:
    """Every table, image and link of report.md renders in CommonMark; links reach a file of
    the report folder or a heading's GitHub anchor; no Markdown syntax is left as text."""
    import html as html_lib
    import re

    from amuro_study.report_doc import anchor

    md = paper_md.read_text()
    out = _commonmark(md)
    assert out.count("<table>") == md.count("\n|---") >= 8
    anchors = {anchor(h) for h in _headings(md)}
    hrefs = re.findall(r'<a href="([^"]+)"', out)
    srcs = re.findall(r'<img src="([^"]+)"', out)
    assert len(srcs) == 4 and len(hrefs) > 30
    for target in hrefs + srcs:
        target = html_lib.unescape(target)
        if target.startswith("#"):
            assert target[1:] in anchors, target
        else:
            assert (paper_md.parent / target).is_file(), target
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", out))
    for raw in ("**", "`", "](", "|---", "\\*", "\\_"):
        assert raw not in text, raw
    assert not [line for line in text.splitlines() if line.startswith("#")]


def test_summary_comes_first_with_the_reproduced_headline_numbers(paper_md: Path) -> None:
    """The summary precedes every section and shows Table 5 (as released: the paper's 16
    numbers), MRC, OOD and format headline numbers as written in their tables."""
    from amuro_study.report import MRC, OOD, PERFORMANCE, TABLE5

    md = paper_md.read_text()
    heads = _headings(md)
    assert heads[:2] == ["Amuro & Char: the paper's released results", "Summary"]
    assert heads.index("Contents") < heads.index(PERFORMANCE)
    summary = md[md.index("## Summary"):md.index("## Contents")]
    tables = paper_md.parent / "tables"
    t5 = pd.read_csv(tables / "table5_release.csv", dtype={"checkpoint": str})
    for group in ("Learned in Pre-train", "Learned in Fine-Tune"):
        cells = " | ".join(f"{v:+.3f}" for v in t5[group])
        assert cells in summary, group
    assert " | ".join(f"{v:+.3f}" for v in [0.062, 0.149, 0.286, 0.297, 0.304, 0.297, 0.264,
                                              0.290]) in summary  # the paper's Table 5 row
    mrc = pd.read_csv(tables / "mrc.csv").set_index("direction")
    for direction, row in mrc.iterrows():
        assert (f"{row['mrc_percent']:+.2f}% [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
                in summary), direction
    assert "-61.46% [" in summary and "+0.31% [" in summary
    ood = pd.read_csv(tables / "ood_change.csv").set_index("finetune")
    for task, row in ood.iterrows():
        assert f"{row['mean_change_ratio']:+.2f} [{row['ci_low']:+.2f}" in summary, task
    fr = pd.read_csv(tables / "format_range.csv").set_index("variant")
    assert f"{fr.loc['base', 'mean_range']:.3f} [" in summary
    for title in (TABLE5, MRC, OOD):
        assert f"](#{__import__('amuro_study.report_doc').report_doc.anchor(title)})" in summary


def test_anchor_is_githubs_heading_id() -> None:
    """Heading ids as GitHub renders them (cases from public GitHub-slug test suites)."""
    from amuro_study.report_doc import anchor

    cases = {
        "heading with a period.txt": "heading-with-a-periodtxt",
        "foo_foo_bar": "foo_foo_bar",
        "1) not a list": "1-not-a-list",
        "I ♥ unicode": "i--unicode",
        "Привет non-latin 你好": "привет-non-latin-你好",
        "Cross-task change: MRC (section 6.2)": "cross-task-change-mrc-section-62",
    }
    for title, slug in cases.items():
        assert anchor(title) == slug, title


@pytest.mark.parametrize("value", [
    "__init__ *x* [a](b) `c` a|b <i>x</i> _y_ \\ 1 < 2 > 0", "mnli_matched", "a_b__c_",
])
def test_md_text_is_shown_literally_by_both_renderers(value: str) -> None:
    """Text and table cells written by md_text / md_table show exactly the value, in
    CommonMark (markdown-it-py) and in the ``markdown`` package that renders report.html."""
    import html as html_lib
    import re

    import markdown

    from amuro_study.report_doc import md_table, md_text

    def shown(rendered: str) -> list[str]:
        cells = re.findall(r"<(?:p|td)>(.*?)</(?:p|td)>", rendered, flags=re.S)
        return [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]

    text = md_text(value) + "\n\n" + md_table(pd.DataFrame({"c": [value]}))
    for rendered in (_commonmark(text), markdown.markdown(text, extensions=["tables"])):
        assert shown(rendered) == [value, value], rendered
    assert md_text("mnli_matched") == "mnli_matched"  # readable in a terminal


def test_step_axis_is_true_to_scale_or_says_it_is_not() -> None:
    from amuro_study.plots import StepAxis

    def axis(steps: list[int], main: bool = False) -> StepAxis:
        labels = [str(s) for s in steps]
        if main:
            labels[-1] = "main"
        return StepAxis.from_checkpoints(pd.DataFrame({"step": steps, "checkpoint": labels}))

    paper = axis([1000, 18000, 342000, 424000, 505000, 592000, 738000, 750000], main=True)
    assert not paper.to_scale and "not to scale" in paper.title
    assert paper.ticks == list(range(8)) and paper.labels[:2] == ["1k", "18k"]
    assert paper.labels[-1] == "main"
    demo = axis([10, 50, 120])
    assert demo.to_scale and demo.ticks == [10, 50, 120] and "to scale" in demo.title
    assert "not" not in demo.title
    assert not axis([1000]).to_scale


def test_variant_colours_and_markers_are_the_same_in_every_figure() -> None:
    from amuro_study.plots import variant_colors, variant_markers

    few, many = variant_colors(["base", "xsum"]), variant_colors(["mnli", "paws", "xsum", "zz"])
    assert few["xsum"] == many["xsum"] and few["base"] == many["base"]
    assert len({many[v] for v in ["base", "mnli", "paws", "xsum", "zz"]}) == 5
    assert variant_markers(["xsum"])["xsum"] == variant_markers(["mnli", "xsum"])["xsum"]


@pytest.mark.parametrize("case", sorted(__import__("report_cases").DEGRADED))
def test_a_study_without_some_analyses_still_gets_a_whole_report(tmp_path, case) -> None:
    """Base-only, one checkpoint, no per-sample files: the missing headlines are named, every
    image and table the page links to exists, nothing of another study is left behind."""
    import re

    from report_cases import DEGRADED, synthetic_study

    df = synthetic_study(tmp_path / "samples", **DEGRADED[case])
    report = build_report(df, tmp_path / "rep", title=case)
    md = report.read_text()
    html = (report.parent / "report.html").read_text()
    for target in re.findall(r"\]\(([^)#][^)]*)\)", md):
        assert (report.parent / target).is_file(), target
    assert "<table>" in html and "figure2_performance.png" in md
    if "finetunes" in DEGRADED[case]:
        assert "Not in this study" in md and "Table 5" in md.split("## Contents")[0]
        assert not (report.parent / "plots" / "figure4_gain_by_group.png").exists()
    if DEGRADED[case].get("steps") == (1000,):
        assert "detected dichotomy (needs at least 3 checkpoints)" in md
    if not DEGRADED[case].get("samples", True):
        assert "gain_ci" not in md


def test_rebuilding_into_the_same_folder_removes_what_no_longer_applies(tmp_path) -> None:
    from report_cases import synthetic_study

    out = tmp_path / "rep"
    build_report(synthetic_study(tmp_path / "a"), out)
    assert (out / "plots" / "figure7_ood.png").is_file() and (out / "tables/gain_ci.csv").is_file()
    build_report(synthetic_study(tmp_path / "b", finetunes=(), samples=False), out)
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["figure2_performance.png"]
    assert not (out / "tables" / "gain_ci.csv").exists()
    assert (out / "tables" / "performance.csv").is_file()


def test_group_change_summary_and_format_range_summary() -> None:
    """The summary's pooled numbers equal plain means of the cells they pool."""
    from amuro_study import analysis as an

    rows = []
    for step, (b, t) in zip((10, 20, 30), ((0.30, 0.50), (0.32, 0.60), (0.31, 0.70)), strict=True):
        for ft, v in ((None, b), ("mnli", t)):
            for fmt, bump in (("default", 0.0), ("instruct", -0.1 if ft else -0.02)):
                rows.append(ResultRecord(model="m", step=step, finetune=ft, eval_set="mnli_matched",
                                         format=fmt, shots=4, metric="acc", value=v + bump))
    df = to_frame(rows)
    g = an.group_change_summary(an.select(df), {"FT": [("mnli_matched", "mnli")]})
    assert g.loc[0, "mean_raw_change"] == pytest.approx(np.mean([0.2, 0.28, 0.39]))
    assert g.loc[0, "n_cells"] == 3 and g.loc[0, "ci_low"] <= g.loc[0, "mean_raw_change"]
    fs = an.format_sensitivity(an.select(df, formats=None))
    fr = an.format_range_summary(fs).set_index("variant")
    assert fr.loc["base", "mean_range"] == pytest.approx(0.02)
    assert fr.loc["mnli", "mean_range"] == pytest.approx(0.1)
    assert fr.loc["mnli", "change"] == pytest.approx(0.08)
    assert fr.loc["mnli", "change_ci_low"] == pytest.approx(0.08)  # every cell moved by 0.08
    assert np.isnan(fr.loc["base", "change"])
