"""Where units run: this machine (default) or a SLURM cluster through ``submitit``.

Both executors run the same function, :func:`amuro_study.runner.execute_unit`, on the same
units; neither schedules anything itself. The study runner hands them one stage at a time
(a stage depends only on earlier stages), so within a stage every unit is independent:

* :class:`LocalExecutor` runs them one after another in this process, or with ``workers > 1``
  in a :class:`concurrent.futures.ProcessPoolExecutor` (spawned processes).
* :class:`SlurmExecutor` submits them as one ``submitit`` job array per stage (at most
  ``workers`` running at once, when set) and waits; the cluster decides placement.
  ``cluster="debug"``/``"local"`` are submitit's in-process and local-subprocess back-ends
  (useful for testing the path without SLURM).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from amuro_study.config import SlurmSpec
from amuro_study.plan import Plan
from amuro_study.runner import FAILED, UnitOutcome, execute_unit, store_of


class LocalExecutor:
    """Run units on this machine: in-process (``workers=1``) or in ``workers`` processes."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers

    def map(self, plan: Plan, uids: list[str],
            on_done: Callable[[UnitOutcome], None]) -> list[UnitOutcome]:
        """Run ``uids``; call ``on_done`` as each finishes; return all outcomes."""
        outcomes: list[UnitOutcome] = []
        if self.workers == 1 or len(uids) <= 1:
            for uid in uids:
                outcome = execute_unit(plan, uid)
                outcomes.append(outcome)
                on_done(outcome)
            return outcomes
        context = multiprocessing.get_context("spawn")
        broken: list[str] = []
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:
            futures = {pool.submit(execute_unit, plan, uid): uid for uid in uids}
            for future in as_completed(futures):
                uid = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool:  # a worker died (OOM killer, signal): pool is gone
                    broken.append(uid)
                    continue
                except Exception as err:  # e.g. the outcome could not be sent back
                    outcome = _died(plan, uid, f"worker error: {type(err).__name__}: {err}")
                outcomes.append(outcome)
                on_done(outcome)
        # One dead worker breaks every unit still in the pool. Re-run those one per fresh
        # process, so that only the unit that kills its process fails (with an error.json).
        for uid in broken:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as alone:
                try:
                    outcome = alone.submit(execute_unit, plan, uid).result()
                except BrokenProcessPool as err:
                    outcome = _died(plan, uid, f"its worker process died ({err}); killed by "
                                               "the OOM killer or a signal?")
            outcomes.append(outcome)
            on_done(outcome)
        return outcomes


def _died(plan: Plan, uid: str, why: str) -> UnitOutcome:
    """A unit whose process died: recorded as a failure (error.json) from this process."""
    description = plan.units()[uid].describe()
    note = store_of(plan).try_write_error(uid, RuntimeError(why), description)
    return UnitOutcome(uid, FAILED, description, error=why + note)


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise RuntimeError(
            "backend.executor is 'slurm' but submitit is not installed: "
            "pip install 'amuro[slurm]' (or pip install submitit)"
        ) from None
    return submitit


class SlurmExecutor:
    """Submit units as SLURM jobs with ``submitit`` (one job array per stage) and wait.

    Each job runs :class:`amuro_study.slurm_jobs.UnitJob` (fine-tunes: ``ResumableUnitJob``,
    requeued and resumed from a checkpoint after preemption or at the time limit). A job that
    ends without an outcome (cancelled, killed, lost) is recorded as its unit's failure with the
    reason SLURM gives; the study goes on.
    """

    def __init__(self, folder: str | Path, spec: SlurmSpec | None = None,
                 cluster: str | None = None, poll_s: float = 10.0,
                 max_running: int | None = None) -> None:
        self.submitit = _import_submitit()
        self.folder = Path(folder)
        self.spec = spec or SlurmSpec()
        self.cluster = cluster
        self.poll_s = poll_s
        self.max_running = max_running

    def parameters(self) -> dict[str, Any]:
        """``update_parameters`` keyword arguments from the ``backend.slurm`` section."""
        params: dict[str, Any] = {
            "timeout_min": self.spec.timeout_min, "gpus_per_node": self.spec.gpus_per_node,
            "cpus_per_task": self.spec.cpus_per_task, "mem_gb": self.spec.mem_gb,
            "name": "amuro-study",
        }
        if self.spec.partition:
            params["slurm_partition"] = self.spec.partition
        if self.max_running:
            params["slurm_array_parallelism"] = self.max_running
        params.update(self.spec.extra)
        return params

    def map(self, plan: Plan, uids: list[str],
            on_done: Callable[[UnitOutcome], None]) -> list[UnitOutcome]:
        """Submit ``uids`` as jobs; call ``on_done`` as each job finishes."""
        if not uids:
            return []
        from amuro_study.slurm_jobs import (
            JobStateWatcher,
            ended_without_result,
            failure_reason,
            job_for,
        )

        executor = self.submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params = self.parameters()
        if executor.cluster != "slurm":  # local/debug back-ends know only the generic keys
            params = {k: v for k, v in params.items()
                      if k in ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "name")}
        executor.update_parameters(**params)
        jobs = []
        with executor.batch():
            for uid in uids:
                jobs.append((uid, executor.submit(job_for(plan, uid, self.spec.timeout_min))))
        if executor.cluster == "slurm":
            # states from sacct, or squeue where there is no accounting (one shared poller)
            watcher = JobStateWatcher(delay_s=max(6 * self.poll_s, 1.0))
            for _, job in jobs:
                job.watcher = watcher
        by_job = {id(job): uid for uid, job in jobs}
        outcomes: list[UnitOutcome] = []
        waiting = [j for _, j in jobs]
        for job in self.submitit.helpers.as_completed(waiting, poll_frequency=self.poll_s):
            uid = by_job[id(job)]
            if executor.cluster == "slurm" and ended_without_result(job):
                # cancelled, killed at its time limit or out of memory, node lost: say so
                outcome = _died(plan, uid, failure_reason(job, None, self.spec))
            else:
                try:
                    outcome = job.result()
                except Exception as err:  # the job failed outside the unit
                    outcome = _died(plan, uid, failure_reason(job, err, self.spec))
            outcomes.append(outcome)
            on_done(outcome)
        return outcomes


def make_executor(plan: Plan, kind: str | None = None, workers: int | None = None,
                  cluster: str | None = None) -> LocalExecutor | SlurmExecutor:
    """The executor the config (or the command line, which wins) asks for."""
    backend = plan.config.backend
    kind = kind or backend.executor
    workers = backend.workers if workers is None else workers
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if kind == "local":
        return LocalExecutor(workers or 1)
    if kind == "slurm":
        return SlurmExecutor(plan.output_dir / "slurm", backend.slurm, cluster=cluster,
                             max_running=workers)
    raise ValueError(f"unknown executor {kind!r}; known: local, slurm")
