"""Checkpoints: the one revision resolver and the one local fingerprint, and Hub publishing.

Used by ``amuro-sft`` (what a run loads and records), by the study (steps -> branches, the
commit of every checkpoint it scores) and by evaluation records alike:

* :func:`resolve_revision` turns a Hub revision into the commit hash it points to now (a bare
  step such as ``step343000`` resolves to its one branch ``step343000-tokens1438B``), or a local
  directory into its :func:`checkpoint_fingerprint`. Branch names move, commit hashes do not:
  every run records the hash it loaded, and loads model and tokenizer *at that hash*.
* :func:`branch_for_step` maps a pre-training step to the branch named after it (OLMo's
  ``step{N}-tokens{M}B``, Pythia's ``step{N}``); the branches come from
  ``huggingface_hub.list_repo_refs`` (:func:`list_branches`).
* :func:`checkpoint_fingerprint`: ``sha256:`` of a local checkpoint's weight files and config.

Tokens are read by ``huggingface_hub`` itself (``HF_TOKEN`` or the login cache) and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amuro_tasks.errors import AmuroConfigError

log = logging.getLogger("amuro")

_BRANCH_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_STEP_REVISION = re.compile(r"^step(\d+)(?:-tokens\d+[KMBT]?)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
"""Files a checkpoint fingerprint covers (with ``config.json``)."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a checkpoint comes from and the exact version loaded."""

    model: str
    revision: str | None
    """The revision asked for (a branch such as ``step343000-tokens1438B``), ``None`` = default."""
    commit_sha: str | None
    """The Hub commit hash the revision resolved to (``None`` for a local directory, or when it
    could not be resolved and ``strict=False``)."""
    is_local: bool
    fingerprint: str | None = None
    """Local directories: :func:`checkpoint_fingerprint` of what was loaded."""

    @property
    def load_revision(self) -> str | None:
        """What to pass to ``from_pretrained``: the resolved hash, so what is recorded is loaded."""
        return None if self.is_local else (self.commit_sha or self.revision)

    @property
    def checkpoint_id(self) -> str | None:
        """The immutable id of the checkpoint: its commit hash, or its local fingerprint."""
        return self.fingerprint if self.is_local else self.commit_sha


# ------------------------------------------------------------------------------ local models
def is_local_model(model: str) -> bool:
    """Whether ``model`` names a local directory (rather than a Hub id)."""
    return Path(model).expanduser().is_dir()


def looks_like_path(model: str) -> bool:
    """Whether ``model`` can only be meant as a local path (it is not a valid Hub repo id)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model:
        return True
    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return False


def check_model_exists(model: str) -> None:
    """Raise a clear error when ``model`` is meant as a local path that does not exist.

    (transformers would report it as an invalid Hub repo id, ``HFValidationError``.)"""
    path = Path(model).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise AmuroConfigError(f"{model!r} is a file, not a model directory")
    if looks_like_path(model):
        raise AmuroConfigError(
            f"no such model directory {model!r} (and it is not a Hub repo id 'owner/name')"
        )


def checkpoint_fingerprint(model_dir: str | os.PathLike[str]) -> str | None:
    """``sha256:<20 hex>`` of a local checkpoint's ``config.json`` and weight files (names and
    contents, in name order): what was actually loaded. ``None`` when it holds no weights."""
    root = Path(model_dir)
    weights = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not weights:
        return None
    digest = hashlib.sha256()
    for path in [root / "config.json", *weights]:
        if not path.is_file():
            continue
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()[:20]}"


# ------------------------------------------------------------------------------ steps/branches
def revision_step(revision: str) -> int | None:
    """The pre-training step of a Hub revision named ``step{N}`` or ``step{N}-tokens{M}B``.

    These names are the Hub repositories' documented branch scheme (OLMo, Pythia); ``main`` and
    commit hashes have no step."""
    match = _STEP_REVISION.match(revision)
    return int(match.group(1)) if match else None


def list_branches(model: str) -> list[str]:
    """Branch names of Hub model ``model`` (``huggingface_hub.list_repo_refs``)."""
    from huggingface_hub import list_repo_refs

    return [b.name for b in list_repo_refs(model).branches]


def _nearest(branches: Sequence[str], wanted: str, n: int = 5) -> list[str]:
    """Branches closest to ``wanted``: by step distance when both have one."""
    step = revision_step(wanted)

    def distance(branch: str) -> float:
        other = revision_step(branch)
        if step is not None and other is not None:
            return abs(other - step)
        return float(len(set(branch) ^ set(wanted)) + 1e9)

    return sorted(branches, key=distance)[:n]


def branch_for_step(model: str, step: int, branches: Sequence[str]) -> str:
    """The branch of ``branches`` named after pre-training ``step`` (``step{N}[-tokens{M}B]``),
    or an :class:`AmuroConfigError` naming the closest branches."""
    for name in branches:
        if revision_step(name) == step:
            return name
    near = _nearest([b for b in branches if revision_step(b) is not None], f"step{step}", 3)
    raise AmuroConfigError(
        f"revision 'step{step}' does not exist for {model!r}: no branch for step {step}; "
        + (f"closest branches: {', '.join(near)}" if near else "it has no step branches")
    )


# ------------------------------------------------------------------------------ resolution
def _cached_sha(model: str, revision: str) -> str | None:
    """The hash a revision pointed to when it was last downloaded (offline fallback)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path(HF_HUB_CACHE) / f"models--{model.replace('/', '--')}"
    ref = folder / "refs" / revision
    if ref.is_file():
        return ref.read_text().strip() or None
    if _COMMIT.match(revision) and (folder / "snapshots" / revision).is_dir():
        return revision
    return None


