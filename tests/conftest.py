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


# --------------------------------------------------------------------------- a SLURM cluster
@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node SLURM cluster on this machine (``tests/slurm_cluster.py``).

    Installs the Debian packages when missing (root + apt-get), starts munged, slurmctld and
    slurmd, points ``SLURM_CONF`` at it; skipped, with the reason, where that cannot be done
    (``AMURO_REQUIRE_SLURM=1`` turns the skip into a failure). The daemons' logs are copied to
    a ``slurm-logs`` tmp folder at the end; a failing test that uses the cluster shows their
    tails in its report.
    """
    import shutil

    from slurm_cluster import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except ClusterUnavailable as err:
        if os.environ.get("AMURO_REQUIRE_SLURM") == "1":
            pytest.fail(f"no SLURM cluster: {err}")
        pytest.skip(f"no SLURM cluster here: {err}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        cluster.stop()
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        logs = tmp_path_factory.mktemp("slurm-logs")
        shutil.copytree(cluster.root / "log", logs, dirs_exist_ok=True)
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Append the SLURM daemons' log tails to the report of a failing cluster test."""
    report = yield
    cluster = getattr(item, "funcargs", {}).get("slurm_cluster")
    if cluster is not None and report.failed:
        report.sections.append(("SLURM daemon logs (tails)", cluster.log_tails()))
    return report
