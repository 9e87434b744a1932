"""Fine-tune a checkpoint on an amuro task with TRL's ``SFTTrainer``: run, resume, skip, sweep.

:func:`run_sft` checks everything that can be checked before spending accelerator time (options,
revision, output directory, credentials, every training row), then hands the loop to TRL.
:func:`run_lr_sweep` trains one run per learning rate and picks the one with the lowest loss on
a validation slice held out from the task's *training* split.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from amuro_sft.chat_template import ensure_chat_template
from amuro_sft.config import (
    AmuroSFTError,
    NonFiniteLossError,
    SFTRunConfig,
    _check_lr,
)
from amuro_sft.data import TrainingData, build_training_data, examples_hash
from amuro_sft.hub import (
    ResolvedModel,
    check_push_credentials,
    default_branch_name,
    push_run,
    resolve_revision,
)
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
    read_json,
    run_identity,
    write_json_atomic,
)
from amuro_tasks.loading import data_source

log = logging.getLogger("amuro")

CHECKPOINT_DIR = "checkpoints"
SWEEP_RECORD = "amuro_sweep.json"


# ------------------------------------------------------------------------------ environment
def world_size() -> int:
    """Processes taking part in training (``accelerate launch`` / ``torchrun`` set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def on_gpu(cfg: SFTRunConfig) -> bool:
    return torch.cuda.is_available() and not cfg.use_cpu


def pick_attn_implementation(cfg: SFTRunConfig) -> str:
    """FlashAttention-2 (varlen kernels make padding-free fast) on GPU when installed, else SDPA."""
    if cfg.attn_implementation:
        return cfg.attn_implementation
    if on_gpu(cfg) and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def use_bf16(cfg: SFTRunConfig) -> bool:
    """bf16 autocast (weights stay fp32): on by default on bf16-capable GPUs, off on CPU."""
    if cfg.bf16 is not None:
        return cfg.bf16
    return on_gpu(cfg) and torch.cuda.is_bf16_supported()


def gradient_accumulation(cfg: SFTRunConfig, n_procs: int | None = None) -> int:
    """Accumulation steps so that per-device batch x processes x steps = effective batch size."""
    n_procs = n_procs or world_size()
    per_step = cfg.per_device_batch_size * n_procs
    if cfg.effective_batch_size % per_step:
        raise AmuroSFTError(
            f"effective batch size {cfg.effective_batch_size} is not a multiple of per-device "
            f"batch size {cfg.per_device_batch_size} x {n_procs} processes"
        )
    return cfg.effective_batch_size // per_step


# ------------------------------------------------------------------------------ TRL config
def build_sft_config(cfg: SFTRunConfig, checkpoint_dir: str | Path, *, eval: bool = False):
    """The ``SFTConfig`` of a run: the paper's recipe, and amuro's speed settings when ``tuned``.

    Tuned: padding-free batches (sequences concatenated, attention kept within each sequence by
    ``position_ids``; still ``per_device_batch_size`` *examples* per step, no packing), bf16
    autocast over fp32 weights on GPU, fused AdamW, no gradient checkpointing.
    """
    from trl import SFTConfig

    gpu = on_gpu(cfg)
    kwargs: dict[str, Any] = dict(
        output_dir=str(checkpoint_dir),
        learning_rate=cfg.lr,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation(cfg),
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a value < 1 is a ratio of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim="adamw_torch_fused" if cfg.tuned else "adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=use_bf16(cfg),
        fp16=False,
        use_cpu=not gpu,
        padding_free=cfg.tuned,
        # Padding-free without packing does not truncate; data.py already fits every example.
        max_length=None if cfg.tuned else cfg.max_length,
        assistant_only_loss=cfg.is_tulu,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # never hide a NaN loss behind an average
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=cfg.disable_tqdm,
        eval_strategy="no",
        dataloader_num_workers=0,
    )
    # transformers >= 5.x renamed gradient_checkpointing (a deprecated alias now)
    names = {f.name for f in fields(SFTConfig)}
    ckpt = "activation_checkpointing" if "activation_checkpointing" in names \
        else "gradient_checkpointing"
    kwargs[ckpt] = cfg.gradient_checkpointing
    kwargs.update(cfg.extra_sft_args)
    return SFTConfig(**kwargs)


def _log_last_step_callback():
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        """Log at the final step too, so the record's final loss is the loss at the end."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
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
def last_good_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint, or ``None``.

    Complete = the Trainer got as far as writing ``trainer_state.json`` (it does so after the
    weights and optimizer) and weights and optimizer state are there, in any of the layouts the
    Trainer writes: one process (``*.safetensors``, ``optimizer.pt``), FSDP sharded state
    (``pytorch_model_fsdp_*``, ``optimizer_*``) or DeepSpeed ZeRO (``global_step*/`` + ``latest``).
    """
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for child in checkpoint_dir.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-"):
            try:
                step = int(child.name.split("-", 1)[1])
            except ValueError:
                continue
            if _checkpoint_complete(child):
                found.append((step, child))
    return max(found)[1] if found else None


def _checkpoint_complete(ckpt: Path) -> bool:
    deepspeed = (ckpt / "latest").is_file() and any(ckpt.glob("global_step*"))
    weights = deepspeed or any(ckpt.glob("*.safetensors")) or any(ckpt.glob("pytorch_model*"))
    optimizer = deepspeed or (ckpt / "optimizer.pt").is_file() or any(ckpt.glob("optimizer_*"))
    return (ckpt / "trainer_state.json").is_file() and weights and optimizer


def wait_for_everyone() -> None:
    """A barrier across the processes of an ``accelerate launch`` (a no-op in one process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _normalized_options(cfg: SFTRunConfig) -> dict[str, Any]:
    options = cfg.to_dict()
    options["learning_rate"] = cfg.lr
    options["epochs"] = cfg.num_epochs
    options["data_source"] = data_source(cfg.data_source)
    return options


def check_output_dir(out: Path, identity: dict[str, Any]) -> str:
    """``"finished"``, ``"resume"`` or ``"new"``; raise if ``out`` holds a different run."""
    record = read_json(out / RECORD_NAME)
    if record is not None:
        if record.get("identity") == identity:
            return "finished"
        raise AmuroSFTError(
            f"output dir {out} holds a different finished run: "
            + "; ".join(identity_diff(record.get("identity", {}), identity))
            + ". Choose another --output-dir."
        )
    started = read_json(out / IDENTITY_NAME)
    if started is not None:
        if started == identity:
            return "resume"
        raise AmuroSFTError(
            f"output dir {out} holds an unfinished different run: "
            + "; ".join(identity_diff(started, identity)) + ". Choose another --output-dir."
        )
    # other ranks may see rank 0's files appear: only rank 0 insists on an empty directory
    if is_main_process() and out.exists() and any(out.iterdir()):
        raise AmuroSFTError(f"output dir {out} is not empty and holds no amuro-sft run")
    return "new"


# ------------------------------------------------------------------------------ loading
def load_tokenizer(cfg: SFTRunConfig, resolved: ResolvedModel):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolved.model, revision=resolved.load_revision, trust_remote_code=cfg.trust_remote_code
    )
    if tokenizer.eos_token is None:
        raise AmuroSFTError(f"the tokenizer of {cfg.model} has no EOS token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.is_tulu:
        ensure_chat_template(tokenizer)
    return tokenizer


def load_model(cfg: SFTRunConfig, resolved: ResolvedModel):
    """The base model in fp32 (master weights; bf16 is autocast, never the storage type)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        resolved.model, revision=resolved.load_revision, dtype=torch.float32,
        attn_implementation=pick_attn_implementation(cfg),
        trust_remote_code=cfg.trust_remote_code,
    )


