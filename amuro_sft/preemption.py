"""Stop a fine-tune at the next step boundary with a fresh checkpoint, when asked to.

A cluster job that is about to be preempted or to reach its time limit gets a signal (SLURM's
``--signal``; submitit's checkpointing protocol uses ``SIGUSR2``). A signal handler cannot save
a model safely -- it may run in the middle of an optimizer step -- so it only calls
:func:`request_stop`. The Trainer callback of :func:`callback` (which :func:`amuro_sft.run_sft`
always adds) then makes the Trainer save a complete checkpoint at the end of the current
optimizer step, and raises :class:`TrainingPreempted` once it is on disk. The next ``run_sft``
call on the same output directory resumes from that checkpoint (``last_good_checkpoint``), and
ends with the same weights as a run that was never interrupted.

This module keeps no reference to a Trainer: the state is two flags of this process (a job runs
one fine-tune at a time). Hand-written because neither transformers nor submitit has it:
submitit calls a job's ``checkpoint`` method from inside the signal handler, and the Trainer has
no notion of a stop request from outside.
"""

from __future__ import annotations

from typing import Any

_stop_reason: str | None = None
_training = False


class TrainingPreempted(BaseException):
    """Raised once the checkpoint asked for by :func:`request_stop` is saved.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that code recording failures with
    ``except Exception`` lets it through: an interrupted fine-tune is not a failed one.
    """


def request_stop(reason: str) -> bool:
    """Ask the running fine-tune to checkpoint and stop; safe to call from a signal handler.

    Returns whether a training loop is running that will honour it (``False``: nothing to
    checkpoint, e.g. the model is still loading or an evaluation runs; the caller decides).
    """
    global _stop_reason
    _stop_reason = reason
    return _training


def stop_requested() -> str | None:
    """The reason given to :func:`request_stop`, or ``None``."""
    return _stop_reason


def reset() -> None:
    """Forget any stop request (at the start of a job)."""
    global _stop_reason, _training
    _stop_reason = None
    _training = False


def callback() -> Any:
    """A ``transformers.TrainerCallback``: checkpoint and raise :class:`TrainingPreempted` after
    a stop request; inert until then.

    Built on demand so that importing this module (in every cluster job, by the signal
    handler's owner) does not import transformers. In a multi-process run every process must
    get the request (each runs its own handler); the callback does not synchronise them.
    """
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            global _stop_reason, _training
            _stop_reason = None  # a request made before the loop ran was refused (False)
            _training = True
            return control

        def on_train_end(self, args, state, control, **kwargs):
            global _training
            _training = False
            return control

        def on_step_end(self, args, state, control, **kwargs):
            if _stop_reason is not None:
                control.should_save = True  # the Trainer saves right after this step
                control.should_log = True  # and the record's losses cover every step
            return control

        def on_save(self, args, state, control, **kwargs):
            global _training
            if _stop_reason is not None:
                _training = False
                raise TrainingPreempted(
                    f"{_stop_reason}: checkpoint saved at step {state.global_step} of "
                    f"{state.max_steps} in {args.output_dir}")
            return control

    return PreemptionCallback()
