"""The study on a real SLURM cluster: a single-node slurmctld + slurmd on this machine.

The ``slurm_cluster`` fixture (``tests/conftest.py``, ``tests/slurm_cluster.py``) installs and
starts the cluster, without accounting (``sacct`` fails, as on many clusters); every test here
is skipped, with the reason, where that cannot be done. The jobs are real ``sbatch`` jobs that
run ``srun python -m submitit.core._submit`` in their own processes, signalled, cancelled,
requeued and preempted by the real daemons.

* the reduced demo grid through the SLURM executor gives the local executor's results, and
  the missing accounting is said once, in one line;
* a job cancelled mid-run (``scancel``) is recorded failed with SLURM's reason, the study goes
  on, and a rerun completes the unit; a unit with nothing to checkpoint that gets the preemption
  signal is requeued and redone; a job at its time limit is recorded as timed out;
* a fine-tune preempted by a higher-priority job (SLURM sends the job's ``--signal``) saves a
  checkpoint, requeues itself and resumes from it, ending with the weights of a run that was
  never interrupted;
* ``workers: 2`` runs units at once, and two runners on the same units still produce exactly
  one result per unit.

Jobs that must misbehave (sleep until cancelled, time out) run stand-in unit bodies, shipped to
the job by value with cloudpickle; everything else runs the real units.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from amuro_study import slurm_jobs
from amuro_study.config import parse_config
from amuro_study.executors import LocalExecutor, SlurmExecutor, make_executor
from amuro_study.plan import Plan, build_plan
from amuro_study.runner import DONE, FAILED, SKIPPED, collect_records, run_study

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SLURM = {"partition": "debug", "timeout_min": 10, "gpus_per_node": 0, "cpus_per_task": 1,
         "mem_gb": 1}
"""``backend.slurm`` of these tests: a CPU node, one core per job (two jobs at once here)."""


def demo_config(output_dir: Path) -> dict[str, Any]:
    """examples/demo.yaml with fewer checkpoints, tasks, rows and steps."""
    config = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    config["output_dir"] = str(output_dir)
    del config["pretrain"]["world"]  # its path (in every unit's identity) is in output_dir
    config["data"] = "fixtures"
    config["pretrain"]["save_steps"] = [5, 15]
    config["finetune"].update(tasks=["mnli"], learning_rates={"mnli": [0.001]},
                              num_train_examples=16, max_steps=3)
    config["eval"].update(sets=[{"name": "mnli_matched", "formats": ["default", "instruct"]},
                                "rte"], limit=3)
    return config


def slurm_executor(plan: Plan, **kwargs: Any) -> SlurmExecutor:
    return SlurmExecutor(plan.output_dir / "slurm", plan.config.backend.slurm, cluster="slurm",
                         poll_s=1.0, **kwargs)


@pytest.fixture
def fresh_sacct_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget whether this process already found sacct missing (checked once per process)."""
    monkeypatch.setattr(slurm_jobs, "_SACCT_WORKS", None)


def records_by_key(plan: Plan) -> dict[tuple, float]:
    return {(r.step, r.finetune, r.eval_set, r.format, r.metric): r.value
            for r in collect_records(plan)}