def local_fingerprint(model_dir: str) -> dict[str, Any]:
    """Identify a local base model: sha256 of its config and the names/sizes of its files."""
    import hashlib

    root = Path(model_dir)
    cfg = root / "config.json"
    return {
        "config_sha256": hashlib.sha256(cfg.read_bytes()).hexdigest() if cfg.is_file() else None,
        "files": {p.name: p.stat().st_size for p in sorted(root.iterdir()) if p.is_file()},
    }


# ------------------------------------------------------------------------------ the run
@dataclass
class _Prepared:
    out: Path
    resolved: ResolvedModel
    identity: dict[str, Any]
    state: str


def _prepare(cfg: SFTRunConfig) -> _Prepared:
    cfg.validate()
    out = Path(cfg.output_dir)
    resolved = resolve_revision(cfg.model, cfg.revision)
    identity = run_identity(_normalized_options(cfg), resolved.commit_sha)
    state = check_output_dir(out, identity)
    return _Prepared(out, resolved, identity, state)


def _summary(record: dict[str, Any], status: str, out: Path) -> str:
    rev = record.get("revision") or "main"
    sha = (record.get("base_commit_sha") or "local")[:10]
    losses = record.get("losses", {})
    ev = losses.get("eval_loss")
    return (
        f"amuro-sft {status}: {record['task']}/{record['format']} on {record['base_model']}@{rev} "
        f"({sha}) lr={record['hyperparameters']['learning_rate']:g} seed={record['seed']}: "
        f"{record['global_steps']} steps, final loss {losses.get('final_train_loss'):.4f}"
        + (f", val loss {ev:.4f}" if ev is not None else "")
        + f", {record['tokens_per_s']:.0f} tok/s, {record['wall_time_s']:.0f}s -> {out}"
    )


