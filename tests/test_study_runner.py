"""Runner, store and executors with stand-in unit bodies (fast: no model is trained).

The unit bodies (pre-train, fine-tune, evaluate) are replaced by small functions so that the
bookkeeping around them -- skip what is done, redo what is half done, record failures, block
dependents, exit status -- is tested on its own; the slow end-to-end tests run the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from amuro_study import runner
from amuro_study.cli import main
from amuro_study.config import parse_config
from amuro_study.evaluate import results_to_records
from amuro_study.executors import LocalExecutor, SlurmExecutor
from amuro_study.plan import EvalUnit, FinetuneUnit, Plan, build_plan
from amuro_study.runner import BLOCKED, DONE, FAILED, SKIPPED, execute_unit, run_study
from amuro_study.store import ResultStore

CONFIG = {
    "model": "allenai/OLMo-1B-hf",
    "revisions": ["step1000-tokens4B", "step2000-tokens8B"],
    "data": "fixtures",
    "finetune": {"tasks": ["mnli", "xsum"]},
    "eval": {"sets": ["mnli_matched", "xsum"], "shots": [4]},
}


class FakeBodies:
    """Stand-in unit bodies that count calls; ``fail`` makes chosen fine-tunes raise."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or set()
        self.exit: set[str] = set()

    def finetune(self, plan: Plan, unit: FinetuneUnit) -> dict[str, Any]:
        self.calls.append(unit.uid)
        if unit.task in self.fail:
            raise RuntimeError(f"loss exploded on {unit.task}")
        if unit.task in self.exit:
            raise SystemExit(f"a library called sys.exit on {unit.task}")
        return {"model_dir": "model"}

    def evaluate(self, plan: Plan, unit: EvalUnit) -> dict[str, Any]:
        self.calls.append(unit.uid)
        records = []
        for task in unit.tasks:
            value = 0.5 if unit.finetune is None else 0.75
            records.append({"model": unit.checkpoint.model, "revision": unit.checkpoint.revision,
                            "step": unit.checkpoint.step, "eval_set": task.eval_set,
                            "format": task.format, "shots": unit.shots, "metric": "acc",
                            "value": value,
                            "finetune": unit.finetune.task if unit.finetune else None})
        return {"records": records}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBodies:
    # `amuro study run` quiets the libraries' loggers for good; not inside the test session
    monkeypatch.setattr("amuro_study.cli.quiet_libraries", lambda: None)
    bodies = FakeBodies()
    monkeypatch.setitem(runner._BODIES, "finetune", bodies.finetune)
    monkeypatch.setitem(runner._BODIES, "eval", bodies.evaluate)
    return bodies


def make_plan(tmp_path: Path) -> Plan:
    return build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "study")}))


def result_files(plan: Plan) -> list[Path]:
    return sorted((plan.output_dir / "units").rglob("result.json"))


def test_run_then_rerun_skips_everything(tmp_path: Path, fake: FakeBodies) -> None:
    plan = make_plan(tmp_path)
    summary = run_study(plan, LocalExecutor())
    assert summary.ok and len(summary.by_status(DONE)) == len(plan.units()) == 10
    assert len(result_files(plan)) == 10
    before = {p: p.read_bytes() for p in result_files(plan)}
    assert sorted(fake.calls) == sorted(plan.units())
    fake.calls.clear()
    again = run_study(plan, LocalExecutor())
    assert fake.calls == [] and len(again.by_status(SKIPPED)) == 10
    assert {p: p.read_bytes() for p in result_files(plan)} == before
    # identity is written next to the result, as JSON
    unit = plan.finetunes[0]
    identity = json.loads((plan.unit_dir(unit.uid) / "unit.json").read_text())
    assert identity["recipe"]["task"] == unit.task
    assert identity["base"]["revision"] == "step1000-tokens4B"
    assert identity["recipe"] == unit.recipe  # the unit is its recipe's identity
    records = runner.collect_records(plan)
    assert len(records) == 6 * 2  # 6 evaluation units x 2 sets


