"""Shot sets, shot counts and label collapse (issue 14): the sampler, the study axis, the
analyses and the report.

* the plugin's sampler: fixed shots are the pool's first rows for every document; per-document
  shots are, document after document, what ``random.Random(seed).sample(pool, k)`` draws (lm-eval's
  default sampler), never a scored row;
* the study: one unit per shot count and shot set (0-shot once), ids of the units studies had
  before unchanged, the seed in the lm-eval call and in every record;
* the analyses against hand computations (explicit loops, not the module's vectorised code);
* the report: the shot-sensitivity section, figure and card appear with the axes only; a planted
  collapsed model is flagged in the summary, the section and the performance figure;
* end to end on the tiny model (slow): a study with ``fewshot_seeds: [1234, 1, 2]`` and
  ``shots: [0, 4]``, every table checked against values computed here from the per-sample files;
  a model whose output layer is zeroed (every next token equally likely, so the label with the
  fewest tokens wins every document) is reported as collapsed.
"""

from __future__ import annotations

import io
import json
import math
import random
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from report_cases import LABELS, shot_study, synthetic_study, write_choice_samples

import amuro_tasks
from amuro_study import shot_analysis as sa
from amuro_study.analysis import select
from amuro_study.cli import print_plan
from amuro_study.config import StudyConfigError, parse_config
from amuro_study.evaluate import results_to_records
from amuro_study.plan import build_plan, estimate_cost
from amuro_study.records import ResultRecord, to_frame
from amuro_study.report import COLLAPSE, SHOTS, build_report
from amuro_tasks.errors import AmuroConfigError

BASE = {"output_dir": "runs/x", "model": "allenai/OLMo-1B-hf", "revisions": ["step1000", "main"],
        "data": "fixtures", "finetune": {"tasks": ["mnli"]},
        "eval": {"sets": ["mnli_matched", "rte"], "shots": [0, 4]}}
#: The ids main's code (before shot sets were an axis) gave BASE's evaluation units, in plan
#: order: base step1000 0/4-shot, base main 0/4-shot, then the fine-tuned ones.
OLD_IDS = ["eval-8a1757e4fc36d691", "eval-b3b6f4d2aa1986b4", "eval-dc06b8e26f121fed",
           "eval-b3ca7743976f6e8a", "eval-75cb1eb79bb56dab", "eval-050554dc390fbd47",
           "eval-08858a599aab3d55", "eval-6c6dca08516f948e"]


def _eval(**changes: Any) -> dict:
    return {**BASE, "eval": {**BASE["eval"], **changes}}


# ============================================================================ config and plan
def test_shot_axes_are_parsed_and_checked() -> None:
    ev = parse_config(BASE).eval
    assert (ev.fewshot_seeds, ev.shot_sampling) == ((1234,), ("fixed",))
    ev = parse_config(_eval(fewshot_seeds=[1234, 1, 2], shot_sampling="per_document")).eval
    assert (ev.fewshot_seeds, ev.shot_sampling) == ((1234, 1, 2), ("per_document",))
    both = parse_config(_eval(shot_sampling=["fixed", "per_document"])).eval
    assert both.shot_sampling == ("fixed", "per_document")
    for bad, message in [
        ({"fewshot_seeds": [1, 1]}, r"^eval.fewshot_seeds\[1\]: duplicate entry 1"),
        ({"fewshot_seeds": [1, "two"]}, r"^eval.fewshot_seeds\[1\]: must be an integer"),
        ({"fewshot_seeds": []}, r"^eval.fewshot_seeds: must not be empty"),
        ({"shot_sampling": "random"}, r"^eval.shot_sampling\[0\]: must be one of fixed, "
                                      r"per_document; got 'random'"),
        ({"shot_sets": 3}, r"^eval.shot_sets: unknown key"),
    ]:
        with pytest.raises(StudyConfigError, match=message):
            parse_config(_eval(**bad))


