"""The SLURM side of the study: what a job runs, and how the runner learns how a job ended.

Job side -- :class:`UnitJob` is the callable each ``submitit`` job runs: ``execute_unit`` on one
unit, with submitit's checkpointing protocol made safe for it. SLURM sends ``SIGUSR2``
(``--signal``, submitit's default ``signal_delay_s`` = 90 s before the time limit, and at
preemption where the cluster sets ``SlurmctldParameters=preempt_send_user_signal``). submitit's
own handler would checkpoint, requeue and exit right inside the signal, wherever the unit is;
:class:`UnitJob` defers it:

* during a fine-tune's training loop, ``amuro_sft.preemption`` makes the Trainer save a
  checkpoint at the end of the current optimizer step and stop;
* anywhere else the unit is abandoned at once (nothing of it is kept but what the store keeps);

and only then, outside the unit (its lock released, its log closed), hands over to submitit's
handler. That handler requeues the job -- a fine-tune (:class:`ResumableUnitJob`, a
``submitit.helpers.Checkpointable``) resumes from its checkpoint in the requeued job; any other
unit is redone from scratch -- or, for a job at its time limit that is not resumable (or has
been requeued ``max_num_timeout`` times), says it will not, and the unit is recorded as timed
out (``error.json``), so the study goes on.

Runner side -- :class:`JobStateWatcher` is submitit's ``sacct`` poller with a fallback: where
accounting is off (``sacct`` fails) it says so once and reads job states from ``squeue``, which
every cluster has; :func:`failure_reason` turns a job that ended without a result (cancelled,
killed at its time limit, out of memory, node failure) into the reason recorded for its unit.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from typing import Any

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher

from amuro_study.plan import Plan
from amuro_study.runner import FAILED, UnitOutcome, execute_unit, store_of

log = logging.getLogger("amuro_study.slurm")


# --------------------------------------------------------------------------- job side
class _Abandoned(BaseException):
    """Raised by the signal handler to leave a unit that has nothing to checkpoint."""


class UnitJob:
    """Run one unit in a submitit job; on the checkpoint signal, stop it and let submitit act."""

    resumable = False
    """Whether a fine-tune's training loop checkpoints before the unit is left."""

    def __init__(self, plan: Plan, uid: str, timeout_min: int) -> None:
        self.plan = plan
        self.uid = uid
        self.timeout_min = timeout_min

    def __call__(self) -> UnitOutcome:
        """The unit's outcome (requeues and exits instead when preempted)."""
        signum = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        submitit_handler = signal.getsignal(signum)
        if not callable(submitit_handler) or threading.current_thread() is not \
                threading.main_thread():  # not a job process of its own (submitit's "debug")
            return execute_unit(self.plan, self.uid)
        stops: tuple[type[BaseException], ...] = (_Abandoned,)
        preemption = None
        if self.resumable:  # (amuro_sft imports torch: only where a fine-tune runs anyway)
            from amuro_sft import preemption

            preemption.reset()
            stops += (preemption.TrainingPreempted,)
        received: list[int] = []

        def on_signal(sig: int, frame: Any) -> None:
            received.append(sig)
            name = signal.Signals(sig).name
            if preemption is None or not preemption.request_stop(f"job got {name}"):
                raise _Abandoned(f"got {name}; nothing to checkpoint")

        signal.signal(signum, on_signal)
        try:
            return execute_unit(self.plan, self.uid)
        except stops as stop:
            log.warning("unit %s stopped: %s", self.uid, stop)
        finally:
            signal.signal(signum, submitit_handler)
            if preemption is not None:
                preemption.reset()
        # submitit: checkpoint (`checkpoint`, resumable units only), requeue and exit; or
        # raise if it will not requeue (time limit reached and not resumable, or too often)
        try:
            submitit_handler(received[0] if received else signum, None)
        except UncompletedJobError as err:
            return self._failed(TimeoutError(
                f"timed out: the job reached its time limit (backend.slurm.timeout_min="
                f"{self.timeout_min}) and was not requeued ({str(err).strip()})"))
        return self._failed(RuntimeError(  # e.g. not task 0 of a multi-task job
            f"stopped by {signal.Signals(signum).name} and not requeued by submitit"))

    def _failed(self, error: Exception) -> UnitOutcome:
        description = self.plan.units()[self.uid].describe()
        store = store_of(self.plan)
        note = "" if store.is_done(self.uid) else store.try_write_error(self.uid, error,
                                                                          description)
        return UnitOutcome(self.uid, FAILED, description,
                           error=f"{type(error).__name__}: {error}{note}")


class ResumableUnitJob(UnitJob, submitit.helpers.Checkpointable):
    """A fine-tune: submitit requeues it after preemption or at its time limit (up to
    ``max_num_timeout`` times), and the requeued job resumes from the saved checkpoint."""

    resumable = True


