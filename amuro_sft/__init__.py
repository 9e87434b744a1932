"""amuro_sft: fine-tune checkpoints on amuro's tasks with TRL, as in "Amuro & Char" (§3.2).

The recipe is TRL's dataclasses (``SFTConfig`` with the paper's defaults, ``ModelConfig``) beside
amuro's own options, one flat mapping of options everywhere::

    from amuro_sft import recipe_from_options, run_sft, run_lr_sweep
    recipe = recipe_from_options({"model_name_or_path": "allenai/OLMo-1B-hf",
                                  "model_revision": "step342000",
                                  "task": "mnli", "output_dir": "runs/mnli"})
    out = run_sft(recipe)
    best = run_lr_sweep(recipe.with_options(lr_sweep=[2e-5, 2e-6, 2e-7], output_dir="runs/sw"))

CLI: ``amuro-sft --help`` (TRL's flags, ``--config recipe.yaml``). See docs/sft.md.

Names are imported lazily: ``from amuro_sft.atomic import ...`` (the study's writer) does not
import torch or TRL.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PAPER_EPOCHS": "amuro_sft.tasks", "PAPER_LR": "amuro_sft.tasks",
    "PAPER_LR_GRID": "amuro_sft.tasks", "PAPER_TASKS": "amuro_sft.tasks",
    "trainable_tasks": "amuro_sft.tasks",
    "AmuroArguments": "amuro_sft.config", "AmuroSFTConfig": "amuro_sft.config",
    "AmuroSFTError": "amuro_sft.config", "NonFiniteLossError": "amuro_sft.config",
    "RecipeError": "amuro_sft.config", "split_batch": "amuro_sft.config",
    "SFTRecipe": "amuro_sft.recipe", "recipe_from_options": "amuro_sft.recipe",
    "load_recipe": "amuro_sft.recipe", "write_recipe": "amuro_sft.recipe",
    "build_sft_config": "amuro_sft.train", "run_lr_sweep": "amuro_sft.train",
    "run_sft": "amuro_sft.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'amuro_sft' has no attribute {name!r}")