def test_demo_grid_on_slurm_equals_local(slurm_cluster, tmp_path: Path, fresh_sacct_check,
                                         caplog: pytest.LogCaptureFixture) -> None:
    local = build_plan(parse_config(demo_config(tmp_path / "local")))
    config = demo_config(tmp_path / "slurm")
    config["backend"].update(executor="slurm", slurm=SLURM)
    on_slurm = build_plan(parse_config(config))
    assert local.units().keys() == on_slurm.units().keys()  # same units, same ids

    caplog.set_level(logging.INFO)
    start = time.perf_counter()
    summary = run_study(on_slurm, slurm_executor(on_slurm))
    slurm_s = time.perf_counter() - start
    assert summary.ok, summary.to_dict()
    assert len(summary.by_status(DONE)) == len(on_slurm.units()) == 7
    # the jobs ran on the cluster: submitit's job files, one log per job
    assert len(list((on_slurm.output_dir / "slurm").glob("*_log.out"))) == 7

    # no accounting on this cluster: said once, in one line; not submitit's warning per poll
    sacct_lines = [r.getMessage() for r in caplog.records if "sacct" in r.getMessage()]
    assert len(sacct_lines) == 1 and "\n" not in sacct_lines[0], sacct_lines
    assert "accounting is unavailable" in sacct_lines[0]

    start = time.perf_counter()
    assert run_study(local, LocalExecutor()).ok
    local_s = time.perf_counter() - start
    print(f"demo grid: {slurm_s:.0f} s on SLURM, {local_s:.0f} s locally")

    expected = records_by_key(local)
    assert len(expected) == 2 * 2 * 3  # checkpoints x (base, fine-tuned) x sets/formats
    assert records_by_key(on_slurm) == expected
    # the fine-tuned weights too, byte for byte
    for unit in local.finetunes:
        mine = local.finetuned_model_dir(unit) / "model.safetensors"
        theirs = on_slurm.finetuned_model_dir(unit) / "model.safetensors"
        assert mine.read_bytes() == theirs.read_bytes()


# --------------------------------------------------------------------------- job faults
STANDIN = {
    "model": "allenai/OLMo-1B-hf",
    "revisions": ["step1000-tokens4B"],
    "data": "fixtures",
    "finetune": {"tasks": ["mnli"]},
    "eval": {"sets": ["mnli_matched"], "shots": [4]},
}
"""A grid run with stand-in bodies: base eval -> fine-tune -> fine-tuned eval, one unit each."""


class StandInJob(slurm_jobs.UnitJob):
    """The real job callable, with stand-in unit bodies (shipped to the job by value).

    Every body call is appended to ``calls.log`` (uid, start, end, pid). A unit in ``hang``
    sleeps (until it is cancelled or signalled) on its first attempt -- or on every attempt
    when ``hang_always`` -- other bodies take ``work_s`` seconds.
    """

    def __init__(self, plan: Plan, uid: str, timeout_min: int, marks: Path,
                 hang: set[str], hang_always: bool = False, work_s: float = 0.0) -> None:
        super().__init__(plan, uid, timeout_min)
        self.marks, self.hang, self.hang_always, self.work_s = marks, hang, hang_always, work_s

    def __call__(self) -> Any:
        from amuro_study import runner

        runner._BODIES.update(eval=self.body, finetune=self.body)
        return super().__call__()

    def body(self, plan: Plan, unit: Any) -> dict[str, Any]:
        import os

        import submitit

        start = time.time()
        first = not (self.marks / f"{unit.uid}.started").exists()
        (self.marks / f"{unit.uid}.started").write_text(submitit.JobEnvironment().job_id)
        if unit.uid in self.hang and (first or self.hang_always):
            time.sleep(600)
        time.sleep(self.work_s)
        with open(self.marks / "calls.log", "a") as fh:
            fh.write(f"{unit.uid} {start} {time.time()} {os.getpid()}\n")
        return {"records": []} if unit.kind == "eval" else {"model_dir": "model"}