def job_for(plan: Plan, uid: str, timeout_min: int) -> UnitJob:
    """The job callable of unit ``uid``: resumable for one-process fine-tunes."""
    unit = plan.units()[uid]
    resumable = unit.kind == "finetune" and plan.config.backend.num_gpus == 1
    return (ResumableUnitJob if resumable else UnitJob)(plan, uid, timeout_min)


# --------------------------------------------------------------------------- runner side
GONE = "GONE"
"""State of a job ``squeue`` no longer lists (it ended over ``MinJobAge`` ago)."""
_SACCT_WORKS: bool | None = None  # checked once per process


class JobStateWatcher(SlurmInfoWatcher):
    """submitit's job-state poller, reading ``squeue`` where ``sacct`` is unavailable.

    submitit asks ``sacct`` and, on a cluster without accounting, logs a warning at every poll
    (dozens per study) while the state of a job that ended without a result stays UNKNOWN --
    so it would be waited for forever. This watcher tries ``sacct`` once; if it fails it logs
    one line and asks ``squeue --states=all`` (slurmctld keeps ended jobs ``MinJobAge``, 300 s
    by default; a job no longer listed has ended: state :data:`GONE`).
    """

    def update(self) -> None:
        """Refresh the states of the registered, unfinished jobs."""
        global _SACCT_WORKS
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        if _SACCT_WORKS is not False:
            try:
                self._output = subprocess.check_output(command, stderr=subprocess.PIPE,
                                                       timeout=120)
            except (OSError, subprocess.SubprocessError) as err:
                stderr = getattr(err, "stderr", None) or b""
                detail = stderr.decode(errors="replace").strip() or str(err)
                log.warning("SLURM accounting is unavailable (sacct: %s): job states are read "
                            "from squeue instead", detail.splitlines()[-1] if detail else err)
                _SACCT_WORKS = False
            else:
                _SACCT_WORKS = True
                self._info_dict.update(self.read_info(self._output))
        if _SACCT_WORKS is False:
            self._update_from_squeue()
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _update_from_squeue(self) -> None:
        pending = self._registered - self._finished
        raw_ids = sorted({x.split("_")[0] for x in pending})
        command = ["squeue", "--noheader", "--array", "--states=all",
                   "--format=%i|%T|%N", f"--jobs={','.join(raw_ids)}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as err:
            log.debug("squeue failed: %s", err)
            return
        # every id unknown: squeue exits 1 with "Invalid job id specified"
        if done.returncode != 0 and "Invalid job id" not in done.stderr:
            log.debug("squeue failed (%s): %s", done.returncode, done.stderr.strip())
            return
        info = self.read_info("JobID|State|NodeList\n" + done.stdout)
        self._info_dict.update(info)
        for job_id in pending - set(info):
            self._info_dict[job_id] = {"JobID": job_id, "State": GONE}


_REASONS = {
    "CANCELLED": "was cancelled (scancel, or by an administrator)",
    "TIMEOUT": "was killed at its time limit (backend.slurm.timeout_min={timeout_min})",
    "OUT_OF_MEMORY": "ran out of memory (backend.slurm.mem_gb={mem_gb})",
    "NODE_FAIL": "was lost with its node (node failure)",
    "BOOT_FAIL": "could not start (node boot failure)",
    "DEADLINE": "reached its deadline",
    "PREEMPTED": "was preempted and not requeued",
    "FAILED": "exited with an error before it could record one",
    GONE: "ended without a result and is no longer known to slurmctld",
}


def _state(job: Any) -> str:
    return (str(job.state).split() or ["UNKNOWN"])[0]  # sacct says "CANCELLED by 0"


def ended_without_result(job: Any) -> bool:
    """Whether ``job`` was killed (cancelled, time limit, memory, node...) before its result."""
    return not job.paths.result_pickle.exists() and _state(job) in _REASONS


def failure_reason(job: Any, error: BaseException | None, spec: Any) -> str:
    """Why ``job`` gave no outcome, for its unit's ``error.json``.

    ``error`` is what ``job.result()`` raised (``None``: not called, the job was killed);
    ``spec`` the ``backend.slurm`` section.
    """
    state = _state(job)
    if error is None or isinstance(error, UncompletedJobError):
        reason = _REASONS.get(state, "ended without a result").format(
            timeout_min=spec.timeout_min, mem_gb=spec.mem_gb)
        return (f"job {job.job_id} {reason} (SLURM state {state}); its output: "
                f"{job.paths.stdout}, {job.paths.stderr}")
    return (f"job {job.job_id} failed (SLURM state {state}): {type(error).__name__}: "
            f"{str(error)[-2000:]}")
