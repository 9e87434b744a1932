"""amuro_sft: fine-tune checkpoints on amuro's tasks with TRL, as in "Amuro & Char" (§3.2).

Python API::

    from amuro_sft import SFTRunConfig, run_sft, run_lr_sweep
    out = run_sft(SFTRunConfig(model="allenai/OLMo-1B-hf", revision="step342000-tokens1434B",
                               task="mnli", output_dir="runs/mnli"))
    best = run_lr_sweep(SFTRunConfig(...), [2e-5, 2e-6, 2e-7])

CLI: ``amuro-sft --help``. See docs/sft.md.
"""

from __future__ import annotations

from amuro_sft.config import (
    PAPER_EPOCHS,
    PAPER_LR,
    PAPER_LR_GRID,
    TASKS,
    AmuroSFTError,
    NonFiniteLossError,
    SFTRunConfig,
)
from amuro_sft.train import build_sft_config, run_lr_sweep, run_sft

__all__ = [
    "PAPER_EPOCHS", "PAPER_LR", "PAPER_LR_GRID", "TASKS", "AmuroSFTError", "NonFiniteLossError",
    "SFTRunConfig", "build_sft_config", "run_lr_sweep", "run_sft",
]