def standin_plan(folder: Path, checkpoints: int = 1, **slurm: Any) -> Plan:
    config = copy.deepcopy(STANDIN)
    config.update(output_dir=str(folder / "study"),
                  revisions=[f"step{k}000-tokens{k}B" for k in range(1, checkpoints + 1)],
                  backend={"executor": "slurm", "slurm": {**SLURM, **slurm}})
    return build_plan(parse_config(config))


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Make the SLURM executor submit :class:`StandInJob`; returns a function to configure it."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marks = tmp_path / "marks"
    marks.mkdir()

    def configure(**kwargs: Any) -> Path:
        monkeypatch.setattr(slurm_jobs, "job_for", lambda plan, uid, timeout_min: StandInJob(
            plan, uid, timeout_min, marks, **kwargs))
        return marks

    yield configure
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def calls(marks: Path) -> list[list[str]]:
    path = marks / "calls.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_cancelled_job_is_recorded_preempted_job_redone_and_rerun_completes(
        slurm_cluster, standin, tmp_path: Path) -> None:
    """Two units of a stage hang on their first attempt. One job is cancelled (``scancel``):
    its unit is recorded failed with SLURM's reason and the study goes on. The other gets the
    checkpoint signal as at a preemption (``scancel --signal=USR2``, what submitit's own
    ``job._interrupt()`` sends): nothing to checkpoint, so it is requeued and redone. A rerun
    completes the cancelled unit."""
    # 30 min: a signal within 10 min of a shorter time limit is read as the time limit
    plan = standin_plan(tmp_path, checkpoints=2, timeout_min=30)
    victim, preempted = (u.uid for u in plan.base_evals)
    marks = standin(hang={victim, preempted})
    executor = slurm_executor(plan)

    def job_of(uid: str) -> str:
        started = marks / f"{uid}.started"
        wait_for(lambda: started.exists() and started.read_text(), 120, f"{uid} to start")
        return started.read_text()

    def interrupt() -> None:
        slurm_cluster.run("scancel", job_of(victim))
        slurm_cluster.run("scancel", "--signal=USR2", job_of(preempted))

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    summary = run_study(plan, executor)
    interrupter.join()
    status = {o.uid: o for o in summary.outcomes}
    assert status[victim].status == FAILED
    assert "was cancelled" in status[victim].error and "CANCELLED" in status[victim].error
    error = json.loads((plan.unit_dir(victim) / "error.json").read_text())
    assert "was cancelled" in error["error"]
    assert status[preempted].status == DONE
    log = next((plan.output_dir / "slurm").glob(f"{job_of(preempted)}_0_log.out")).read_text()
    assert "this job is preempted" in log and "Requeued job" in log
    # the study went on: the other stages ran
    later = (*plan.finetunes, *plan.finetuned_evals)
    assert [status[u.uid].status for u in later] == [DONE] * len(later) == [DONE] * 4

    rerun = run_study(plan, executor)
    again = {o.uid: o.status for o in rerun.outcomes}
    assert again[victim] == DONE and rerun.ok
    assert not (plan.unit_dir(victim) / "error.json").exists()
    assert sorted(c[0] for c in calls(marks)) == sorted(plan.units())  # one finished call each


def test_job_at_its_time_limit_is_recorded_timed_out(slurm_cluster, standin,
                                                     tmp_path: Path) -> None:
    plan = standin_plan(tmp_path, timeout_min=1)
    slow = plan.base_evals[0].uid
    standin(hang={slow}, hang_always=True)
    start = time.perf_counter()
    summary = run_study(plan, slurm_executor(plan))
    status = {o.uid: o for o in summary.outcomes}
    assert status[slow].status == FAILED
    assert status[slow].error.startswith("TimeoutError: timed out"), status[slow].error
    assert "backend.slurm.timeout_min=1" in status[slow].error
    error = json.loads((plan.unit_dir(slow) / "error.json").read_text())
    assert error["error"].startswith("TimeoutError: timed out")
    # the study went on (well within the hour the unit asked for)
    assert [status[u.uid].status for u in (*plan.finetunes, *plan.finetuned_evals)] == [DONE] * 2
    assert time.perf_counter() - start < 300