def _push(cfg: SFTRunConfig, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    branch = cfg.hub_branch or default_branch_name(
        record.get("revision"), cfg.task, cfg.lr, cfg.seed, cfg.format)
    url = push_run(out, cfg.push_to_hub, branch)
    record["hub"] = {"repo": cfg.push_to_hub, "branch": branch, "commit_url": url}
    write_json_atomic(out / RECORD_NAME, record)
    return record


def run_sft(cfg: SFTRunConfig, *, callbacks: list | None = None) -> Path:
    """Fine-tune ``cfg.model`` on ``cfg.task``; resume or skip as the output directory says.

    Returns the output directory, which then holds the model, tokenizer, ``README.md`` (model
    card) and ``amuro_run.json`` (provenance; written last, atomically: the finished marker).
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects.
    """
    prep = _prepare(cfg)
    out = prep.out
    if prep.state == "finished":
        record = read_json(out / RECORD_NAME)
        if cfg.push_to_hub and record.get("hub", {}).get("repo") != cfg.push_to_hub:
            check_push_credentials()
            record = _push(cfg, out, record)
        if is_main_process():
            print(_summary(record, "skipped (already finished)", out), flush=True)
        return out
    if cfg.push_to_hub:
        check_push_credentials()

    tokenizer = load_tokenizer(cfg, prep.resolved)
    data = build_training_data(cfg, tokenizer)  # every row validated before any model loads
    ckpt_dir = out / CHECKPOINT_DIR
    sft_args = build_sft_config(cfg, ckpt_dir)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / IDENTITY_NAME, prep.identity)

    model = load_model(cfg, prep.resolved)
    trainer_cls = _make_trainer_class()
    from amuro_sft import preemption  # checkpoint and stop when a job is signalled

    trainer = trainer_cls(
        model=model, args=sft_args, train_dataset=data.train,
        eval_dataset=data.validation, processing_class=tokenizer,
        callbacks=[_log_last_step_callback(), preemption.callback(), *(callbacks or [])],
    )
    resume = last_good_checkpoint(ckpt_dir) if prep.state == "resume" else None
    tokens_before = 0
    if resume is not None:
        tokens_before = json.loads((resume / "trainer_state.json").read_text()).get(
            "num_input_tokens_seen", 0)
        log.info("resuming from %s", resume)
    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except NonFiniteLossError as err:
        good = last_good_checkpoint(ckpt_dir)
        raise NonFiniteLossError(
            f"{err}. Last good checkpoint: {good or 'none (no checkpoint saved yet)'}; "
            "try a lower learning rate."
        ) from None
    wall = time.perf_counter() - start

    eval_loss = None
    if data.validation is not None:
        eval_loss = float(trainer.evaluate(eval_dataset=data.validation)["eval_loss"])
        if not math.isfinite(eval_loss):
            raise NonFiniteLossError(f"non-finite validation loss {eval_loss}")
    trainer.save_model(str(out))
    if is_main_process():
        tokenizer.save_pretrained(str(out))
        record = _record(cfg, prep, data, trainer, result, wall, tokens_before, eval_loss, resume)
        (out / "README.md").write_text(model_card(record))
        write_json_atomic(out / RECORD_NAME, record)  # the finished marker: last
        (out / IDENTITY_NAME).unlink(missing_ok=True)
        if not cfg.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    # every rank returns only once the run is recorded (a sweep reads the record next)
    wait_for_everyone()
    if not is_main_process():
        return out
    if cfg.push_to_hub:
        record = _push(cfg, out, record)
    print(_summary(record, "finished", out), flush=True)
    return out


