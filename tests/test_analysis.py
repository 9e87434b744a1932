"""Analysis functions against hand computations on a tiny hand-made frame; bootstrap sanity."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from amuro_study import analysis as an
from amuro_study.paper_results import parse_eval_dataset, parse_model_id
from amuro_study.records import (
    ResultRecord,
    from_frame,
    read_records_json,
    to_frame,
    write_records_json,
)

STEPS = [(10, None), (20, None), (30, "main")]


def rec(step: int, rev: str | None, eval_set: str, value: float, finetune: str | None = None,
        fmt: str = "default", metric: str = "acc", lr: float | None = None,
        seed: int | None = None, stderr: float | None = None) -> ResultRecord:
    return ResultRecord(model="m", revision=rev, step=step, finetune=finetune,
                        learning_rate=lr if lr is not None else (1e-5 if finetune else None),
                        seed=seed, eval_set=eval_set, format=fmt, shots=4, metric=metric,
                        value=value, stderr=stderr)


def _series(eval_set, values, finetune=None, **kw):
    return [rec(s, r, eval_set, v, finetune, **kw) for (s, r), v in zip(STEPS, values, strict=True)]


@pytest.fixture()
def tiny() -> pd.DataFrame:
    records = [
        *_series("mnli_matched", [0.30, 0.32, 0.34]),
        *_series("mnli_matched", [0.50, 0.70, 0.80], "mnli"),
        *_series("mnli_matched", [0.30, 0.33, 0.34], "xsum"),
        *_series("xsum", [0.10, 0.12, 0.10], metric="rougeL"),
        *_series("xsum", [0.05, 0.06, 0.02], "mnli", metric="rougeL"),
        *_series("mnli_matched", [0.31, 0.40, 0.38], fmt="instruct"),
        *_series("mnli_matched", [0.29, 0.30, 0.33], fmt="io"),
    ]
    return to_frame(records)


def test_records_round_trip(tmp_path, tiny) -> None:
    recs = from_frame(tiny)
    assert to_frame(recs).equals(tiny)
    write_records_json(recs, tmp_path / "r.json")
    assert read_records_json(tmp_path / "r.json") == recs
    assert ResultRecord.from_json(recs[0].to_json()) == recs[0]
    with pytest.raises(ValueError):
        ResultRecord.from_dict({**recs[0].to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        rec(10, None, "x", float("nan"))
    with pytest.raises(ValueError):
        rec(10, None, "x", 0.1, fmt="chat")


def test_checkpoint_order_and_labels(tiny) -> None:
    ck = an.checkpoints(tiny)
    assert ck["checkpoint"].tolist() == ["10", "20", "main"]


def test_paired_changes_by_hand(tiny) -> None:
    d = an.select(tiny)
    ch = an.paired_changes(d, [("mnli_matched", "mnli"), ("xsum", "mnli")])
    got = {(r.eval_set, r.checkpoint): (r.raw_change, r.change_ratio) for r in ch.itertuples()}
    assert got[("mnli_matched", "10")] == pytest.approx((0.20, 0.20 / 0.30))
    assert got[("mnli_matched", "main")] == pytest.approx((0.46, 0.46 / 0.34))
    assert got[("xsum", "20")] == pytest.approx((-0.06, -0.5))
    assert got[("xsum", "main")] == pytest.approx((-0.08, -0.8))
    assert len(ch) == 6


def test_group_means_slopes_and_double_counting(tiny) -> None:
    d = an.select(tiny)
    g = an.group_changes_by_checkpoint(d, {"A": [("mnli_matched", "mnli"), ("xsum", "mnli")],
                                           "B": [("mnli_matched", "mnli")] * 2
                                           + [("xsum", "mnli")]})
    a = g[g["group"] == "A"].set_index("checkpoint")
    means = [(0.20 - 0.05) / 2, (0.38 - 0.06) / 2, (0.46 - 0.08) / 2]
    assert a["mean_raw_change"].tolist() == pytest.approx(means)
    assert a.loc["20", "slope_per_100k"] == pytest.approx((means[1] - means[0]) / 10 * 1e5)
    assert a.loc["main", "slope_per_100k"] == pytest.approx((means[2] - means[1]) / 10 * 1e5)
    b = g[g["group"] == "B"].set_index("checkpoint")
    assert b.loc["10", "mean_raw_change"] == pytest.approx((0.20 * 2 - 0.05) / 3)
    assert b.loc["10", "n_pairs"] == 3


def test_missing_cells_are_skipped(tiny) -> None:
    d = an.select(tiny)
    d = d[~((d["finetune"] == "mnli") & (d["eval_set"] == "xsum") & (d["step"] == 20))]
    g = an.group_changes_by_checkpoint(d, {"A": [("mnli_matched", "mnli"), ("xsum", "mnli")]})
    row = g.set_index("checkpoint").loc["20"]
    assert row["n_pairs"] == 1 and row["n_expected"] == 2
    assert row["mean_raw_change"] == pytest.approx(0.38)


def test_mrc_pooled_over_cells(tiny) -> None:
    d = an.select(tiny)
    pairs = an.cross_task_pairs()
    # Only (xsum, mnli) of the class->gen pairs and (mnli_matched, xsum) of gen->class exist.
    assert an.mean_ratio_of_change(d, pairs[an.CLASS_TO_GEN]) == pytest.approx(
        100 * np.mean([-0.5, -0.5, -0.8]))
    assert an.mean_ratio_of_change(d, pairs[an.GEN_TO_CLASS]) == pytest.approx(
        100 * np.mean([0.0, 0.01 / 0.32, 0.0]))
    s = an.mrc_summary(d, n_resamples=200).set_index("direction")
    assert s.loc[an.CLASS_TO_GEN, "n_cells"] == 3


def test_select_learning_rates_and_seeds(tiny) -> None:
    extra = to_frame([rec(10, None, "mnli_matched", 0.9, "mnli", lr=2e-6)])
    both = pd.concat([tiny, extra], ignore_index=True)
    with pytest.raises(ValueError, match="several rows"):
        an.select(both)
    assert len(an.select(both, learning_rates={"mnli": 2e-6}).query("finetune == 'mnli'")) == 1
    seeds = to_frame([rec(10, None, "paws", 0.4, "paws", seed=1, stderr=0.03),
                      rec(10, None, "paws", 0.6, "paws", seed=2, stderr=0.04)])
    avg = an.select(seeds)
    assert len(avg) == 1
    assert avg["value"].iloc[0] == pytest.approx(0.5)
    assert avg["stderr"].iloc[0] == pytest.approx(math.sqrt(0.03**2 + 0.04**2) / 2)


def test_format_sensitivity_by_hand(tiny) -> None:
    fs = an.format_sensitivity(an.select(tiny, formats=None))
    row = fs[(fs["variant"] == "base") & (fs["checkpoint"] == "20")].iloc[0]
    vals = [0.32, 0.40, 0.30]
    assert row["n_formats"] == 3
    assert row["range"] == pytest.approx(0.10)
    assert row["std"] == pytest.approx(np.std(vals))
    assert set(fs["eval_set"]) == {"mnli_matched"}  # xsum has a single format


def test_ood_and_table5_groups_from_suite() -> None:
    ood = an.ood_pairs()
    assert sorted(ood["mnli"]) == [("gpt3nli", "mnli"), ("rte", "mnli")]
    assert sorted(ood["socialiqa"]) == [("sciq", "socialiqa"), ("tweetqa", "socialiqa")]
    g = an.table5_groups(release_quirks=True)
    assert g[an.PRETRAINING_GROUP].count(("sciq_mc", "tulu")) == 2
    assert an.table5_groups(False)[an.PRETRAINING_GROUP].count(("sciq_mc", "tulu")) == 1
    assert ("boolq", "tulu") in g[an.FINETUNING_GROUP]
    assert ("xlsum", "xsum") in g[an.FINETUNING_GROUP]


def test_detect_dichotomy_rule() -> None:
    steps = [(s, None) for s in (1, 2, 3, 4, 5, 6)]
    rising = [0.25, 0.45, 0.55, 0.56, 0.55, 0.57]  # learned early, then flat
    flat = [0.33, 0.34, 0.33, 0.35, 0.33, 0.34]  # never learned
    wobbly = [0.50, 0.62, 0.48, 0.60, 0.47, 0.62]  # big gain on average, but noise-sized
    records = []
    for name, vals in (("rising", rising), ("flat", flat), ("wobbly", wobbly)):
        records += [rec(s, r, name, v, stderr=0.005) for (s, r), v in
                    zip(steps, vals, strict=True)]
    det = an.detect_dichotomy(to_frame(records)).set_index("eval_set")
    assert det.loc["rising", "detected"] == "pre-training"
    late = np.mean(rising[-3:])
    assert det.loc["rising", "delta"] == pytest.approx(late - 0.25)
    assert det.loc["rising", "headroom_gain"] == pytest.approx((late - 0.25) / 0.75)
    assert det.loc["flat", "detected"] == "fine-tuning"
    assert det.loc["wobbly", "detected"] == "fine-tuning"
    # Sampling error alone can veto: same rising curve with huge standard errors.
    noisy = [rec(s, r, "rising", v, stderr=0.2) for (s, r), v in zip(steps, rising, strict=True)]
    assert an.detect_dichotomy(to_frame(noisy))["detected"].item() == "fine-tuning"


def test_noise_multiple_of_a_set_without_spread_is_undefined_not_infinite() -> None:
    """The later checkpoints score the same: delta / sd is undefined (NaN, a blank cell), not
    +inf -- which read as 'infinitely beyond noise' even when the score fell."""
    steps = [(s, None) for s in (1, 2, 3)]
    records = []
    for name, vals in (("fell", [0.6, 0.4, 0.4]), ("rose", [0.2, 0.6, 0.6])):
        records += [rec(s, r, name, v) for (s, r), v in zip(steps, vals, strict=True)]
    det = an.detect_dichotomy(to_frame(records)).set_index("eval_set")
    assert math.isnan(det.loc["fell", "noise_multiple"])
    assert math.isnan(det.loc["rose", "noise_multiple"])
    assert det.loc["fell", "detected"] == "fine-tuning"
    assert det.loc["rose", "detected"] == "pre-training"  # a clean rise is still detected


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_mean_coverage_and_width() -> None:
    rng = np.random.default_rng(123)
    hits, widths = 0, []
    trials = 200
    for i in range(trials):
        x = rng.normal(0.3, 1.0, size=60)
        ci = an.bootstrap_mean_ci(x, n_resamples=400, seed=i)
        hits += ci.low <= 0.3 <= ci.high
        widths.append(ci.high - ci.low)
    assert 0.88 <= hits / trials <= 0.99
    # Width ~ 2 * 1.96 / sqrt(60) = 0.506 for a normal mean.
    assert np.mean(widths) == pytest.approx(2 * 1.96 / math.sqrt(60), rel=0.1)
    big = an.bootstrap_mean_ci(rng.normal(0, 1, 2000), n_resamples=400)
    assert big.high - big.low < np.mean(widths) / 4
    assert big.se == pytest.approx(1 / math.sqrt(2000), rel=0.15)


def test_bootstrap_mean_is_deterministic_and_centered() -> None:
    x = [0.0, 1.0, 1.0, 0.0, 1.0]
    a = an.bootstrap_mean_ci(x, seed=7)
    b = an.bootstrap_mean_ci(x, seed=7)
    assert a == b and a.estimate == pytest.approx(0.6) and a.low <= 0.6 <= a.high


def test_paired_difference_is_tighter_when_items_correlate() -> None:
    rng = np.random.default_rng(0)
    item = rng.normal(0, 1, 500)  # item difficulty shared by both models
    a = item + rng.normal(0, 0.1, 500)
    b = item + 0.05 + rng.normal(0, 0.1, 500)
    paired = an.bootstrap_diff_ci(a, b, paired=True, n_resamples=500)
    unpaired = an.bootstrap_diff_ci(a, b, paired=False, n_resamples=500)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert paired.low > 0  # the +0.05 shift is detected only when paired
    assert unpaired.low < 0 < unpaired.high
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 5


def test_read_lm_eval_samples_and_diff(tmp_path) -> None:
    base = tmp_path / "base.jsonl"
    tuned = tmp_path / "tuned.jsonl"
    base.write_text("".join(json.dumps({"doc_id": i, "acc": float(i % 2), "filter": "none"})
                            + "\n" for i in range(40)))
    tuned.write_text("".join(json.dumps({"doc_id": i, "acc": 1.0, "filter": "none"}) + "\n"
                             for i in reversed(range(40))))
    a = an.read_lm_eval_samples(base, "acc")
    b = an.read_lm_eval_samples(tuned, "acc")
    assert len(a) == 40 and a[3] == 1.0 and a[4] == 0.0
    ci = an.bootstrap_diff_from_samples(a, b, n_resamples=300)
    assert ci.estimate == pytest.approx(0.5)
    assert 0.3 < ci.low < 0.5 < ci.high < 0.7
    with pytest.raises(ValueError, match="rougeL"):
        an.read_lm_eval_samples(base, "rougeL")


# ------------------------------------------------------------------ release ids (no CSV needed)
@pytest.mark.parametrize(("model_id", "table", "expected"), [
    ("olmo1b_checkpoint-342000_original_hf_4shots", "all_perf_table.csv",
     ("allenai/OLMo-1B-hf", None, 342000, None, None, None, 4)),
    ("olmo1b_original_hf_4shots", "all_perf_table.csv",
     ("allenai/OLMo-1B-hf", "main", 750000, None, None, None, 4)),
    ("olmo1b_hf_ckpt18000_xsum_3epoch_2e-7_4shots", "all_perf_table.csv",
     ("allenai/OLMo-1B-hf", None, 18000, "xsum", 2e-7, 3, 4)),
    ("olmo1b_hf_main_mnli_3epoch_2e-5", "all_perf_table.csv",
     ("allenai/OLMo-1B-hf", "main", 750000, "mnli", 2e-5, 3, 0)),
    ("checkpoint-1000", "official_eval_table.csv",
     ("allenai/OLMo-1B-hf", None, 1000, None, None, None, 4)),
    ("olmo1b_tulu_5epoch_2e-6", "it_perf_table.csv",
     ("allenai/OLMo-1B", "main", 750000, "tulu", 2e-6, 5, None)),
])
def test_parse_model_id(model_id, table, expected) -> None:
    p = parse_model_id(model_id, table)
    assert (p.model, p.revision, p.step, p.finetune, p.learning_rate, p.epochs,
            p.shots) == expected


def test_parse_eval_dataset() -> None:
    assert parse_eval_dataset("mnli_matched_inputoutput", "all_perf_table.csv") == (
        "mnli_matched", "io", "acc")
    assert parse_eval_dataset("xsum_instruct", "all_perf_table.csv") == (
        "xsum", "instruct", "rougeL")
    assert parse_eval_dataset("sciq", "official_eval_table.csv") == ("sciq_mc", "default", "acc")
    with pytest.raises(ValueError):
        parse_model_id("gpt2_whatever", "all_perf_table.csv")


def test_dichotomy_with_too_few_checkpoints_is_empty_but_well_formed(tiny) -> None:
    two = tiny[tiny["revision"].ne("main") & tiny["format"].eq("default")]
    assert two["step"].nunique() == 2
    detected = an.detect_dichotomy(two)
    assert detected.empty and list(detected.columns) == an.DICHOTOMY_COLUMNS
    assert an.compare_dichotomy(detected).empty


def test_select_keeps_one_metric_per_set() -> None:
    """lm-eval's multiple-choice tasks report acc and acc_norm: a set must count once."""
    records = (_series("arc_easy", [0.4, 0.5, 0.6]) + _series("arc_easy", [0.3, 0.4, 0.5],
                                                              metric="acc_norm")
               + _series("xsum", [0.1, 0.2, 0.3], metric="rougeL"))
    df = an.select(to_frame(records))
    assert sorted(set(zip(df["eval_set"], df["metric"], strict=True))) == [
        ("arc_easy", "acc"), ("xsum", "rougeL")]
    every = an.select(to_frame(records), primary_metric=False)
    assert set(every["metric"]) == {"acc", "acc_norm", "rougeL"}
    only_norm = an.select(to_frame(_series("hellaswag", [0.3, 0.4, 0.5], metric="acc_norm")))
    assert set(only_norm["metric"]) == {"acc_norm"}  # nothing else to prefer


def test_analyses_before_any_fine_tune_has_finished(tmp_path) -> None:
    """A study's report mid-way (or a base-only study): empty tables, no crash."""
    from amuro_study.report import build_report

    df = to_frame(_series("mnli_matched", [0.3, 0.31, 0.32]) + _series("xsum", [0.1, 0.1, 0.1],
                                                                        metric="rougeL"))
    assert an.table5(an.select(df)).empty
    assert an.group_changes_by_checkpoint(an.select(df), an.table5_groups()).empty
    report = build_report(df, tmp_path / "rep")
    assert report.is_file() and "mnli_matched" in report.read_text()


def test_ood_change_when_every_base_score_is_zero() -> None:
    """A change ratio needs a non-zero base: no cells -> NaN, not an exception."""
    df = to_frame(_series("cnn", [0.0, 0.0, 0.0], metric="rougeL")
                  + _series("cnn", [0.1, 0.2, 0.1], "xsum", metric="rougeL"))
    ood = an.ood_change(an.select(df))
    row = ood.set_index("finetune").loc["xsum"]
    assert math.isnan(row["mean_change_ratio"]) and math.isnan(row["ci_low"])
    assert row["mean_raw_change"] == pytest.approx(0.4 / 3) and row["n_cells"] == 3