# --------------------------------------------------------------------------- concurrency
def test_workers_run_units_at_once_and_the_lock_keeps_one_result(slurm_cluster, standin,
                                                                 tmp_path: Path) -> None:
    """``workers: 2``: a stage's array runs two units at a time; two runners submitting the
    same units at once still run each body once (the unit lock), the other job skips it."""
    config = copy.deepcopy(STANDIN)
    config.update(output_dir=str(tmp_path / "study"),
                  revisions=[f"step{k}000-tokens{k}B" for k in range(1, 5)],
                  backend={"executor": "slurm", "workers": 2, "slurm": SLURM})
    plan = build_plan(parse_config(config))
    uids = [u.uid for u in plan.base_evals]
    assert len(uids) == 4
    marks = standin(hang=set(), work_s=3.0)

    runners = []
    for _ in range(2):
        executor = make_executor(plan, cluster="slurm")
        assert isinstance(executor, SlurmExecutor) and executor.max_running == 2
        executor.poll_s = 1.0
        runners.append(executor)
    outcomes: list[list] = [[], []]
    threads = [threading.Thread(target=lambda i=i: outcomes[i].extend(
        runners[i].map(plan, uids, lambda o: None))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for uid in uids:  # one runner ran it, the other found it done
        assert sorted(o.status for out in outcomes for o in out if o.uid == uid) == \
            sorted([DONE, SKIPPED])
        assert (plan.unit_dir(uid) / "result.json").is_file()
    ran = calls(marks)
    assert sorted(c[0] for c in ran) == sorted(uids)  # each body exactly once
    # units ran at once: some two body intervals overlap
    spans = sorted((float(c[1]), float(c[2])) for c in ran)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), spans
    # ... and each array was limited to two running elements (sbatch --array=0-3%2)
    scripts = list((plan.output_dir / "slurm").glob("*_submission.sh"))
    assert len(scripts) == 2 and all("--array=0-3%2" in s.read_text() for s in scripts)


# --------------------------------------------------------------------------- preemption
def test_preempted_finetune_resumes_to_the_same_weights(slurm_cluster, tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    """A fine-tune in the preemptible ``debug`` partition is preempted by a job of the
    ``urgent`` partition that needs every core. SLURM sends the job its ``--signal``
    (``preempt_send_user_signal``); the Trainer saves a checkpoint at the next step boundary,
    submitit requeues the job, and the requeued job resumes from that checkpoint once the
    urgent job is done. The weights equal those of an uninterrupted run, byte for byte."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "base").symlink_to(tiny_model_dir)
    steps = 120  # long enough (seconds) for the preemption to land mid-training

    def plan_in(folder: str, **backend: Any) -> Plan:
        return build_plan(parse_config({
            "output_dir": str(tmp_path / folder), "model": str(models),
            "revisions": [{"revision": "base", "step": 1}], "data": "fixtures",
            "finetune": {"tasks": ["mnli"], "learning_rates": {"mnli": [0.001]},
                         "num_train_examples": 24, "max_steps": steps, "max_length": 512},
            "eval": {"sets": ["mnli_matched"], "shots": [4], "limit": 2},
            "backend": {"dtype": "float32", **backend}}))

    # > 10 min: submitit then reads the signal as a preemption, not as the time limit
    plan = plan_in("slurm", executor="slurm", slurm={**SLURM, "timeout_min": 30})
    (unit,) = plan.finetunes
    log = plan.unit_dir(unit.uid) / "log.txt"
    outcomes: list = []
    runner = threading.Thread(target=lambda: outcomes.extend(
        slurm_executor(plan).map(plan, [unit.uid], lambda o: None)))
    runner.start()
    try:
        # training has started once the Trainer logged its first step
        wait_for(lambda: log.is_file() and "'loss'" in log.read_text(), 180, "training")
        urgent = slurm_cluster.run("sbatch", "--parsable", "--partition=urgent",
                                   f"--cpus-per-task={slurm_cluster.cpus}",
                                   f"--output={tmp_path / 'urgent.out'}",
                                   "--wrap=sleep 2").strip()
        # the uninterrupted reference, here, while the job is requeued and resumes
        reference = plan_in("local")
        assert LocalExecutor().map(reference, [unit.uid], lambda o: None)[0].status == DONE
    finally:
        runner.join(timeout=600)
    assert not runner.is_alive()
    assert [o.status for o in outcomes] == [DONE], outcomes
    assert slurm_cluster.jobs()[urgent] == "COMPLETED"

    job_log = next((plan.output_dir / "slurm").glob("*_0_log.out")).read_text()
    assert "Caught signal SIGUSR2" in job_log and "this job is preempted" in job_log
    assert "Requeued job" in job_log and job_log.count("Starting with JobEnvironment") == 2
    record = json.loads((plan.finetuned_model_dir(unit) / "amuro_run.json").read_text())
    assert record["global_steps"] == steps
    resumed = int(Path(record["resumed_from"]).name.split("-")[1])  # checkpoint-<step>
    assert 1 <= resumed < steps
    job_err = next((plan.output_dir / "slurm").glob("*_0_log.err")).read_text()
    assert f"checkpoint saved at step {resumed} of {steps}" in job_err

    weights = "model.safetensors"
    assert (plan.finetuned_model_dir(unit) / weights).read_bytes() == \
        (reference.finetuned_model_dir(unit) / weights).read_bytes()
