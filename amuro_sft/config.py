"""The run configuration of one fine-tuning run, with the paper's defaults (§3.2, Appendix A).

Everything that can be wrong with a run's options is checked in :meth:`SFTRunConfig.validate`,
before any data, model or GPU is touched.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.prompts import FORMATS
from amuro_tasks.suite import FINETUNE_TASKS

TULU = "tulu"
"""The instruction-tuning task (TULU-v2 mixture, conversations)."""

TASKS: tuple[str, ...] = (*FINETUNE_TASKS, TULU)
"""Tasks ``amuro-sft`` trains on: the paper's four supervised tasks and TULU instruction tuning."""

PAPER_LR: dict[str, float] = {
    "mnli": 2e-6, "paws": 2e-6, "socialiqa": 2e-6, "xsum": 2e-7, TULU: 2e-6,
}
"""The learning rate the paper picked per task from ``{2e-5, 2e-6, 2e-7}`` (Appendix A)."""

PAPER_LR_GRID: tuple[float, ...] = (2e-5, 2e-6, 2e-7)
"""The paper's learning-rate grid."""

PAPER_EPOCHS: dict[str, float] = {TULU: 5.0}
"""Epochs per task: 3 for the supervised tasks, 5 for TULU."""
DEFAULT_EPOCHS = 3.0

WARMUP_RATIO = 0.03
"""Linear warm-up over the first 3% of the steps (the paper's and the release's)."""


class AmuroSFTError(RuntimeError):
    """A fine-tuning run cannot start or cannot finish (the message says why and what to do)."""


class NonFiniteLossError(AmuroSFTError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def _check_lr(value: Any, what: str = "learning rate") -> float:
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise AmuroConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise AmuroConfigError(f"{what} must be a finite number > 0, got {value!r}")
    return lr


@dataclass
class SFTRunConfig:
    """One fine-tuning run: base checkpoint, task, prompt format and the training recipe.

    Defaults are the paper's: 6,000 training examples drawn with seed 42, 3 epochs (5 for TULU),
    effective batch size 8, AdamW with a linear schedule and 3% warm-up, weight decay 0, max length
    2048, and the paper's learning rate for the task when ``learning_rate`` is ``None``.
    """

    model: str
    task: str
    output_dir: str | Path
    revision: str | None = None
    format: str = "default"
    learning_rate: float | None = None
    seed: int = 42
    num_train_examples: int | None = 6000
    epochs: float | None = None
    effective_batch_size: int = 8
    per_device_batch_size: int = 8
    max_steps: int = -1
    max_length: int = 2048
    data_source: str | None = None
    push_to_hub: str | None = None
    hub_branch: str | None = None
    trust_remote_code: bool = False
    # ---- additions (all optional)
    data_seed: int = 42
    """Seed of the training-sample shuffle (the paper's ``shuffle(seed=42)``)."""
    sample_fraction: float | None = None
    """TULU only: train on ``round(fraction x rows of the split)`` examples (the first usable ones
    of the seeded shuffle) instead of ``num_train_examples``; the authors' release trains on a 5%
    sample, ``0.05``. Only the rows needed are validated and tokenized."""
    val_examples: int = 0
    """Rows held out from the training split (after the sample) for the validation loss."""
    weight_decay: float = 0.0
    warmup_ratio: float = WARMUP_RATIO
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    tuned: bool = True
    """Padding-free batches, bf16 autocast on GPU, fused AdamW, no gradient checkpointing; ``False``
    gives TRL's per-example padding (same losses, slower)."""
    bf16: bool | None = None
    """bf16 autocast with fp32 master weights; ``None``: on when a bf16-capable GPU is used."""
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None
    """``None``: FlashAttention-2 when installed and on GPU, else SDPA."""
    use_cpu: bool = False
    save_steps: int = 250
    logging_steps: int = 10
    keep_checkpoints: bool = False
    """Keep ``checkpoints/`` after the run finished (optimizer states are twice the model size)."""
    on_invalid: str = "error"
    """Training rows that fail validation: ``error`` (default) or ``skip`` (counted, recorded)."""
    disable_tqdm: bool = False
    extra_sft_args: dict[str, Any] = field(default_factory=dict)
    """Further ``SFTConfig`` fields (recorded in the provenance record)."""

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)

    # ------------------------------------------------------------------ derived values
    @property
    def is_tulu(self) -> bool:
        return self.task == TULU

    @property
    def lr(self) -> float:
        """The learning rate actually used (the paper's pick when none was given)."""
        if self.learning_rate is None:
            return PAPER_LR[self.task]
        return _check_lr(self.learning_rate)

    @property
    def num_epochs(self) -> float:
        if self.epochs is not None:
            return float(self.epochs)
        return PAPER_EPOCHS.get(self.task, DEFAULT_EPOCHS)

    @property
    def train_set(self) -> str | None:
        """The evaluation set whose training split is used (``None`` for TULU)."""
        return None if self.is_tulu else FINETUNE_TASKS[self.task].train_set

    def validate(self) -> SFTRunConfig:
        """Raise :class:`AmuroConfigError` on any invalid option; return ``self``."""
        if self.task not in TASKS:
            raise AmuroConfigError(f"unknown task {self.task!r}; known tasks: {', '.join(TASKS)}")
        if self.format not in FORMATS:
            raise AmuroConfigError(
                f"unknown prompt format {self.format!r}; known formats: {', '.join(FORMATS)}"
            )
        if self.is_tulu and self.format != "default":
            raise AmuroConfigError("task 'tulu' is conversational: only --format default applies")
        self.lr  # noqa: B018 - validates the learning rate
        if self.num_train_examples is not None and self.num_train_examples < 1:
            raise AmuroConfigError("num_train_examples must be >= 1 (or None for all rows)")
        if self.sample_fraction is not None:
            if not self.is_tulu:
                raise AmuroConfigError("sample_fraction applies to task 'tulu' only")
            if not 0 < self.sample_fraction <= 1:
                raise AmuroConfigError("sample_fraction must be in (0, 1]")
        if self.epochs is not None and not (self.epochs > 0):
            raise AmuroConfigError(f"epochs must be > 0, got {self.epochs!r}")
        for name in ("effective_batch_size", "per_device_batch_size", "max_length", "save_steps",
                     "logging_steps"):
            if getattr(self, name) < 1:
                raise AmuroConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.effective_batch_size % self.per_device_batch_size:
            raise AmuroConfigError(
                f"effective_batch_size ({self.effective_batch_size}) must be a multiple of "
                f"per_device_batch_size ({self.per_device_batch_size})"
            )
        if self.val_examples < 0:
            raise AmuroConfigError("val_examples must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise AmuroConfigError("warmup_ratio must be in [0, 1)")
        if self.on_invalid not in ("error", "skip"):
            raise AmuroConfigError("on_invalid must be 'error' or 'skip'")
        if self.hub_branch is not None and self.push_to_hub is None:
            raise AmuroConfigError("hub_branch given without push_to_hub")
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            raise AmuroConfigError(
                f"push_to_hub must be a repo id 'owner/name', got {self.push_to_hub!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (the provenance record stores them all)."""
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        return out
