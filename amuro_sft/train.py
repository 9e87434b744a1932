"""Fine-tune a checkpoint on an amuro task with TRL's ``SFTTrainer``: run, resume, skip, sweep.

:func:`run_sft` checks everything that can be checked before spending accelerator time (the
recipe, revision, output directory, credentials, every training row), then hands the loop to
TRL. :func:`run_lr_sweep` trains one run per learning rate and picks the one with the lowest loss
on a validation slice held out from the task's *training* split.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from amuro_sft.atomic import (
    is_temp_file,
    read_json,
    remove_stale_temp_files,
    temp_path,
    write_json_atomic,
)
from amuro_sft.chat_template import ensure_chat_template
from amuro_sft.checkpoints import incomplete_after, last_good_checkpoint
from amuro_sft.config import (
    SWEEP_VAL_EXAMPLES,
    AmuroSFTError,
    NonFiniteLossError,
    RecipeError,
    check_learning_rate,
    split_batch,
)
from amuro_sft.data import TrainingData, build_training_data, examples_hash
from amuro_sft.hub import (
    ResolvedModel,
    check_push_credentials,
    default_branch_name,
    push_run,
    resolve_revision,
)
from amuro_sft.progress import library_progress_bars
from amuro_sft.provenance import (
    IDENTITY_NAME,
    RECORD_NAME,
    SCHEMA_VERSION,
    command_line,
    git_commit,
    hardware,
    identity_diff,
    library_versions,
    model_card,
    run_identity,
)
from amuro_sft.recipe import SFTRecipe, world_size, write_recipe
from amuro_sft.tracking import add_provenance_callback

log = logging.getLogger("amuro")

CHECKPOINT_DIR = "checkpoints"
SWEEP_RECORD = "amuro_sweep.json"
RECIPE_NAME = "amuro_recipe.yaml"
"""The run's recipe file in its output directory (``amuro-sft --config`` reruns it)."""
TRACKER_DIR = "runs"
"""TensorBoard event files, next to the model (checkpoints are removed when a run finishes)."""


# ------------------------------------------------------------------------------ environment
def is_main_process() -> bool:
    """Rank 0 of an ``accelerate launch`` (or the only process)."""
    return os.environ.get("RANK", "0") == "0"


def on_gpu(recipe: SFTRecipe) -> bool:
    """Whether training runs on a GPU."""
    return torch.cuda.is_available() and not recipe.training.use_cpu


def pick_attn_implementation(recipe: SFTRecipe) -> str:
    """FlashAttention-2 (varlen kernels make padding-free fast) on GPU when installed, else SDPA."""
    if recipe.model.attn_implementation:
        return recipe.model.attn_implementation
    if on_gpu(recipe) and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


# ------------------------------------------------------------------------------ TRL config
def build_sft_config(recipe: SFTRecipe, checkpoint_dir: str | Path,
                     processes: int | None = None):
    """The ``SFTConfig`` the trainer gets: the recipe's, resolved for this run.

    The learning rate and epochs of the task; per-device batch and gradient accumulation from
    the effective-batch rule (:func:`amuro_sft.config.split_batch`) over ``processes``
    (default ``WORLD_SIZE``); checkpoints in ``checkpoint_dir``; no ``max_length`` truncation
    with padding-free batches (the examples were fitted to it already, and TRL refuses the
    combination); the assistant-only loss for TULU; training tokens counted (the record's
    tokens/s); never a push from inside the trainer (amuro pushes the finished run to a branch
    it creates first).
    """
    t = recipe.training
    per_device, accumulation = split_batch(recipe.args.effective_batch_size,
                                           t.per_device_train_batch_size,
                                           world_size() if processes is None else processes)
    if per_device != t.per_device_train_batch_size:
        log.info("per_device_train_batch_size %d -> %d so that %d x %d x %d processes = %d",
                 t.per_device_train_batch_size, per_device, per_device, accumulation,
                 processes or world_size(), recipe.args.effective_batch_size)
    return recipe.with_options(
        output_dir=str(checkpoint_dir),
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        data_seed=t.seed if t.data_seed is None else t.data_seed,
        use_cpu=not on_gpu(recipe),
        max_length=None if t.padding_free else t.max_length,
        assistant_only_loss=recipe.is_tulu or t.assistant_only_loss,
        include_num_input_tokens_seen="non_padding",  # the record's tokens and tokens/s
        push_to_hub=False,
    ).training


