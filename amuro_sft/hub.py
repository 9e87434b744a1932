"""Hub access: resolve a checkpoint revision to its commit hash, and push a finished run.

Branch names move, commit hashes do not: every run records the hash it actually loaded, and loads
the model and tokenizer *at that hash*. Local paths have no revision (TRL and transformers ignore
``revision`` for them silently, so passing one is an error here).

Tokens are read by ``huggingface_hub`` itself (``HF_TOKEN`` or the login cache) and never logged.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from amuro_tasks.errors import AmuroConfigError

log = logging.getLogger("amuro")

_BRANCH_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ResolvedModel:
    """Where the base model comes from and the exact version loaded."""

    model: str
    revision: str | None
    """The revision asked for (a branch such as ``step342000-tokens1434B``), ``None`` = default."""
    commit_sha: str | None
    """The commit hash the revision resolved to (``None`` for a local directory)."""
    is_local: bool

    @property
    def load_revision(self) -> str | None:
        """What to pass to ``from_pretrained``: the resolved hash, so what is recorded is loaded."""
        return self.commit_sha if not self.is_local else None


def is_local_model(model: str) -> bool:
    """Whether ``model`` names a local directory (rather than a hub id)."""
    return Path(model).expanduser().is_dir()


def _cached_sha(model: str, revision: str) -> str | None:
    """The hash a revision pointed to when it was last downloaded (offline fallback)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    ref = Path(HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "refs" / revision
    if ref.is_file():
        return ref.read_text().strip() or None
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        snap = Path(HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "snapshots" / revision
        if snap.is_dir():
            return revision
    return None


def _branches(api, model: str) -> list[str]:
    try:
        return [b.name for b in api.list_repo_refs(model).branches]
    except Exception:  # noqa: BLE001 - only used to improve an error message
        return []


def resolve_revision(model: str, revision: str | None) -> ResolvedModel:
    """Resolve ``revision`` of hub model ``model`` to a commit hash, or raise a clear error.

    A revision that is a step prefix (``step342000``) resolves to the one branch that starts with
    it (``step342000-tokens1434B``). Offline (``HF_HUB_OFFLINE=1``), the local cache's refs serve.
    """
    if is_local_model(model):
        if revision is not None:
            raise AmuroConfigError(
                f"--revision {revision!r} given with a local model directory {model!r}: local "
                "directories have no revisions (transformers would silently ignore it)"
            )
        return ResolvedModel(model=str(Path(model).expanduser()), revision=None, commit_sha=None,
                             is_local=True)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    wanted = revision or "main"
    api = HfApi()
    try:
        sha = api.model_info(model, revision=wanted).sha
    except RevisionNotFoundError:
        branches = _branches(api, model)
        matches = [b for b in branches if b.startswith(f"{wanted}-")]
        if len(matches) == 1:
            log.info("revision %s -> branch %s", wanted, matches[0])
            return resolve_revision(model, matches[0])
        near = sorted(branches, key=lambda b: _distance(b, wanted))[:5]
        raise AmuroConfigError(
            f"revision {wanted!r} does not exist for {model!r}"
            + (f"; closest branches: {', '.join(near)}" if near else "")
        ) from None
    except RepositoryNotFoundError:
        raise AmuroConfigError(
            f"model {model!r} is neither a local directory nor a hub repository you can access"
        ) from None
    except OfflineModeIsEnabled:
        sha = _cached_sha(model, wanted)
        if sha is None:
            raise AmuroConfigError(
                f"offline (HF_HUB_OFFLINE=1) and revision {wanted!r} of {model!r} is not in the "
                "local cache: cannot resolve its commit hash"
            ) from None
    if not sha:
        raise AmuroConfigError(f"the hub returned no commit hash for {model!r}@{wanted}")
    return ResolvedModel(model=model, revision=revision, commit_sha=sha, is_local=False)


def _distance(branch: str, wanted: str) -> float:
    """Closeness of branch names for error messages: numeric step distance when both have one."""
    a, b = re.match(r"step(\d+)", branch), re.match(r"step(\d+)", wanted)
    if a and b:
        return abs(int(a.group(1)) - int(b.group(1)))
    return float(len(set(branch) ^ set(wanted)) + 1e9)


def default_branch_name(revision: str | None, task: str, lr: float, seed: int,
                        fmt: str = "default") -> str:
    """Hub branch of a run: base revision, task, (format), learning rate, seed."""
    parts = [revision or "main", task]
    if fmt != "default":
        parts.append(fmt)
    parts += [f"lr{lr:g}", f"seed{seed}"]
    return _BRANCH_BAD.sub("-", "_".join(parts))


def check_push_credentials() -> None:
    """Fail early (before training) when pushing is asked for but no token is configured."""
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise AmuroConfigError("--push-to-hub given but HF_HUB_OFFLINE=1")
    if get_token() is None:
        raise AmuroConfigError(
            "--push-to-hub given but no Hugging Face token is configured "
            "(set HF_TOKEN or run `hf auth login`)"
        )


def push_run(out_dir: Path, repo: str, branch: str, *, private: bool = True) -> str:
    """Upload a finished run to ``repo`` on ``branch`` (created first); return the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    api.create_branch(repo, branch=branch, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo, folder_path=str(out_dir), revision=branch, repo_type="model",
        commit_message=f"amuro-sft run {branch}",
        ignore_patterns=["checkpoints/*", "*.tmp", "amuro_run_args.json"],
    )
    url = getattr(info, "commit_url", None) or str(info)
    log.info("pushed %s to %s@%s", out_dir, repo, branch)
    return url