def test_one_unit_per_shot_set_and_the_old_units_keep_their_ids(tmp_path: Path) -> None:
    old = build_plan(parse_config(BASE))
    assert [u.uid for u in (*old.base_evals, *old.finetuned_evals)] == OLD_IDS
    plan = build_plan(parse_config(_eval(fewshot_seeds=[1234, 1, 2],
                                         shot_sampling=["fixed", "per_document"])))
    units = [u for u in plan.base_evals if u.checkpoint.revision == "main"]
    assert [(u.shots, u.fewshot_seed, u.shot_sampling) for u in units] == [
        (0, None, None), (4, 1234, "fixed"), (4, 1, "fixed"), (4, 2, "fixed"),
        (4, 1234, "per_document"), (4, 1, "per_document"), (4, 2, "per_document")]
    every = [u.uid for u in (*plan.base_evals, *plan.finetuned_evals)]
    assert len(set(every)) == len(every) == 2 * 2 * 7
    # the 0-shot and the default shot set's units are the ones studies had before
    assert set(OLD_IDS) < set(every)
    # what each unit tells lm-eval: only what differs from the plugin's defaults
    meta = [u.lm_eval_metadata() for u in units]
    assert [(m.get("amuro_fewshot_seed"), m.get("amuro_shots")) for m in meta] == [
        (None, None), (None, None), (1, None), (2, None), (None, "per_document"),
        (1, "per_document"), (2, "per_document")]
    assert [u.fewshot_random_seed for u in units] == [1234, 1234, 1, 2, 1234, 1, 2]
    assert units[5].describe().endswith("4-shot (shot set 1, per document), paper splits")
    # `amuro study plan`: one line per shot set, each counted in the cost
    out = io.StringIO()
    print_plan(plan, out)
    text = out.getvalue()
    assert text.count("4-shot (shot set ") == 2 * 2 * 6 and text.count("0-shot") == 4
    assert "shot sets (seeds) [1234, 1, 2], shot sampling fixed, per_document" in text
    one = estimate_cost(old)
    many = estimate_cost(plan)
    assert many.model_loads == 2 * 2 * 7 and one.model_loads == 2 * 2 * 2
    per_unit = one.scored_examples // one.model_loads
    assert many.scored_examples == per_unit * many.model_loads


def test_records_name_their_shot_set() -> None:
    plan = build_plan(parse_config(_eval(fewshot_seeds=[1234, 7])))
    zero, fixed, other = plan.base_evals[:3]
    results = {"results": {t.task_name: {"acc,none": 0.5, "acc_stderr,none": 0.1}
                           for t in zero.tasks}}
    got = {u.fewshot_seed: results_to_records(u, results, commit=None)[0]
           for u in (zero, fixed, other)}
    assert [(r.shots, r.fewshot_seed, r.shot_sampling) for r in got.values()] == [
        (0, None, None), (4, 1234, "fixed"), (4, 7, "fixed")]
    assert ResultRecord.from_dict(got[7].to_dict()) == got[7]
    frame = to_frame(got.values())
    assert str(frame["fewshot_seed"].dtype) == "Int64"
    with pytest.raises(ValueError, match="shot_sampling must be one of"):
        ResultRecord(model="m", eval_set="rte", metric="acc", value=0.5, shot_sampling="x")


# ============================================================================ the sampler
def _task(name: str, **metadata: Any):
    tm = amuro_tasks.task_manager(metadata=metadata, include_defaults=False)
    return tm.load([name])["tasks"][name]


def _context(shots: list[dict], doc: dict) -> str:
    """The context lm-eval builds (target delimiter " ", fewshot delimiter a blank line)."""
    return "".join(s["prompt_default"] + " " + s["target"] + "\n\n" for s in shots) \
        + doc["prompt_default"]