def _log_last_step_callback():
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        """Log at the final step and at every checkpoint, so the record's final loss is the loss
        at the end and the logged windows cover every step of a resumed run."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps or control.should_save:
                control.should_log = True
            return control

    return LogLastStep()


def _make_trainer_class():
    from trl import SFTTrainer

    class AmuroSFTTrainer(SFTTrainer):
        """TRL's ``SFTTrainer`` that stops on a non-finite loss before the optimizer step."""

        def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            loss = super().training_step(*args, **kwargs)
            finite = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
            if self.accelerator.num_processes > 1:  # every rank must stop together
                finite = self.accelerator.gather(finite).min().reshape(1)
            if finite.item() < 1:
                raise NonFiniteLossError(
                    f"non-finite training loss ({loss.item()}) at step "
                    f"{self.state.global_step + 1}: stopping before the optimizer step"
                )
            return loss

    return AmuroSFTTrainer


# ------------------------------------------------------------------------------ output dir
def wait_for_everyone() -> None:
    """A barrier across the processes of an ``accelerate launch`` (a no-op in one process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def check_output_dir(out: Path, identity: dict[str, Any]) -> str:
    """``"finished"``, ``"resume"`` or ``"new"``; raise if ``out`` holds something else.

    amuro's own temp files (left by a write that was killed) do not count as content."""
    if out.exists() and not out.is_dir():
        raise RecipeError("output_dir", f"{out} is a file, not a folder")
    try:
        record = read_json(out / RECORD_NAME)
    except ValueError:
        raise RecipeError("output_dir", f"{out / RECORD_NAME} is unreadable (not JSON)") from None
    if record is not None:
        if record.get("identity") == identity:
            return "finished"
        raise RecipeError(
            "output_dir",
            f"{out} holds a different finished run: "
            + "; ".join(identity_diff(record.get("identity", {}), identity))
            + ". Choose another --output_dir.")
    try:
        started = read_json(out / IDENTITY_NAME)
    except ValueError:  # never half-written by amuro (atomic writes): damaged by something else
        raise RecipeError("output_dir", f"{out / IDENTITY_NAME} is unreadable; remove {out} "
                                        "(or that file) to start the run again") from None
    if started is not None:
        if started == identity:
            return "resume"
        raise RecipeError(
            "output_dir",
            f"{out} holds an unfinished different run: "
            + "; ".join(identity_diff(started, identity)) + ". Choose another --output_dir.")
    # other ranks may see rank 0's files appear: only rank 0 insists on an empty directory
    if is_main_process() and out.is_dir() \
            and any(not is_temp_file(p) for p in out.iterdir()):
        raise RecipeError("output_dir", f"{out} is not empty and holds no amuro-sft run")
    return "new"


def check_writable(out: Path) -> None:
    """Raise naming ``--output_dir`` unless a file can be written in ``out`` (created for the
    test, and removed again if it did not exist: a run that fails later leaves nothing)."""
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = temp_path(out / "probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RecipeError("output_dir",
                          f"cannot write to {out}: {err.strerror or err}") from None
    finally:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()


