"""The SLURM executor without a cluster: the example config, what each ``backend.slurm`` key
becomes in the sbatch script submitit writes, ``workers``, and how job states are read where
``sacct`` is unavailable. (``tests/test_slurm_cluster.py`` runs the same code on a real
cluster.)"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from amuro_study import slurm_jobs
from amuro_study.config import load_config, parse_config
from amuro_study.executors import LocalExecutor, SlurmExecutor, make_executor
from amuro_study.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]


def fake_commands(folder: Path, **scripts: str) -> None:
    """Executables ``name`` running the given bash bodies, first on PATH (via monkeypatch)."""
    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def sbatch_script(executor: SlurmExecutor, tmp_path: Path, n_jobs: int,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    """The sbatch script submitit would submit for a stage of ``n_jobs`` units."""
    import submitit
    from submitit.slurm.slurm import _make_sbatch_string

    if shutil.which("srun") is None:  # submitit only checks that srun exists
        fake_commands(tmp_path / "bin", srun="exit 0")
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    auto = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    auto.update_parameters(**executor.parameters())
    params = dict(auto._executor.parameters)
    return _make_sbatch_string(command="python -m submitit.core._submit", folder=tmp_path,
                               map_count=n_jobs, **params)


def test_example_config_plans_and_maps_to_sbatch(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(ROOT / "examples" / "slurm.yaml")
    plan = build_plan(config)
    assert config.backend.executor == "slurm" and config.backend.workers == 8
    assert len(plan.finetunes) == 3 * 2 and len(plan.base_evals) == 3
    executor = make_executor(plan)
    assert isinstance(executor, SlurmExecutor) and executor.max_running == 8

    script = sbatch_script(executor, tmp_path, 20, monkeypatch)  # a stage of 20 units
    for line in ("--partition=gpu", "--time=240", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=64GB", "--account=my-lab", "--qos=normal", "--signal=USR2@300",
                 "--array=0-19%8", "--job-name=amuro-study"):
        assert f"#SBATCH {line}\n" in script, (line, script)
    assert "export HF_HOME=/shared/hf-cache\n" in script
    assert "srun --unbuffered" in script


def test_workers_local_and_slurm(tmp_path: Path) -> None:
    base = {"model": "allenai/OLMo-1B-hf", "revisions": ["step1000-tokens4B"],
            "data": "fixtures", "finetune": {"tasks": ["mnli"]},
            "eval": {"sets": ["mnli_matched"]}, "output_dir": str(tmp_path)}
    plan = build_plan(parse_config(base))
    local = make_executor(plan)
    assert isinstance(local, LocalExecutor) and local.workers == 1
    assert make_executor(plan, workers=3).workers == 3
    slurm = make_executor(plan, kind="slurm")
    assert slurm.max_running is None  # the cluster decides how many run at once
    assert "slurm_array_parallelism" not in slurm.parameters()
    assert make_executor(plan, kind="slurm", workers=4).parameters()[
        "slurm_array_parallelism"] == 4
    plan = build_plan(parse_config({**base, "backend": {"workers": 2}}))
    assert make_executor(plan).workers == 2 and make_executor(plan, kind="slurm").max_running == 2


def test_without_accounting_states_come_from_squeue_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """``sacct`` fails as on a cluster without slurmdbd: one log line, then ``squeue``; a job
    squeue no longer lists has ended (GONE) instead of staying UNKNOWN forever."""
    calls = tmp_path / "calls"
    fake_commands(
        tmp_path / "bin",
        sacct=f'echo sacct >> {calls}; echo "Slurm accounting storage is disabled" >&2; exit 1',
        squeue=f'echo "squeue $*" >> {calls}; printf "12_0|RUNNING|n1\\n12_1|CANCELLED|n1\\n"',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(slurm_jobs, "_SACCT_WORKS", None)
    caplog.set_level(logging.DEBUG)
    watcher = slurm_jobs.JobStateWatcher(delay_s=1)
    for job_id in ("12_0", "12_1", "12_2"):
        watcher.register_job(job_id)
    for _ in range(3):
        watcher.update()
    assert watcher.get_state("12_0", mode="cache") == "RUNNING"
    assert watcher.get_state("12_1", mode="cache") == "CANCELLED"
    assert watcher.get_state("12_2", mode="cache") == slurm_jobs.GONE
    assert not watcher.is_done("12_0", mode="cache") and watcher.is_done("12_2", mode="cache")
    lines = calls.read_text().splitlines()
    assert lines.count("sacct") == 1  # checked once
    assert lines[1].startswith("squeue ") and "--jobs=12" in lines[1]
    said = [r.getMessage() for r in caplog.records if "sacct" in r.getMessage()]
    assert said == ["SLURM accounting is unavailable (sacct: Slurm accounting storage is "
                    "disabled): job states are read from squeue instead"]


def test_failure_reasons_name_the_slurm_state(tmp_path: Path) -> None:
    from submitit.core.utils import UncompletedJobError

    spec = parse_config({"model": "m", "revisions": ["step1-tokens4B"], "data": "fixtures",
                         "finetune": {"tasks": ["mnli"]}, "eval": {"sets": ["mnli_matched"]},
                         "output_dir": str(tmp_path),
                         "backend": {"slurm": {"timeout_min": 30, "mem_gb": 16}}}).backend.slurm
    paths = SimpleNamespace(stdout=tmp_path / "o", stderr=tmp_path / "e",
                            result_pickle=tmp_path / "r.pkl")

    def job(state: str) -> SimpleNamespace:
        return SimpleNamespace(job_id="7_1", state=state, paths=paths)

    assert slurm_jobs.ended_without_result(job("CANCELLED by 0"))
    assert not slurm_jobs.ended_without_result(job("RUNNING"))
    why = slurm_jobs.failure_reason(job("CANCELLED by 0"), None, spec)
    assert why.startswith("job 7_1 was cancelled") and "(SLURM state CANCELLED)" in why
    assert "timeout_min=30" in slurm_jobs.failure_reason(job("TIMEOUT"), None, spec)
    assert "mem_gb=16" in slurm_jobs.failure_reason(
        job("OUT_OF_MEMORY"), UncompletedJobError("no output"), spec)
    raised = slurm_jobs.failure_reason(job("COMPLETED"), RuntimeError("unpickling failed"), spec)
    assert "RuntimeError: unpickling failed" in raised