def test_fixed_and_per_document_shots() -> None:
    name = "amuro_gpt3nli_default"  # one split: the shot pool is carved out of the scored rows
    contexts: dict[tuple[str, int], list[str]] = {}
    for mode in ("fixed", "per_document"):
        for seed in (1234, 7):
            task = _task(name, amuro_shots=mode, amuro_fewshot_seed=seed)
            task.set_fewshot_seed(seed)  # what simple_evaluate(fewshot_random_seed=) does
            docs, pool = list(task.eval_docs)[:12], list(task.fewshot_docs())
            assert len(pool) == 16
            scored = {d["row_index"] for d in task.eval_docs}
            assert not scored & {p["row_index"] for p in pool}  # never a scored row
            rnd = random.Random(seed)  # lm-eval's default sampler, document after document
            want = [_context(pool[:4] if mode == "fixed" else rnd.sample(pool, 4), d)
                    for d in docs]
            got = [task.fewshot_context(doc=d, num_fewshot=4) for d in docs]
            assert got == want, (mode, seed)
            contexts[(mode, seed)] = got
    firsts = {c.split("\n\n")[0] for c in contexts[("per_document", 1234)]}
    assert len(firsts) > 3  # documents get different shots
    assert len({c.split("\n\n")[0] for c in contexts[("fixed", 1234)]}) == 1
    # another seed: another pool, so other shots in both modes
    assert contexts[("fixed", 1234)] != contexts[("fixed", 7)]
    assert contexts[("per_document", 1234)] != contexts[("per_document", 7)]
    with pytest.raises(AmuroConfigError, match="20 shots asked for, but the shot pool has 16 "
                                               "rows.*amuro_fewshot_pool_size"):
        _task(name, amuro_shots="per_document").fewshot_context(doc=docs[0], num_fewshot=20)
    with pytest.raises(AmuroConfigError, match="amuro_shots must be one of"):
        _task("amuro_rte_default", amuro_shots="random")


# ============================================================================ analyses
def _hand_decomposition(y: list[list[float]]) -> dict[str, float]:
    """The classical two-way ANOVA sums of squares (no replication), by explicit loops."""
    nf, ns = len(y), len(y[0])
    m = sum(sum(r) for r in y) / (nf * ns)
    row = [sum(r) / ns for r in y]
    col = [sum(y[f][s] for f in range(nf)) / nf for s in range(ns)]
    ss_f = ns * sum((r - m) ** 2 for r in row)
    ss_s = nf * sum((c - m) ** 2 for c in col)
    ss_t = sum((y[f][s] - m) ** 2 for f in range(nf) for s in range(ns))
    return {"total_var": ss_t / (nf * ns), "format_var": ss_f / (nf * ns),
            "shot_var": ss_s / (nf * ns), "interaction_var": (ss_t - ss_f - ss_s) / (nf * ns)}


def test_decomposition_is_the_two_way_anova_split() -> None:
    rng = np.random.default_rng(3)
    for shape in ((2, 3), (3, 3), (3, 5)):
        y = rng.random(shape)
        got = sa.decompose_grid(y)
        want = _hand_decomposition(y.tolist())
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key
        shares = got["format_share"] + got["shot_share"] + got["interaction_share"]
        assert shares == pytest.approx(1.0)
        assert got["shot_range"] == pytest.approx(np.mean([max(r) - min(r) for r in y]))
    flat = sa.decompose_grid(np.full((3, 3), 0.5))
    assert flat["total_var"] == 0 and math.isnan(flat["shot_share"])


def _predictions(path: str) -> list[tuple[int, int]]:
    """(predicted, gold) per document, read here from an lm-eval per-sample file."""
    out = []
    for line in Path(path).read_text().splitlines():
        sample = json.loads(line)
        lls = [float(r[0]) for r in sample["filtered_resps"]]
        out.append((lls.index(max(lls)), int(sample["target"])))
    return out


