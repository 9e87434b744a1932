"""The fine-tuning recipe as dataclasses beside TRL's: amuro's options and the paper's defaults.

A recipe is three dataclasses, parsed together by ``trl.TrlParser`` (``amuro-sft --help``,
``--config recipe.yaml``, TRL's own flag names), or built from one flat mapping of options by
:func:`amuro_sft.recipe.recipe_from_options` (Python, a study's ``finetune:`` section):

* :class:`AmuroArguments` -- what amuro adds (task, prompt format, training sample, validation
  slice, learning-rate sweep, data source, effective batch size), in the place of TRL's
  ``ScriptArguments`` (which name a dataset; amuro's data come from the task);
* :class:`AmuroSFTConfig` -- TRL's ``SFTConfig`` with the paper's recipe as its defaults
  (Sun & Dredze, §3.2 and Appendix A);
* ``trl.ModelConfig`` -- the base model (``model_name_or_path``, ``model_revision``, ``dtype``,
  ``attn_implementation``), unchanged.

Where the paper's recipe differs from TRL's defaults, :class:`AmuroSFTConfig` overrides the
default (and says so in the field's help): the paper's learning rate per task instead of 2e-5,
3 epochs (TULU 5), 3% linear warm-up, max length 2048, no gradient checkpointing, bf16 autocast
over fp32 weights only on a bf16-capable GPU (TRL turns bf16 on everywhere), padding-free
batches, checkpoints every 250 steps. Options that depend on the task (learning rate, epochs) or
on the number of processes (gradient accumulation) default to ``None`` and are resolved by
:class:`amuro_sft.recipe.SFTRecipe`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.family import FORMATS
from amuro_tasks.loading import ON_INVALID

WARMUP_RATIO = 0.03
"""Linear warm-up over the first 3% of the steps (the paper's and the release's)."""
EFFECTIVE_BATCH_SIZE = 8
"""Examples per optimizer step in the paper (per device x accumulation x processes)."""
NUM_TRAIN_EXAMPLES = 6000
"""Training examples per task in the paper: the first 6,000 of the seeded shuffle."""
SWEEP_VAL_EXAMPLES = 500
"""Held-out validation rows of a learning-rate sweep unless ``val_examples`` says otherwise."""


class AmuroSFTError(RuntimeError):
    """A fine-tuning run cannot start or cannot finish (the message says why and what to do)."""


class NonFiniteLossError(AmuroSFTError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class RecipeError(AmuroConfigError):
    """An invalid recipe option. ``option`` names it (a field name, ``None`` when the error is
    about the recipe as a whole), so each entry point can say it its own way: ``--option`` on
    the command line, ``finetune.option`` in a study, ``option`` in a recipe file."""

    def __init__(self, option: str | None, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}" if option else message)


def check_learning_rate(value: Any, option: str = "learning_rate") -> float:
    """``value`` as a finite learning rate > 0, or a :class:`RecipeError` naming ``option``."""
    if isinstance(value, bool):
        raise RecipeError(option, f"must be a number, got {value!r}")
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise RecipeError(option, f"must be a number, got {value!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise RecipeError(option, f"must be a finite number > 0, got {value!r}")
    return lr


def split_batch(effective: int, per_device: int, processes: int = 1) -> tuple[int, int]:
    """The effective-batch rule: ``(per-device batch, accumulation steps)`` such that
    per-device x accumulation x processes = ``effective``.

    The per-device batch is the largest value <= ``per_device`` that makes the product exact
    (it is a memory cap, the effective batch is the recipe); ``effective`` must be a multiple
    of ``processes``. Used by the recipe, the trainer arguments and the study alike.
    """
    for name, value in (("effective_batch_size", effective),
                        ("per_device_train_batch_size", per_device)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecipeError(name, f"must be an integer >= 1, got {value!r}")
    if processes < 1 or effective % processes:
        raise RecipeError(
            "effective_batch_size",
            f"{effective} examples per optimizer step cannot be split evenly over {processes} "
            "processes (one per GPU)",
        )
    per_process = effective // processes
    size = min(per_device, per_process)
    while per_process % size:
        size -= 1
    return size, per_process // size


@dataclass
class AmuroArguments:
    """amuro's options: what to train on and how the sample is drawn (beside TRL's)."""

    _argument_group_name = "amuro: task, data and sweep"

    task: str | None = field(default=None, metadata={
        "help": "What to fine-tune on (required): one of the paper's tasks mnli, paws, xsum, "
                "socialiqa, tulu (instruction tuning), or any amuro evaluation set with a "
                "labelled train split of its own (rte, qqp, boolq, arc_easy, ...)."})
    format: str = field(default="default", metadata={
        "help": "Prompt format of the training examples: default (the paper's fine-tuning "
                "format), instruct or io; tulu: default only.",
        "choices": list(FORMATS)})
    lr_sweep: list[float] | None = field(default=None, metadata={
        "help": "Several learning rates: train one run per rate (<output_dir>/lr<rate>) and keep "
                "the one with the lowest loss on a validation slice of the training split "
                "(the paper's grid: 2e-5 2e-6 2e-7). Not with --learning_rate."})
    num_train_examples: int | None = field(default=NUM_TRAIN_EXAMPLES, metadata={
        "help": "Training examples: the first N valid rows of the seeded shuffle of the train "
                "split (the paper's 6000); none for every row."})
    sample_fraction: float | None = field(default=None, metadata={
        "help": "Train on round(fraction x rows of the train split) examples instead of "
                "num_train_examples (the authors' TULU release: 0.05). Only the rows needed are "
                "validated and tokenized."})
    val_examples: int | None = field(default=None, metadata={
        "help": "Rows held out after the training sample (same shuffled train split, never "
                "the test split) for a validation loss; default 0, or 500 in a sweep."})
    sample_seed: int = field(default=42, metadata={
        "help": "Seed of the shuffle that draws the training sample and validation slice (the "
                "paper's shuffle(seed=42)); TRL's --data_seed orders the batches."})
    data_source: str | None = field(default=None, metadata={
        "help": "Where the training rows come from: hub, fixtures (synthetic test rows) or a "
                "local mirror directory; default $AMURO_DATA, else hub."})
    on_invalid: str = field(default="error", metadata={
        "help": "Training rows that fail validation: error (stop, naming the row) or skip "
                "(drop, counted in the record).", "choices": list(ON_INVALID)})
    effective_batch_size: int = field(default=EFFECTIVE_BATCH_SIZE, metadata={
        "help": "Examples per optimizer step (the paper's 8) = per_device_train_batch_size x "
                "gradient_accumulation_steps x processes; accumulation is derived from it."})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep <output_dir>/checkpoints after the run finished (optimizer states are "
                "twice the model size)."})

    def __post_init__(self) -> None:
        # a YAML list of rates written as 2e-5 arrives as strings (YAML 1.1 needs "2.0e-5")
        if self.lr_sweep is not None and not isinstance(self.lr_sweep, (list, tuple)):
            self.lr_sweep = [self.lr_sweep]
        if self.lr_sweep is not None:
            self.lr_sweep = [check_learning_rate(v, "lr_sweep") for v in self.lr_sweep]


def _help(text: str) -> dict[str, str]:
    return {"help": text + " [amuro: the paper's default]"}


@dataclass
class AmuroSFTConfig(SFTConfig):
    """TRL's ``SFTConfig`` with the paper's recipe as defaults (see the module docstring)."""

    _argument_group_name = "training (TRL SFTConfig, paper defaults)"

    output_dir: str | None = field(default=None, metadata={
        "help": "Where the run is written (required): model, tokenizer, model card, "
                "amuro_run.json; checkpoints under <output_dir>/checkpoints."})
    learning_rate: float | None = field(default=None, metadata=_help(
        "Peak learning rate of AdamW; default: the paper's pick for the task (xsum 2e-7; mnli, "
        "paws, socialiqa, tulu 2e-6); other tasks need one."))
    num_train_epochs: float | None = field(default=None, metadata=_help(
        "Epochs; default 3 (tulu 5)."))
    warmup_steps: float = field(default=WARMUP_RATIO, metadata=_help(
        "Linear warm-up: a value < 1 is a ratio of the training steps (0.03: 3%%), >= 1 a "
        "number of steps."))
    gradient_accumulation_steps: int | None = field(default=None, metadata={
        "help": "Derived from effective_batch_size (per device x accumulation x processes); "
                "if given it must agree."})
    gradient_checkpointing: bool = field(default=False, metadata=_help(
        "Recompute activations in the backward pass (less memory, ~20%% slower); off: a 1B "
        "model fits a GPU without it."))
    bf16: bool | None = field(default=None, metadata=_help(
        "bf16 autocast over fp32 master weights; default: on with a bf16-capable GPU, off on "
        "CPU (pure bf16 weights would not move at lr 2e-7)."))
    max_length: int | None = field(default=2048, metadata=_help(
        "Max tokens per example; longer examples lose part of their input field (document, "
        "context, premise), never the completion."))
    padding_free: bool = field(default=True, metadata=_help(
        "Concatenate the examples of a batch without padding (attention kept per example by "
        "position_ids; still per_device_train_batch_size examples per step, no packing); "
        "false: TRL's per-example padding (same loss, slower)."))
    save_steps: float = field(default=250, metadata=_help(
        "Save a resumable checkpoint every N optimizer steps (the last two are kept)."))
    save_total_limit: int | None = field(default=2, metadata=_help(
        "Checkpoints kept under <output_dir>/checkpoints while training."))
    logging_first_step: bool = field(default=True, metadata=_help("Log the first step's loss."))
    logging_nan_inf_filter: bool = field(default=False, metadata=_help(
        "Hide NaN/inf losses in the logs (off: a NaN loss stops the run instead)."))
    disable_tqdm: bool | None = field(default=False, metadata={
        "help": "No progress bars."})

    def __post_init__(self) -> None:
        if not self.output_dir:  # TrainingArguments would write to ./trainer_output
            raise RecipeError("output_dir", "required: the folder the run is written to")
        if self.bf16 is None:
            import torch

            self.bf16 = (not self.use_cpu and not self.fp16 and torch.cuda.is_available()
                         and torch.cuda.is_bf16_supported())
        with warnings.catch_warnings():
            # transformers warns whenever `gradient_checkpointing` (TRL's name, set by every
            # SFTConfig) is not None; what is meant is unambiguous here
            warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated")
            warnings.filterwarnings("ignore",
                                    message="`gradient_checkpointing_kwargs` is deprecated")
            super().__post_init__()
