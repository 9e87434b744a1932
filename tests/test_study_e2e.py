"""End to end, offline: pre-train a tiny model, fine-tune its checkpoints, evaluate, report.

Both tests run the real ``amuro study run`` command (a subprocess) on a small demo grid:

* the report's tables are checked against values recomputed here from the raw per-sample
  files that lm-eval wrote for each unit;
* a second run is killed with SIGKILL mid-way, re-run, and must end with exactly one result per
  unit, the results finished before the kill untouched, and the same numbers as the clean run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from amuro_study.config import load_config
from amuro_study.plan import Plan, build_plan

pytestmark = pytest.mark.slow

GRID = {
    "name": "e2e",
    "data": "fixtures",
    "offline": True,
    "pretrain": {"save_steps": [5, 15, 30], "hidden_size": 32, "block_size": 64,
                 "batch_size": 8, "learning_rate": 0.003, "seed": 0},
    "finetune": {"tasks": ["mnli"], "learning_rates": [0.001], "num_train_examples": 24,
                 "max_steps": 4, "max_length": 512},
    "eval": {"sets": [{"name": "mnli_matched", "formats": ["default", "instruct"]}, "rte",
                      "xsum"],
             "shots": [4], "limit": 3},
    "backend": {"dtype": "float32"},
}
METRIC = {"mnli_matched": "acc", "rte": "acc", "xsum": "rougeL"}


def write_config(folder: Path) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({**GRID, "output_dir": str(folder / "out")}))
    return path


def amuro(*args: str) -> list[str]:
    return [sys.executable, "-m", "amuro_study.cli", *args]


def plan_of(config: Path) -> Plan:
    return build_plan(load_config(config))


def sample_means(plan: Plan) -> dict[tuple[str, str, str], float]:
    """(unit id, eval set, format) -> mean per-sample metric, read from the raw jsonl files."""
    out = {}
    for unit in (*plan.base_evals, *plan.finetuned_evals):
        result = json.loads((plan.unit_dir(unit.uid) / "result.json").read_text())
        samples = result["lm_eval"]["output"]["samples"]  # lm-eval's own samples_<task>_*.jsonl
        for task in unit.tasks:
            path = plan.unit_dir(unit.uid) / samples[task.task_name]
            assert path.parent.name == "lm_eval" and path.name.startswith(
                f"samples_{task.task_name}_")
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert len(rows) == GRID["eval"]["limit"]
            values = [float(r[METRIC[task.eval_set]]) for r in rows]
            out[(unit.uid, task.eval_set, task.format)] = sum(values) / len(values)
    return out


def unit_records(plan: Plan) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {}
    for unit in (*plan.base_evals, *plan.finetuned_evals):
        result = json.loads((plan.unit_dir(unit.uid) / "result.json").read_text())
        for r in result["records"]:
            out[(unit.uid, r["eval_set"], r["format"], r["metric"])] = r
    return out


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("study-clean")
    config = write_config(folder)
    proc = subprocess.run(amuro("study", "run", str(config)), capture_output=True, text=True,
                          timeout=600, cwd=folder)  # not a git checkout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # lm-eval asks git for the working folder's commit: no "fatal: not a git repository"
    assert "fatal" not in proc.stdout + proc.stderr
    return config, proc.stdout


def test_demo_grid_report_matches_raw_results(clean_run: tuple[Path, str]) -> None:
    config, stdout = clean_run
    plan = plan_of(config)
    for title in ("pre-train tiny model", "evaluate base checkpoints", "fine-tune checkpoints",
                  "evaluate fine-tuned models"):
        assert title in stdout
    report = plan.output_dir / "report" / "report.md"
    assert f"report: {report}" in stdout and report.is_file()

    # checkpoints are real pre-training checkpoints: different weights, step in the identity
    pretrain = json.loads((plan.unit_dir(plan.pretrain.uid) / "result.json").read_text())
    assert [c["step"] for c in pretrain["checkpoints"]] == [5, 15, 30]
    commits = [c["commit"] for c in pretrain["checkpoints"]]
    assert len(set(commits)) == 3
    losses = [c["train_loss"] for c in pretrain["checkpoints"]]
    assert losses[2] < losses[0]

    # each unit's log holds the libraries' log lines, not progress-bar redraws
    for unit in (plan.pretrain, plan.finetunes[0], plan.base_evals[0]):
        log = (plan.unit_dir(unit.uid) / "log.txt").read_text()
        assert "\r" not in log and "it/s]" not in log, log[-2000:]
        assert " INFO " in log
    assert " INFO lm_eval." in (plan.unit_dir(plan.base_evals[0].uid) / "log.txt").read_text()
    assert " INFO transformers.trainer" in (plan.unit_dir(plan.finetunes[0].uid)
                                             / "log.txt").read_text()
    # lm-eval's own results file, as `lm_eval --output_path` writes it
    result = json.loads((plan.unit_dir(plan.base_evals[0].uid) / "result.json").read_text())
    lm_eval_results = json.loads((plan.unit_dir(plan.base_evals[0].uid)
                                  / result["lm_eval"]["output"]["results_file"]).read_text())
    assert {"results", "configs", "versions", "n-shot", "config"} <= set(lm_eval_results)
    assert set(lm_eval_results["results"]) == {t.task_name for t in plan.base_evals[0].tasks}

    means = sample_means(plan)
    records = unit_records(plan)
    # every record's value is the mean of its per-sample file; exactly one per task and metric
    assert len(records) == len(means) == 6 * 4
    for (uid, eval_set, fmt, _metric), rec in records.items():
        assert rec["value"] == pytest.approx(means[(uid, eval_set, fmt)], abs=1e-12)
        assert rec["commit"] == commits[[5, 15, 30].index(rec["step"])]

    # expected tables, computed here from the samples and the typed unit identities
    base = {u.checkpoint.step: u.uid for u in plan.base_evals}
    tuned = {u.checkpoint.step: u.uid for u in plan.finetuned_evals}
    tables = plan.output_dir / "report" / "tables"
    perf = pd.read_csv(tables / "performance.csv")
    assert len(perf) == 2 * 3 * 3  # default format: (base, mnli) x 3 checkpoints x 3 sets
    for row in perf.itertuples():
        uid = base[row.step] if row.variant == "base" else tuned[row.step]
        assert row.value == pytest.approx(means[(uid, row.eval_set, "default")], abs=1e-9)

    gain = pd.read_csv(tables / "gain_ci.csv")
    assert set(gain["eval_set"]) == {"mnli_matched"} and len(gain) == 3
    for row in gain.itertuples():
        b = means[(base[row.checkpoint], "mnli_matched", "default")]
        t = means[(tuned[row.checkpoint], "mnli_matched", "default")]
        assert (row.base, row.tuned) == (pytest.approx(b), pytest.approx(t))
        assert row.raw_change == pytest.approx(t - b, abs=1e-9)

    ood = pd.read_csv(tables / "ood_change.csv").set_index("finetune")
    changes = [means[(tuned[s], "rte", "default")] - means[(base[s], "rte", "default")]
               for s in (5, 15, 30)]
    assert ood.loc["mnli", "n_cells"] == 3
    assert ood.loc["mnli", "mean_raw_change"] == pytest.approx(sum(changes) / 3, abs=1e-9)

    fs = pd.read_csv(tables / "format_sensitivity.csv")
    assert set(fs["eval_set"]) == {"mnli_matched"} and len(fs) == 6
    for row in fs.itertuples():
        uid = base[row.step] if row.variant == "base" else tuned[row.step]
        d = means[(uid, "mnli_matched", "default")]
        i = means[(uid, "mnli_matched", "instruct")]
        assert (row.default, row.instruct) == (pytest.approx(d), pytest.approx(i))
        assert row.range == pytest.approx(abs(d - i), abs=1e-9)


def test_sigkill_mid_run_then_rerun_gives_one_identical_result_per_unit(
    clean_run: tuple[Path, str], tmp_path: Path,
) -> None:
    clean_plan = plan_of(clean_run[0])
    config = write_config(tmp_path)
    plan = plan_of(config)
    assert set(plan.units()) == set(clean_plan.units())  # ids do not depend on the folder
    units_dir = plan.output_dir / "units"
    proc = subprocess.Popen(amuro("study", "run", str(config)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if any(units_dir.glob("finetune/*/result.json")):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in units_dir.rglob("result.json")}
    assert 0 < len(finished) < len(plan.units())

    rerun = subprocess.run(amuro("study", "run", str(config)), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{len(finished)} already done" in rerun.stdout

    results = list(units_dir.rglob("result.json"))
    per_unit = defaultdict(int)
    for path in results:
        per_unit[json.loads(path.read_text())["uid"]] += 1
    assert set(per_unit) == set(plan.units()) and set(per_unit.values()) == {1}
    assert not [p for p in units_dir.rglob("*") if p.name.endswith(".tmp")]
    for path, (data, mtime) in finished.items():  # never rewritten
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime

    got, want = unit_records(plan), unit_records(clean_plan)
    assert got.keys() == want.keys()
    for key, rec in got.items():
        for field in ("value", "stderr", "commit", "step", "finetune", "learning_rate"):
            assert rec[field] == want[key][field], (key, field)


def test_multi_process_finetune_goes_through_accelerate_launch(
    tiny_model_dir: Path, tmp_path: Path,
) -> None:
    """backend.num_gpus > 1: the fine-tune runs as `accelerate launch -m amuro_sft.cli --config
    <unit>/recipe.yaml` (here 2 CPU processes with gloo; one per GPU on a GPU machine) and the
    unit is done as usual. The recipe reaches the workers whole: val_examples, an option the
    study could not set before, holds out 4 rows in the run the workers trained."""
    import yaml as _yaml

    from amuro_study.config import parse_config
    from amuro_study.runner import DONE, RECIPE_FILE, execute_unit

    config = parse_config({
        "output_dir": str(tmp_path / "out"), "model": str(tiny_model_dir),
        "revisions": [{"revision": "main", "step": 0}],
        "data": "fixtures", "offline": True,
        "finetune": {"tasks": ["mnli"], "learning_rates": [0.001], "num_train_examples": 16,
                     "max_steps": 2, "max_length": 256, "val_examples": 4},
        "eval": {"sets": ["rte"], "limit": 2},
        "backend": {"num_gpus": 2, "per_device_batch_size": 8},
    })
    plan = build_plan(config)
    unit = plan.finetunes[0]
    outcome = execute_unit(plan, unit.uid)
    assert outcome.status == DONE, outcome.error
    recipe = _yaml.safe_load((plan.unit_dir(unit.uid) / RECIPE_FILE).read_text())
    assert recipe["val_examples"] == 4 and recipe["task"] == "mnli"
    run = json.loads((plan.finetuned_model_dir(unit) / "amuro_run.json").read_text())
    assert run["hardware"]["world_size"] == 2
    hp = run["hyperparameters"]  # 2 processes x 4 examples x 1 step = 8 per optimizer step
    assert (hp["per_device_batch_size"], hp["gradient_accumulation_steps"]) == (4, 1)
    assert run["data"]["num_validation_examples"] == 4
    # the run's identity is the unit's recipe (plus the base checkpoint's fingerprint)
    assert {k: v for k, v in run["identity"].items()
            if k not in ("model_name_or_path", "model_revision", "base_commit_sha")} \
        == dict(unit.recipe)


def test_study_evaluation_with_the_papers_first_token_scoring(tiny_model_dir: Path,
                                                              tmp_path: Path) -> None:
    """eval.scoring: first_token through lm-eval's Python API (the study's path): the tasks
    get the model's tokenizer from the task manager's metadata, and the unit scores exactly
    what the lm_eval command line scores with --metadata '{"amuro_scoring": "first_token"}'."""
    from amuro_study.config import BackendSpec
    from amuro_study.evaluate import evaluate_unit
    from amuro_study.plan import Checkpoint, EvalTask, EvalUnit

    unit = EvalUnit(Checkpoint(str(tiny_model_dir), None, 0), None,
                    (EvalTask("rte", "default"), EvalTask("mnli_matched", "default")), 4, 6,
                    "first_token", "fixtures", "hf", "float32")
    records, _ = evaluate_unit(unit, str(tiny_model_dir), None, tmp_path / "unit",
                               BackendSpec(dtype="float32", batch_size=4))
    got = {r.eval_set: r.value for r in records if r.metric == "acc"}
    cli = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
         f"pretrained={tiny_model_dir},dtype=float32", "--tasks",
         "amuro_rte_default,amuro_mnli_matched_default", "--limit", "6", "--device", "cpu",
         "--batch_size", "4", "--include_path", _include_path(),
         "--metadata", json.dumps({"amuro_scoring": "first_token", "amuro_data": "fixtures"}),
         "--output_path", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    out = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())
    assert got == {s: out["results"][f"amuro_{s}_default"]["acc,none"]
                   for s in ("rte", "mnli_matched")}


def _include_path() -> str:
    import amuro_tasks

    return amuro_tasks.include_path()


def test_instruction_tuning_arm_gives_the_pretraining_group_of_table5(tiny_model_dir: Path,
                                                                       tmp_path: Path) -> None:
    """A study with finetune.tasks: [tulu]: a real TULU fine-tune (fixtures), base and tuned
    scores on ARC-Easy and BoolQ, and Table 5's two columns computed from them by hand."""
    from amuro_study import analysis as an
    from amuro_study.config import parse_config
    from amuro_study.executors import LocalExecutor
    from amuro_study.records import to_frame
    from amuro_study.runner import collect_records, run_study

    config = parse_config({
        "output_dir": str(tmp_path / "out"), "model": str(tiny_model_dir),
        "revisions": [{"revision": "main", "step": 0}], "data": "fixtures", "offline": True,
        "finetune": {"tasks": ["tulu"], "learning_rates": [0.01], "num_train_examples": 16,
                     "max_steps": 4, "max_length": 512},
        "eval": {"sets": ["arc_easy", "boolq"], "limit": 12},
        "backend": {"dtype": "float32"},
    })
    plan = build_plan(config)
    summary = run_study(plan, LocalExecutor())
    assert summary.ok, [o.error for o in summary.outcomes if o.error]
    df = to_frame(collect_records(plan))
    acc = {(r.eval_set, r.finetune): r.value for r in df.itertuples() if r.metric == "acc"}
    assert set(acc) == {("arc_easy", None), ("boolq", None), ("arc_easy", "tulu"),
                        ("boolq", "tulu")}
    t5 = an.table5(an.select(df), release_quirks=False)
    # the fine-tune moved the model (deterministic on CPU), so the check below is not 0 == 0
    assert acc["arc_easy", "tulu"] != acc["arc_easy", None]
    assert t5.loc["main", an.PRETRAINING_GROUP] == pytest.approx(
        acc["arc_easy", "tulu"] - acc["arc_easy", None])
    assert t5.loc["main", an.FINETUNING_GROUP] == pytest.approx(
        acc["boolq", "tulu"] - acc["boolq", None])
    run = json.loads((plan.finetuned_model_dir(plan.finetunes[0]) / "amuro_run.json").read_text())
    assert run["task"] == "tulu" and run["global_steps"] == 4
    assert run["hyperparameters"]["assistant_only_loss"] is True
