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
    for png in ("plots/gain_by_group.png", "plots/ood_change_ratio.png",
                "plots/perf_mnli_matched.png", "plots/formats_xsum.png"):
        assert png in text and (report.parent / png).stat().st_size > 1000
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