def test_label_collapse_rule_and_both_sample_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = {"all_same_20": (np.zeros(20, int), 20, True),
             "19_of_20": (np.r_[np.zeros(19, int), [1]], 20, True),      # 0.95: collapsed
             "18_of_20": (np.r_[np.zeros(18, int), [1, 2]], 20, False),  # 0.90: not
             "all_same_9": (np.zeros(9, int), 9, False)}                 # too few documents
    for as_file in (True, False):
        for name, (predicted, n, flag) in cases.items():
            path = tmp_path / f"{name}_{as_file}.jsonl"
            write_choice_samples(path, rng.integers(0, 3, n), predicted, rng, as_file=as_file)
            pred = sa.read_label_predictions(path)
            assert pred.labels == LABELS and list(pred.predicted) == list(predicted)
            got = sa.collapse_of(pred)
            assert got["collapsed"] is flag, name
            assert got["majority_share"] == pytest.approx(Counter(predicted).most_common(1)[0][1]
                                                          / n)
    # generation and per-document options are not label sets
    gen = tmp_path / "gen.jsonl"
    gen.write_text(json.dumps({"doc_id": 0, "target": "x", "arguments": [["c", {"until": []}]],
                               "filtered_resps": ["y"], "rougeL": 0.1}) + "\n")
    arc = tmp_path / "arc.jsonl"
    arc.write_text("".join(json.dumps({"doc_id": i, "target": 0,
                                       "arguments": [["c", f" a{i}"], ["c", f" b{i}"]],
                                       "filtered_resps": [[-1.0, False], [-2.0, False]]}) + "\n"
                           for i in range(3)))
    assert sa.read_label_predictions(gen) is None and sa.read_label_predictions(arc) is None


