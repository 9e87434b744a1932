"""Shared test set-up: everything offline, fixtures as the data source, one tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No hub, ever: the real loading code runs against the shipped fixtures.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["AMURO_DATA"] = "fixtures"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random OLMo-architecture model + tokenizer trained on the fixture texts."""
    from amuro_tasks.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with different weights (same tokenizer recipe)."""
    from amuro_tasks.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-2"), seed=1, hidden_size=48)