def resolve_revision(model: str, revision: str | None = None, *,
                     strict: bool = True) -> ResolvedModel:
    """Resolve ``revision`` of ``model`` (a Hub id or a local directory).

    Hub: the commit hash ``revision`` (default ``main``) points to; a bare step (``step342000``)
    resolves to its one branch; offline (``HF_HUB_OFFLINE=1``) the local cache's refs serve.
    Local directory: no revision (``main`` is taken as none: transformers ignores revisions of
    local paths silently, so any other is an error) and its :func:`checkpoint_fingerprint`.

    ``strict=False`` (provenance of evaluation records) returns ``commit_sha=None`` instead of
    raising when the Hub cannot say (offline and not cached, private, no network).
    """
    if is_local_model(model):
        if revision not in (None, "main"):
            raise AmuroConfigError(
                f"revision {revision!r} given with a local model directory {model!r}: local "
                "directories have no revisions (transformers would silently ignore it)"
            )
        path = str(Path(model).expanduser())
        return ResolvedModel(model=path, revision=None, commit_sha=None, is_local=True,
                             fingerprint=checkpoint_fingerprint(path))
    if not strict:
        try:
            return resolve_revision(model, revision, strict=True)
        except (AmuroConfigError, OSError) as err:
            log.debug("could not resolve %s@%s: %s", model, revision or "main", err)
            return ResolvedModel(model=model, revision=revision, commit_sha=None, is_local=False)
    check_model_exists(model)
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
        try:
            branches = [b.name for b in api.list_repo_refs(model).branches]
        except Exception:  # noqa: BLE001 - only used to improve the error message
            branches = []
        step = revision_step(wanted)
        if step is not None and wanted == f"step{step}":
            return resolve_revision(model, branch_for_step(model, step, branches))
        near = _nearest(branches, wanted)
        raise AmuroConfigError(
            f"revision {wanted!r} does not exist for {model!r}"
            + (f"; closest branches: {', '.join(near)}" if near else "")
        ) from None
    except RepositoryNotFoundError:
        raise AmuroConfigError(
            f"model {model!r} is neither a local directory nor a Hub repository you can access"
        ) from None
    except OfflineModeIsEnabled:
        sha = _cached_sha(model, wanted)
        if sha is None:
            raise AmuroConfigError(
                f"offline (HF_HUB_OFFLINE=1) and revision {wanted!r} of {model!r} is not in the "
                "local cache: cannot resolve its commit hash"
            ) from None
    except Exception as err:  # noqa: BLE001 - network errors: say what could not be resolved
        raise AmuroConfigError(
            f"cannot resolve revision {wanted!r} of {model!r} on the Hub: "
            f"{type(err).__name__}: {err}"
        ) from None
    if not sha:
        raise AmuroConfigError(f"the Hub returned no commit hash for {model!r}@{wanted}")
    return ResolvedModel(model=model, revision=revision, commit_sha=sha, is_local=False)


def checkpoint_id(model: str, revision: str | None = None) -> str | None:
    """Best-effort immutable id of a checkpoint for records: the Hub commit hash of
    ``revision``, a local directory's fingerprint, ``None`` when neither can be had."""
    try:
        return resolve_revision(model, revision, strict=False).checkpoint_id
    except AmuroConfigError:
        return None


# ------------------------------------------------------------------------------ publishing
def default_branch_name(revision: str | None, task: str, lr: float, seed: int,
                        fmt: str = "default") -> str:
    """Hub branch of a run: base revision, task, (format), learning rate, seed."""
    parts = [revision or "main", task]
    if fmt != "default":
        parts.append(fmt)
    parts += [f"lr{lr:g}", f"seed{seed}"]
    return _BRANCH_BAD.sub("-", "_".join(parts))


def check_push_credentials(token: str | None = None) -> None:
    """Fail early (before training) when pushing is asked for but no token is configured."""
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise AmuroConfigError("--push_to_hub given but HF_HUB_OFFLINE=1")
    if token is None and get_token() is None:
        raise AmuroConfigError(
            "--push_to_hub given but no Hugging Face token is configured "
            "(set HF_TOKEN or run `hf auth login`)"
        )


def push_run(out_dir: Path, repo: str, branch: str, *, private: bool = True,
             token: str | None = None) -> str:
    """Upload a finished run to ``repo`` on ``branch`` (created first); return the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token) if token else HfApi()
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    api.create_branch(repo, branch=branch, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo, folder_path=str(out_dir), revision=branch, repo_type="model",
        commit_message=f"amuro-sft run {branch}",
        ignore_patterns=["checkpoints/*", "*.tmp", "amuro_run_args.json", "runs/*"],
    )
    url = getattr(info, "commit_url", None) or str(info)
    log.info("pushed %s to %s@%s", out_dir, repo, branch)
    return url