def test_half_done_unit_is_cleared_and_redone(tmp_path: Path, fake: FakeBodies) -> None:
    plan = make_plan(tmp_path)
    unit = plan.base_evals[0]
    store = runner.store_of(plan)
    # what a run killed mid-evaluation leaves: samples and a temp file, no result
    folder = plan.unit_dir(unit.uid)
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "amuro_xsum_default.jsonl").write_text('{"partial": true}\n')
    (folder / ".result.json.abc.tmp").write_text("{")
    assert not store.is_done(unit.uid)
    outcome = execute_unit(plan, unit.uid)
    assert outcome.status == DONE and store.is_done(unit.uid)
    assert not (folder / "samples").exists() and not list(folder.glob("*.tmp"))
    assert execute_unit(plan, unit.uid).status == SKIPPED
    assert fake.calls == [unit.uid]


def test_a_library_calling_sys_exit_fails_its_unit_not_the_study(tmp_path: Path,
                                                                   fake: FakeBodies) -> None:
    fake.exit = {"mnli"}
    plan = make_plan(tmp_path)
    summary = run_study(plan, LocalExecutor())
    failed = summary.by_status(FAILED)
    assert failed and all("mnli" in o.description for o in failed)
    assert len(summary.by_status(DONE)) + len(summary.by_status(BLOCKED)) + len(failed) == 10
    error = runner.store_of(plan).read_error(failed[0].uid)
    assert "SystemExit: a library called sys.exit on mnli" in error["error"]


def test_failed_unit_is_recorded_and_study_goes_on(tmp_path: Path, fake: FakeBodies) -> None:
    fake.fail = {"xsum"}
    plan = make_plan(tmp_path)
    summary = run_study(plan, LocalExecutor())
    failed = summary.by_status(FAILED)
    blocked = summary.by_status(BLOCKED)
    assert len(failed) == 2 and all("xsum" in o.description for o in failed)
    assert len(blocked) == 2  # the evaluations of the failed fine-tunes
    assert len(summary.by_status(DONE)) == 10 - 4 and not summary.ok
    store = runner.store_of(plan)
    for outcome in failed:
        error = store.read_error(outcome.uid)
        assert "loss exploded on xsum" in error["error"] and "Traceback" in error["traceback"]
        assert not store.is_done(outcome.uid)
    # fixed: the re-run does only the four missing units and clears the error records
    fake.fail, fake.calls = set(), []
    summary = run_study(plan, LocalExecutor())
    assert summary.ok and len(fake.calls) == 4
    assert all(store.read_error(o.uid) is None for o in failed)