def test_shot_tables_match_hand_computations_from_the_samples(tmp_path: Path) -> None:
    df = shot_study(tmp_path / "s", collapsed=(("mnli", 3000, 1234),))
    with pytest.raises(ValueError, match="several shot sets"):
        select(df, shots=4, formats=None)
    assert sa.primary_shot_set(df) == (1234, "fixed")
    d = sa.select_shot_sets(df)
    acc = {}  # (variant, step, shots, seed, format) -> accuracy, from the files
    for rec in df[df["eval_set"] == "mnli_matched"].to_dict("records"):
        pairs = _predictions(rec["samples_path"])
        key = (rec["finetune"] or "base", rec["step"], rec["shots"],
               None if pd.isna(rec["fewshot_seed"]) else int(rec["fewshot_seed"]), rec["format"])
        acc[key] = sum(p == g for p, g in pairs) / len(pairs)
        assert rec["value"] == pytest.approx(acc[key])
    ss = sa.shot_sensitivity(d)
    ss = ss[ss["eval_set"] == "mnli_matched"]
    assert len(ss) == 2 * 3 * 2  # variants x checkpoints x formats
    for row in ss.to_dict("records"):
        vals = [acc[(row["variant"], row["step"], 4, s, row["format"])] for s in (1234, 1, 2)]
        mean = sum(vals) / 3
        assert row["range"] == pytest.approx(max(vals) - min(vals))
        assert row["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals) / 3))
        assert row["seeds"] == "1, 2, 1234" and row["n_sets"] == 3
    dec = sa.shot_format_decomposition(d)
    for row in dec[dec["eval_set"] == "mnli_matched"].to_dict("records"):
        y = [[acc[(row["variant"], row["step"], 4, s, f)] for s in (1, 2, 1234)]
             for f in ("default", "instruct")]
        for key, value in _hand_decomposition(y).items():
            assert row[key] == pytest.approx(value, abs=1e-12), key
    zk = sa.zero_vs_few_shot(d)
    zk = zk[zk["eval_set"] == "mnli_matched"]
    assert len(zk) == 12
    for row in zk.to_dict("records"):
        few = [acc[(row["variant"], row["step"], 4, s, row["format"])] for s in (1234, 1, 2)]
        zero = acc[(row["variant"], row["step"], 0, None, row["format"])]
        assert row["difference"] == pytest.approx(sum(few) / 3 - zero)
        assert row["difference_min"] == pytest.approx(min(few) - zero)
    lc = sa.label_collapse(df)
    assert len(lc) == len(acc)  # every mnli file; xsum has none
    flagged = lc[lc["collapsed"]]
    assert sorted(zip(flagged["variant"], flagged["step"], flagged["format"], strict=True)) == [
        ("mnli", 3000, "default"), ("mnli", 3000, "instruct")]
    assert set(flagged["majority_label"]) == {"contradiction"}
    for row in lc.to_dict("records"):
        pairs = _predictions(row["samples_path"])
        top = Counter(p for p, _ in pairs).most_common(1)[0][1]
        assert row["majority_share"] == pytest.approx(top / len(pairs))


# ============================================================================ the report
def test_the_report_shows_shot_sensitivity_and_flags_collapse(tmp_path: Path) -> None:
    df = shot_study(tmp_path / "s", collapsed=(("mnli", 3000, 1234),))
    report = build_report(df, tmp_path / "rep", title="shots")
    text = report.read_text()
    summary = text[:text.index("## Contents")]
    assert "### Shot sensitivity" in summary and "### Label collapse" in summary
    assert f"## {SHOTS}" in text and f"## {COLLAPSE}" in text
    assert "(plots/shot_sensitivity.png)" in text
    assert "the analyses above the shot section use shot set 1234" in text
    tables = tmp_path / "rep" / "tables"
    for name in ("shot_sensitivity", "shot_summary", "shot_format_decomposition",
                 "zero_vs_few_shot", "zero_shot_summary", "label_collapse"):
        assert (tables / f"{name}.csv").is_file(), name
    # the paper's analyses used one shot set: the performance table has one row per cell
    perf = pd.read_csv(tables / "performance.csv")
    assert len(perf) == 2 * 3 * 2  # sets x checkpoints x variants, default format, 4-shot
    flagged = perf[perf["collapsed"].fillna(False).astype(bool)]
    assert list(zip(flagged["variant"], flagged["step"], flagged["eval_set"], strict=True)) == [
        ("mnli", 3000, "mnli_matched")]
    assert "Red crosses: label collapse" in text
    summary_rows = pd.read_csv(tables / "shot_summary.csv")
    ss = pd.read_csv(tables / "shot_sensitivity.csv")
    for row in summary_rows.to_dict("records"):
        part = ss[ss["variant"] == row["variant"]]
        assert row["mean_range"] == pytest.approx(part["range"].mean())
        assert row["n_cells"] == len(part) == 2 * 3 * 2


def test_records_from_before_the_shot_set_count_as_the_default_set(tmp_path: Path) -> None:
    """A study folder resumed with more seeds: its default units kept their ids and results,
    whose records name no shot set; they are the default one (seed 1234, fixed)."""
    df = shot_study(tmp_path / "s", steps=(1000, 2000))
    old = (df["fewshot_seed"] == 1234).fillna(False).astype(bool)
    df.loc[old, "fewshot_seed"] = pd.NA
    df.loc[old, "shot_sampling"] = None
    assert sa.primary_shot_set(df) == (1, "fixed")  # without the fill: the wrong set
    filled = sa.fill_default_shot_set(df)
    assert sa.primary_shot_set(filled) == (1234, "fixed")
    assert filled.loc[old, "fewshot_seed"].tolist() == [1234] * int(old.sum())
    text = build_report(df, tmp_path / "rep").read_text()
    assert "use shot set 1234" in text
    ss = pd.read_csv(tmp_path / "rep" / "tables" / "shot_sensitivity.csv")
    assert set(ss["seeds"]) == {"1, 2, 1234"}
    # the paper's release names no shot set: nothing is filled in
    release = synthetic_study(tmp_path / "r", samples=False)
    assert sa.fill_default_shot_set(release) is release


def test_no_shot_section_without_the_axes(tmp_path: Path) -> None:
    report = build_report(synthetic_study(tmp_path / "s", formats=("default", "instruct")),
                          tmp_path / "rep")
    text = report.read_text()
    assert SHOTS not in text and COLLAPSE not in text and "Shot sets" not in text
    assert not (tmp_path / "rep" / "plots" / "shot_sensitivity.png").exists()
    # one shot set but 0 and 4 shots: the 0-shot comparison only
    one = shot_study(tmp_path / "one", seeds=(1234,), steps=(1000, 2000))
    text = build_report(one, tmp_path / "rep1").read_text()
    assert f"## {SHOTS}" in text and "0-shot vs k-shot" in text and "**Shot sets.**" not in text


# ============================================================================ end to end
def _samples(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _context_of(sample: dict) -> str:
    args = sample["arguments"]
    first = args["gen_args_0"]["arg_0"] if isinstance(args, dict) else args[0][0]
    return str(first)


@pytest.mark.slow
def test_a_tiny_model_study_with_shot_sets(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``fewshot_seeds: [1234, 1, 2]``, ``shots: [0, 4]``, a base and a fine-tuned variant: the
    report's shot tables equal values computed here from the per-sample files."""
    from amuro_study.runner import collect_records

    config = {
        "name": "shots", "output_dir": str(tmp_path / "out"), "model": str(tiny_model_dir),
        "revisions": [{"revision": "main", "step": 100}], "data": "fixtures", "offline": True,
        "finetune": {"tasks": ["mnli"], "learning_rates": [0.001], "num_train_examples": 16,
                     "max_steps": 2, "max_length": 256},
        "eval": {"sets": [{"name": "mnli_matched", "formats": ["default", "instruct"]}, "rte"],
                 "shots": [0, 4], "fewshot_seeds": [1234, 1, 2], "limit": 12},
        "backend": {"dtype": "float32"},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "amuro_study.cli", "study", "run", str(path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = build_plan(parse_config(config))
    assert len(plan.base_evals) == len(plan.finetuned_evals) == 4
    records = collect_records(plan)
    assert len(records) == 2 * 4 * 3  # variants x shot sets (0-shot once) x tasks

    # per (variant, set, format, shots, seed): accuracy and predictions from the files alone
    acc: dict[tuple, float] = {}
    majority: dict[tuple, float] = {}
    contexts: dict[tuple, list[str]] = defaultdict(list)
    for rec in records:
        samples = sorted(_samples(rec.samples_path), key=lambda s: s["doc_id"])
        assert len(samples) == 12
        key = (rec.finetune or "base", rec.eval_set, rec.format, rec.shots, rec.fewshot_seed)
        assert rec.fewshot_seed == (None if rec.shots == 0 else key[4])
        assert rec.shot_sampling == (None if rec.shots == 0 else "fixed")
        acc[key] = sum(float(s["acc"]) for s in samples) / len(samples)
        assert rec.value == pytest.approx(acc[key], abs=1e-12)
        preds = []
        for s in samples:
            lls = [float(r[0]) for r in s["filtered_resps"]]
            preds.append(lls.index(max(lls)))
        majority[key] = Counter(preds).most_common(1)[0][1] / len(preds)
        contexts[key] = [_context_of(s) for s in samples]
    # the shot sets really differ: other shots before the same documents; no shots at 0
    for variant in ("base", "mnli"):
        ctx = [contexts[(variant, "mnli_matched", "default", 4, s)] for s in (1234, 1, 2)]
        heads = [{c.split("\n\n")[0] for c in cs} for cs in ctx]
        assert all(len(h) == 1 for h in heads) and len(set.union(*heads)) == 3  # fixed shots
        assert all(c.count("\n\n") == 4 for c in ctx[0])
        assert all("\n\n" not in c for c in contexts[(variant, "mnli_matched", "default", 0,
                                                       None)])

    tables = plan.report_dir() / "tables"
    text = (plan.report_dir() / "report.md").read_text()
    assert f"## {SHOTS}" in text
    assert (plan.report_dir() / "plots" / "shot_sensitivity.png").is_file()
    ss = pd.read_csv(tables / "shot_sensitivity.csv")
    assert len(ss) == 2 * 3  # variants x (mnli default, mnli instruct, rte default)
    for row in ss.to_dict("records"):
        vals = [acc[(row["variant"], row["eval_set"], row["format"], 4, s)] for s in (1234, 1, 2)]
        mean = sum(vals) / 3
        assert row["range"] == pytest.approx(max(vals) - min(vals), abs=1e-12)
        assert row["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals) / 3),
                                           abs=1e-12)
    dec = pd.read_csv(tables / "shot_format_decomposition.csv")
    assert list(dec["eval_set"]) == ["mnli_matched", "mnli_matched"]  # rte: one format
    for row in dec.to_dict("records"):
        y = [[acc[(row["variant"], "mnli_matched", f, 4, s)] for s in (1, 2, 1234)]
             for f in ("default", "instruct")]
        for key, value in _hand_decomposition(y).items():
            assert row[key] == pytest.approx(value, abs=1e-12), key
    zk = pd.read_csv(tables / "zero_vs_few_shot.csv")
    assert len(zk) == 2 * 3
    for row in zk.to_dict("records"):
        few = [acc[(row["variant"], row["eval_set"], row["format"], 4, s)] for s in (1234, 1, 2)]
        zero = acc[(row["variant"], row["eval_set"], row["format"], 0, None)]
        assert row["zero_shot"] == pytest.approx(zero, abs=1e-12)
        assert row["difference"] == pytest.approx(sum(few) / 3 - zero, abs=1e-12)
    lc = pd.read_csv(tables / "label_collapse.csv")
    assert len(lc) == len(records)  # every file shows a label set (NLI, RTE)
    for row in lc.to_dict("records"):
        seed = None if pd.isna(row["fewshot_seed"]) else int(row["fewshot_seed"])
        key = (row["variant"], row["eval_set"], row["format"], row["shots"], seed)
        assert row["majority_share"] == pytest.approx(majority[key], abs=1e-12)
        assert bool(row["collapsed"]) == (majority[key] >= 0.95)  # 12 documents >= 10


def _zeroed_head(src: Path, dst: Path) -> Path:
    """A copy of the tiny model whose output layer is all zeros: every next token is equally
    likely, so a label's log-likelihood is -(its tokens) x log(vocabulary) on every document."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dst)
    model = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    model.save_pretrained(dst)
    return dst


@pytest.mark.slow
def test_a_planted_collapsed_model_is_flagged(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from amuro_study.cli import write_report
    from amuro_study.runner import DONE, collect_records, execute_unit

    root = tmp_path / "model"
    shutil.copytree(tiny_model_dir, root / "step1")
    _zeroed_head(tiny_model_dir, root / "step2")
    config = {"output_dir": str(tmp_path / "out"), "model": str(root),
              "revisions": ["step1", "step2"], "data": "fixtures",
              "eval": {"sets": ["mnli_matched"], "shots": [4], "limit": 20},
              "backend": {"device": "cpu", "dtype": "float32"}}
    plan = build_plan(parse_config(config))
    for unit in plan.base_evals:
        outcome = execute_unit(plan, unit.uid)
        assert outcome.status == DONE, outcome.error
    report = write_report(plan)
    lc = pd.read_csv(report.parent / "tables" / "label_collapse.csv")
    collapsed = lc.set_index("step")
    assert bool(collapsed.loc[2, "collapsed"]) and collapsed.loc[2, "majority_share"] == 1.0
    # the label it gives is the one with the fewest tokens (the first of those on a tie)
    tok = AutoTokenizer.from_pretrained(root / "step2")
    lengths = [len(tok(" " + lab, add_special_tokens=False)["input_ids"]) for lab in LABELS]
    assert collapsed.loc[2, "majority_label"] == LABELS[lengths.index(min(lengths))]
    # from the file, independently: one label for all 20 documents
    rec = next(r for r in collect_records(plan) if r.step == 2)
    preds = {lls.index(max(lls)) for lls in (
        [float(x[0]) for x in s["filtered_resps"]] for s in _samples(rec.samples_path))}
    assert len(preds) == 1
    text = report.read_text()
    summary = text[:text.index("## Contents")]
    assert "### Label collapse" in summary and f"## {COLLAPSE}" in text
    assert "Red crosses: label collapse" in text
    perf = pd.read_csv(report.parent / "tables" / "performance.csv")
    assert perf.set_index("step")["collapsed"].astype(bool).to_dict() == {
        1: bool(collapsed.loc[1, "collapsed"]), 2: True}