# ------------------------------------------------------------------------------ loading
def load_tokenizer(recipe: SFTRecipe, resolved: ResolvedModel):
    """The base model's tokenizer (at the resolved commit), with a pad token (and for TULU the
    chat template)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolved.model, revision=resolved.load_revision,
        trust_remote_code=recipe.training.trust_remote_code,
    )
    if tokenizer.eos_token is None:
        raise AmuroSFTError(f"the tokenizer of {recipe.model_name} has no EOS token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if recipe.is_tulu:
        ensure_chat_template(tokenizer)
    return tokenizer


def load_model(recipe: SFTRecipe, resolved: ResolvedModel):
    """The base model in ``--dtype`` (default fp32: master weights; bf16 is autocast)."""
    from transformers import AutoModelForCausalLM

    dtype = recipe.model.dtype or "float32"
    return AutoModelForCausalLM.from_pretrained(
        resolved.model, revision=resolved.load_revision,
        dtype=dtype if dtype == "auto" else getattr(torch, dtype),
        attn_implementation=pick_attn_implementation(recipe),
        trust_remote_code=recipe.training.trust_remote_code,
    )


# ------------------------------------------------------------------------------ the run
@dataclass
class _Prepared:
    out: Path
    resolved: ResolvedModel
    identity: dict[str, Any]
    state: str


def _prepare(recipe: SFTRecipe) -> _Prepared:
    recipe.validate()
    out = recipe.output_dir
    resolved = resolve_revision(recipe.model_name, recipe.revision)
    identity = run_identity(recipe.identity(), resolved.checkpoint_id)
    state = check_output_dir(out, identity)
    if state != "finished" and is_main_process():
        check_writable(out)
    return _Prepared(out, resolved, identity, state)


def mean_logged_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean training loss over every logged step of the run (resumed runs included).

    Each logged ``loss`` is the mean over the steps since the previous log; weighting each by
    its window gives the mean over the whole run (the Trainer's own ``training_loss`` covers
    only the steps of the last session)."""
    entries = sorted((e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e)
    total = steps = 0.0
    previous = 0
    for step, loss in entries:
        window = step - previous
        if window > 0:
            total += loss * window
            steps += window
        previous = step
    return total / steps if steps else None


def _summary(record: dict[str, Any], status: str, out: Path) -> str:
    rev = record.get("revision") or "main"
    sha = (record.get("base_commit_sha") or record.get("base_fingerprint") or "local")[:14]
    losses = record.get("losses", {})
    ev = losses.get("eval_loss")
    return (
        f"amuro-sft {status}: {record['task']}/{record['format']} on {record['base_model']}@{rev} "
        f"({sha}) lr={record['hyperparameters']['learning_rate']:g} seed={record['seed']}: "
        f"{record['global_steps']} steps, final loss {losses.get('final_train_loss'):.4f}"
        + (f", val loss {ev:.4f}" if ev is not None else "")
        + f", {record['tokens_per_s']:.0f} tok/s, {record['wall_time_s']:.0f}s -> {out}"
    )


def _push(recipe: SFTRecipe, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    t = recipe.training
    branch = t.hub_revision or default_branch_name(
        record.get("revision"), recipe.task, recipe.learning_rate, t.seed, recipe.args.format)
    try:
        url = push_run(out, str(t.hub_model_id), branch, private=recipe.hub_private,
                       token=t.hub_token)
    except Exception as err:  # noqa: BLE001 - network, auth, quota: the run itself is safe
        raise AmuroSFTError(
            f"the run is finished and saved in {out}, but pushing it to "
            f"{t.hub_model_id}@{branch} failed: {type(err).__name__}: {err}. Run the same "
            "command again to retry the push (a finished run is pushed without training)."
        ) from None
    record["hub"] = {"repo": t.hub_model_id, "branch": branch, "commit_url": url}
    write_json_atomic(out / RECORD_NAME, record)
    return record


@contextmanager
def _tracker_dir(out: Path):
    """TensorBoard writes next to the model, not under ``checkpoints/`` (removed at the end)."""
    key = "TENSORBOARD_LOGGING_DIR"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(out / TRACKER_DIR)
    try:
        yield
    finally:
        os.environ.pop(key, None)


def run_sft(recipe: SFTRecipe, *, callbacks: list | None = None) -> Path:
    """Fine-tune as ``recipe`` says; resume or skip as the output directory says.

    Returns the output directory, which then holds the model, tokenizer, ``README.md`` (model
    card), ``amuro_recipe.yaml`` and ``amuro_run.json`` (provenance; written last, atomically:
    the finished marker). ``callbacks`` are extra ``transformers.TrainerCallback`` objects.
    """
    if recipe.args.lr_sweep:
        raise RecipeError("lr_sweep", "a sweep trains several runs: use run_lr_sweep")
    with library_progress_bars(not recipe.training.disable_tqdm):
        return _run_sft(recipe, callbacks)


def _run_sft(recipe: SFTRecipe, callbacks: list | None) -> Path:
    prep = _prepare(recipe)
    out = prep.out
    t = recipe.training
    if prep.state == "finished":
        record = read_json(out / RECORD_NAME)
        if t.push_to_hub and record.get("hub", {}).get("repo") != t.hub_model_id:
            if is_main_process():
                check_push_credentials(t.hub_token)
                record = _push(recipe, out, record)
        if is_main_process():
            print(_summary(record, "skipped (already finished)", out), flush=True)
        return out
    if t.push_to_hub:
        check_push_credentials(t.hub_token)

    tokenizer = load_tokenizer(recipe, prep.resolved)
    data = build_training_data(recipe, tokenizer)  # every row validated before any model loads
    ckpt_dir = out / CHECKPOINT_DIR
    sft_args = build_sft_config(recipe, ckpt_dir)
    resume = last_good_checkpoint(ckpt_dir) if prep.state == "resume" else None
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)  # left by a killed run: never trusted, now removed
        write_json_atomic(out / IDENTITY_NAME, prep.identity)
        for stale in incomplete_after(ckpt_dir, resume):  # a resume writes these again
            log.warning("removing %s (incomplete, or newer than the checkpoint resumed from)",
                        stale)
            shutil.rmtree(stale, ignore_errors=True)
    wait_for_everyone()

    model = load_model(recipe, prep.resolved)
    from amuro_sft import preemption  # checkpoint and stop when a job is signalled

    with _tracker_dir(out):
        trainer = _make_trainer_class()(
            model=model, args=sft_args, train_dataset=data.train,
            eval_dataset=data.validation, processing_class=tokenizer,
            callbacks=[_log_last_step_callback(), preemption.callback(), *(callbacks or [])],
        )
    add_provenance_callback(trainer, _tracker_provenance(recipe, prep, data))
    tokens_before = 0
    if resume is not None:
        tokens_before = json.loads((resume / "trainer_state.json").read_text()).get(
            "num_input_tokens_seen", 0)
        log.info("resuming from %s", resume)
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except NonFiniteLossError as err:
        good = last_good_checkpoint(ckpt_dir)
        raise NonFiniteLossError(
            f"{err}. Last good checkpoint: {good or 'none (no checkpoint saved yet)'}; "
            "try a lower learning rate."
        ) from None
    wall = time.perf_counter() - start
    if trainer.state.global_step < trainer.state.max_steps:  # a callback stopped it early
        raise AmuroSFTError(
            f"training stopped at step {trainer.state.global_step} of "
            f"{trainer.state.max_steps} (a callback set should_training_stop; transformers' "
            f"enable_jit_checkpoint does on SIGTERM): not recorded as finished; its last "
            f"checkpoint is in {ckpt_dir}, and the same command resumes from it")

    eval_loss = None
    if data.validation is not None:
        eval_loss = float(trainer.evaluate(eval_dataset=data.validation)["eval_loss"])
        if not math.isfinite(eval_loss):
            raise NonFiniteLossError(f"non-finite validation loss {eval_loss}")
    trainer.save_model(str(out))
    if is_main_process():
        tokenizer.save_pretrained(str(out))
        record = _record(recipe, prep, data, trainer, wall, tokens_before, eval_loss, resume)
        (out / "README.md").write_text(model_card(record))
        write_recipe(recipe, out / RECIPE_NAME)
        write_json_atomic(out / RECORD_NAME, record)  # the finished marker: last
        (out / IDENTITY_NAME).unlink(missing_ok=True)
        if not recipe.args.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    # every rank returns only once the run is recorded (a sweep reads the record next)
    wait_for_everyone()
    if not is_main_process():
        return out
    if t.push_to_hub:
        record = _push(recipe, out, record)
    print(_summary(record, "finished", out), flush=True)
    return out


def _tracker_provenance(recipe: SFTRecipe, prep: _Prepared, data: TrainingData
                        ) -> dict[str, Any]:
    return {
        "task": recipe.task, "format": recipe.args.format,
        "base_model": prep.resolved.model, "revision": recipe.revision,
        "base_commit_sha": prep.resolved.commit_sha, "base_fingerprint":
        prep.resolved.fingerprint, "data_source": data.source, "dataset": data.dataset,
        "sample_hash": data.sample_hash, "num_train_examples": len(data.train),
        "identity": prep.identity, "libraries": library_versions(),
        "amuro_git_commit": git_commit(),
    }


def _record(
    recipe: SFTRecipe, prep: _Prepared, data: TrainingData, trainer, wall: float,
    tokens_before: int, eval_loss: float | None, resume: Path | None,
) -> dict[str, Any]:
    state = trainer.state
    args = trainer.args
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    tokens = int(state.num_input_tokens_seen)
    session_tokens = tokens - int(tokens_before)
    n_labels = sum(sum(1 for x in row if x != -100) for row in trainer.train_dataset["labels"]) \
        if "labels" in trainer.train_dataset.column_names else None
    t = recipe.training
    hyper = {
        "learning_rate": recipe.learning_rate,
        "num_train_epochs": recipe.num_train_epochs,
        "max_steps": t.max_steps,
        "effective_batch_size": recipe.args.effective_batch_size,
        "per_device_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "optimizer": getattr(args.optim, "value", str(args.optim)),
        "adam_beta1": args.adam_beta1, "adam_beta2": args.adam_beta2,
        "adam_epsilon": args.adam_epsilon,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", str(args.lr_scheduler_type)),
        "warmup_ratio": t.warmup_steps if t.warmup_steps < 1 else None,
        "warmup_steps_effective": args.get_warmup_steps(state.max_steps),
        "max_grad_norm": args.max_grad_norm,
        "max_length": t.max_length,
        "bf16_autocast": bool(args.bf16),
        "master_weights_dtype": str(next(trainer.model.parameters()).dtype),
        "attn_implementation": trainer.model.config._attn_implementation,
        "padding_free": bool(args.padding_free),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "completion_only_loss": args.completion_only_loss is not False and not recipe.is_tulu,
        "assistant_only_loss": bool(args.assistant_only_loss),
        "seed": t.seed,
        "data_seed": args.data_seed,
        "sample_seed": recipe.args.sample_seed,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "finished",
        "base_model": prep.resolved.model,
        "base_is_local": prep.resolved.is_local,
        "revision": recipe.revision,
        "base_commit_sha": prep.resolved.commit_sha,
        "base_fingerprint": prep.resolved.fingerprint,
        "task": recipe.task,
        "train_set": recipe.train_set,
        "format": recipe.args.format,
        "seed": t.seed,
        "data": {
            "source": data.source,
            "dataset": data.dataset,
            "split": data.split,
            "num_train_examples": len(data.train),
            "num_train_examples_requested": recipe.args.num_train_examples,
            "sample_fraction": recipe.args.sample_fraction,
            "num_validation_examples": 0 if data.validation is None else len(data.validation),
            "sample_hash": data.sample_hash,
            "row_ids_hash": examples_hash([{"id": i} for i in data.row_ids]),
            "first_row_ids": data.row_ids[:20],
            "validation_row_ids_hash": examples_hash([{"id": i} for i in data.val_row_ids]),
            "truncated_examples": data.truncated,
            "dropped_examples": data.dropped,
            "loss_tokens": n_labels,
            **data.stats,
        },
        "hyperparameters": hyper,
        "sft_config": json.loads(args.to_json_string()),
        "options": recipe.to_options(),
        "identity": prep.identity,
        "libraries": library_versions(),
        "amuro_git_commit": git_commit(),
        "hardware": hardware(),
        "command": command_line(),
        "global_steps": state.global_step,
        "resumed_from": str(resume) if resume else None,
        "wall_time_s": wall,
        "train_tokens": tokens,
        "train_tokens_this_session": session_tokens,
        "tokens_per_s": session_tokens / wall if wall > 0 else float("nan"),
        "losses": {
            "final_train_loss": losses[-1] if losses else None,
            "first_train_loss": losses[0] if losses else None,
            "mean_train_loss": mean_logged_loss(state.log_history),
            "eval_loss": eval_loss,
            "log_history": state.log_history,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ------------------------------------------------------------------------------ the sweep
def run_lr_sweep(
    recipe: SFTRecipe, learning_rates: list[float] | tuple[float, ...] | None = None, *,
    callbacks: list | None = None,
) -> Path:
    """Train one run per learning rate (``<output_dir>/lr<lr>``); return the best run's dir.

    ``learning_rates``: default the recipe's ``lr_sweep``. "Best" = lowest loss on a
    validation slice held out from the task's training split (never its test split; 500 rows
    unless ``val_examples`` says otherwise). All runs and their losses are recorded in
    ``<output_dir>/amuro_sweep.json``; with ``push_to_hub`` only the best run is pushed. A run
    that diverges (non-finite loss) is recorded as such and cannot win.
    """
    rates = learning_rates if learning_rates is not None else recipe.args.lr_sweep
    lrs = list(dict.fromkeys(check_learning_rate(lr, "lr_sweep") for lr in rates or []))
    if not lrs:
        raise RecipeError("lr_sweep", "no learning rates to sweep")
    n_val = recipe.val_examples or SWEEP_VAL_EXAMPLES
    root = recipe.output_dir
    base = recipe.with_options(val_examples=n_val, lr_sweep=None, learning_rate=None,
                               push_to_hub=False, hub_revision=None)
    subs = [base.with_options(learning_rate=lr, output_dir=str(root / f"lr{lr:g}")).validate()
            for lr in lrs]  # fail fast on any option before the first run trains
    runs: list[dict[str, Any]] = []
    for lr, sub in zip(lrs, subs, strict=True):
        try:
            out = run_sft(sub, callbacks=callbacks)
        except NonFiniteLossError as err:
            runs.append({"learning_rate": lr, "output_dir": str(sub.output_dir),
                         "status": "diverged", "error": str(err), "eval_loss": None})
            continue
        rec = read_json(out / RECORD_NAME)
        runs.append({"learning_rate": lr, "output_dir": str(out), "status": "finished",
                     "eval_loss": rec["losses"]["eval_loss"],
                     "final_train_loss": rec["losses"]["final_train_loss"]})
    ok = [r for r in runs if r["eval_loss"] is not None and math.isfinite(r["eval_loss"])]
    if not ok:
        raise AmuroSFTError(f"every run of the sweep diverged: {runs}")
    best = min(ok, key=lambda r: r["eval_loss"])
    sweep = {"task": recipe.task, "model": recipe.model_name, "revision": recipe.revision,
             "format": recipe.args.format, "seed": recipe.training.seed,
             "validation_examples": n_val,
             "selection": "lowest validation loss (held out from the training split)",
             "runs": runs, "best": best}
    best_dir = Path(best["output_dir"])
    if is_main_process():
        write_json_atomic(root / SWEEP_RECORD, sweep)
        if recipe.training.push_to_hub:
            rec = read_json(best_dir / RECORD_NAME)
            best_recipe = recipe.with_options(lr_sweep=None, learning_rate=best["learning_rate"],
                                              output_dir=str(best_dir))
            if rec.get("hub", {}).get("repo") != recipe.training.hub_model_id:
                check_push_credentials(recipe.training.hub_token)
                _push(best_recipe, best_dir, rec)
        print(f"amuro-sft sweep: best lr {best['learning_rate']:g} (val loss "
              f"{best['eval_loss']:.4f}) of {[r['learning_rate'] for r in runs]} -> {best_dir}",
              flush=True)
    return best_dir