def test_cli_exit_status_and_failure_report(tmp_path: Path, fake: FakeBodies,
                                            capsys: pytest.CaptureFixture) -> None:
    fake.fail = {"mnli"}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / "study")}))
    assert main(["study", "run", str(path), "--no-report"]) == 1
    out = capsys.readouterr().out
    assert "2 failed, 2 blocked" in out and "FAILED" in out and "loss exploded on mnli" in out
    fake.fail = set()
    assert main(["study", "run", str(path), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "4 run now, 6 already done, 0 failed, 0 blocked" in out
    assert main(["study", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("  done  ") == 10 and "todo" not in out
    assert "measured here so far" in out


def test_slurm_executor_runs_the_same_units(tmp_path: Path, fake: FakeBodies) -> None:
    """submitit's 'debug' cluster runs the submitted jobs in-process: no SLURM needed."""
    plan = make_plan(tmp_path)
    executor = SlurmExecutor(tmp_path / "slurm", cluster="debug", poll_s=0.01)
    summary = run_study(plan, executor)
    assert summary.ok and len(summary.by_status(DONE)) == 10
    assert len(result_files(plan)) == 10


def test_slurm_executor_needs_submitit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_submitit(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "submitit":
            raise ImportError("no submitit")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    with pytest.raises(RuntimeError, match="pip install 'amuro\\[slurm\\]'"):
        SlurmExecutor(tmp_path)


def test_store_claim_and_atomic_result(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    with store.claim("eval-x"):
        store.write_result("eval-x", {"uid": "eval-x", "value": 1})
    assert store.is_done("eval-x") and store.read_result("eval-x")["value"] == 1
    assert store.done_ids() == {"eval-x"}  # read from the result, not from the folder name
    assert ResultStore(tmp_path, {"eval-x": "base-eval/x_eval-x"}).done_ids() == set()
    assert not list((tmp_path / "units" / "eval-x").glob("*.tmp"))


def test_results_to_records_reads_lm_eval_output(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    unit = plan.finetuned_evals[0]
    results = {"results": {
        "amuro_mnli_matched_default": {"alias": "x", "acc,none": 0.25, "acc_stderr,none": 0.1,
                                       "sample_len": 4},
        "amuro_xsum_default": {"rougeL,none": 0.125, "rougeL_stderr,none": "N/A"},
    }}
    records = results_to_records(unit, results, commit="abc",
                                 samples_paths={"amuro_xsum_default": "samples/x.jsonl"})
    assert [(r.eval_set, r.format, r.metric, r.value, r.stderr) for r in records] == [
        ("mnli_matched", "default", "acc", 0.25, 0.1),
        ("xsum", "default", "rougeL", 0.125, None)]
    first = records[0]
    assert (first.finetune, first.learning_rate, first.seed, first.epochs) == (
        unit.finetune.task, unit.finetune.learning_rate, 42, 3)
    assert (first.revision, first.step, first.commit, first.shots) == (
        "step1000-tokens4B", 1000, "abc", 4)
    assert records[1].samples_path == "samples/x.jsonl"
    with pytest.raises(RuntimeError, match="no result for amuro_mnli_matched_default"):
        results_to_records(unit, {"results": {}}, commit=None)


def test_plan_json_lists_units_and_cost(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / "study")}))
    assert main(["study", "plan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["stages"]) == ["base-eval", "finetune", "finetuned-eval"]
    assert len(data["units"]) == 10 and data["cost"]["model_loads"] == 6
    ft = data["units"][data["stages"]["finetune"][0]]
    assert ft["kind"] == "finetune" and ft["base"]["revision"] == "step1000-tokens4B"
    assert not (tmp_path / "study").exists()  # planning writes nothing


def test_report_paper_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = Path(__file__).resolve().parent / "data" / "paper_results"
    assert main(["study", "report", "--paper", str(tmp_path / "paper"),
                 "--results", str(results)]) == 0
    assert f"report: {tmp_path / 'paper' / 'report.md'}" in capsys.readouterr().out
    assert (tmp_path / "paper" / "tables" / "performance.csv").is_file()
    assert main(["study", "report"]) == 2
    assert main(["study", "report", "--paper", str(tmp_path / "p2"),
                 "--results", str(tmp_path)]) == 2
    assert f"are not in {tmp_path}; pass --results DIR" in capsys.readouterr().err


def _die_on_one_unit(plan: Plan, uid: str) -> runner.UnitOutcome:
    """Runs in a spawned worker: the unit named by $AMURO_TEST_KILLER dies like an OOM kill."""
    import os
    import time

    if uid == os.environ["AMURO_TEST_KILLER"]:
        os._exit(137)
    time.sleep(0.3)
    return runner.UnitOutcome(uid, DONE, "fine")


def test_a_worker_killed_mid_stage_fails_only_its_own_unit(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead worker breaks every unit still queued in the process pool; those are re-run one
    per process, so the other units finish and only the killer fails, with an error.json."""
    plan = make_plan(tmp_path)
    uids = [u.uid for u in plan.base_evals] + [u.uid for u in plan.finetunes]
    assert len(uids) >= 4
    monkeypatch.setenv("AMURO_TEST_KILLER", uids[0])
    monkeypatch.setattr("amuro_study.executors.execute_unit", _die_on_one_unit)
    seen: list[runner.UnitOutcome] = []
    outcomes = LocalExecutor(workers=2).map(plan, uids, seen.append)
    status = {o.uid: o.status for o in outcomes}
    assert sorted(status) == sorted(uids) and [o.uid for o in seen] == [o.uid for o in outcomes]
    assert status[uids[0]] == FAILED
    assert all(status[u] == DONE for u in uids[1:])
    error = runner.store_of(plan).read_error(uids[0])
    assert error is not None and "worker process died" in error["error"]