def _record(
    cfg: SFTRunConfig, prep: _Prepared, data: TrainingData, trainer, result, wall: float,
    tokens_before: int, eval_loss: float | None, resume: Path | None,
) -> dict[str, Any]:
    state = trainer.state
    args = trainer.args
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    tokens = int(state.num_input_tokens_seen)
    session_tokens = tokens - int(tokens_before)
    n_labels = sum(sum(1 for x in row if x != -100) for row in trainer.train_dataset["labels"]) \
        if "labels" in trainer.train_dataset.column_names else None
    hyper = {
        "learning_rate": cfg.lr,
        "num_train_epochs": cfg.num_epochs,
        "max_steps": cfg.max_steps,
        "effective_batch_size": cfg.effective_batch_size,
        "per_device_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "optimizer": args.optim if isinstance(args.optim, str) else str(args.optim),
        "adam_beta1": args.adam_beta1, "adam_beta2": args.adam_beta2,
        "adam_epsilon": args.adam_epsilon,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", str(args.lr_scheduler_type)),
        "warmup_ratio": cfg.warmup_ratio,
        "warmup_steps_effective": args.get_warmup_steps(state.max_steps),
        "max_grad_norm": args.max_grad_norm,
        "max_length": cfg.max_length,
        "bf16_autocast": bool(args.bf16),
        "master_weights_dtype": str(next(trainer.model.parameters()).dtype),
        "attn_implementation": trainer.model.config._attn_implementation,
        "padding_free": bool(args.padding_free),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "completion_only_loss": not cfg.is_tulu,
        "assistant_only_loss": cfg.is_tulu,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "finished",
        "base_model": prep.resolved.model,
        "base_is_local": prep.resolved.is_local,
        "revision": cfg.revision,
        "base_commit_sha": prep.resolved.commit_sha,
        "base_fingerprint": local_fingerprint(prep.resolved.model)
        if prep.resolved.is_local else None,
        "task": cfg.task,
        "train_set": cfg.train_set,
        "format": cfg.format,
        "seed": cfg.seed,
        "data": {
            "source": data.source,
            "dataset": data.dataset,
            "split": data.split,
            "num_train_examples": len(data.train),
            "num_train_examples_requested": cfg.num_train_examples,
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
        "options": _normalized_options(cfg),
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
            "mean_train_loss": float(result.training_loss),
            "eval_loss": eval_loss,
            "log_history": state.log_history,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ------------------------------------------------------------------------------ the sweep
def run_lr_sweep(
    cfg: SFTRunConfig, learning_rates: list[float] | tuple[float, ...], *,
    val_examples: int | None = None, callbacks: list | None = None,
) -> Path:
    """Train one run per learning rate (``<output_dir>/lr<lr>``); return the best run's dir.

    "Best" = lowest loss on a validation slice held out from the task's training split (never
    its test split). All runs and their losses are recorded in ``<output_dir>/amuro_sweep.json``;
    with ``push_to_hub`` only the best run is pushed. A run that diverges (non-finite loss) is
    recorded as such and cannot win.
    """
    lrs = list(dict.fromkeys(_check_lr(lr) for lr in learning_rates))
    if not lrs:
        raise AmuroSFTError("no learning rates to sweep")
    n_val = val_examples or cfg.val_examples or 500
    root = Path(cfg.output_dir)
    base = replace(cfg, val_examples=n_val, push_to_hub=None, hub_branch=None)
    for lr in lrs:  # fail fast on any option before the first run trains
        replace(base, learning_rate=lr).validate()
    runs: list[dict[str, Any]] = []
    for lr in lrs:
        sub = replace(base, learning_rate=lr, output_dir=root / f"lr{lr:g}")
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
    sweep = {"task": cfg.task, "model": cfg.model, "revision": cfg.revision,
             "format": cfg.format, "seed": cfg.seed, "validation_examples": n_val,
             "selection": "lowest validation loss (held out from the training split)",
             "runs": runs, "best": best}
    best_dir = Path(best["output_dir"])
    if is_main_process():
        write_json_atomic(root / SWEEP_RECORD, sweep)
        if cfg.push_to_hub:
            rec = read_json(best_dir / RECORD_NAME)
            best_cfg = replace(cfg, learning_rate=best["learning_rate"], output_dir=best_dir)
            if rec.get("hub", {}).get("repo") != cfg.push_to_hub:
                check_push_credentials()
                _push(best_cfg, best_dir, rec)
        print(f"amuro-sft sweep: best lr {best['learning_rate']:g} (val loss "
              f"{best['eval_loss']:.4f}) of {[r['learning_rate'] for r in runs]} -> {best_dir}",
              flush=True)
    return best_dir
