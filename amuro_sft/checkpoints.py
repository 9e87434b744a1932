"""Which training checkpoints can be resumed from: complete iff their files parse.

A checkpoint the Trainer was writing when the process died, or when the disk filled up, can hold
every file name with some of them empty or cut short; resuming from it fails on every rerun
(``JSONDecodeError``, a truncated ``safetensors`` header, a broken ``torch.save`` zip). Each file
that can be checked cheaply is parsed here (without loading tensors): ``trainer_state.json``
(JSON with a ``global_step``), every ``*.safetensors`` (header and declared size),
every ``*.pt``/``*.pth`` (``torch.save``'s zip directory). Sharded FSDP and DeepSpeed states are
recognised by their layout (``pytorch_model_fsdp_*``/``optimizer_*`` folders with files,
``global_step*/`` + ``latest``).

Hand-written: ``transformers.trainer_utils.get_last_checkpoint`` picks the newest folder by name
and checks nothing.
"""

from __future__ import annotations

import json
import logging
import struct
import zipfile
from pathlib import Path

log = logging.getLogger("amuro")

PREFIX = "checkpoint-"
STATE = "trainer_state.json"


def _safetensors_ok(path: Path) -> bool:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                return False
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                return False
            header = json.loads(fh.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        return 8 + n + max(ends, default=0) <= size
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _state_step(ckpt: Path) -> int | None:
    try:
        state = json.loads((ckpt / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def _non_empty_dir(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() and p.stat().st_size > 0 for p in path.rglob("*"))


def checkpoint_complete(ckpt: Path) -> bool:
    """Whether ``ckpt`` can be resumed from: its trainer state, weights and optimizer state are
    there and parse, in any layout the Trainer writes."""
    try:
        return _complete(ckpt)
    except OSError:  # vanished while being looked at (another rank removing a torn one)
        return False


def _complete(ckpt: Path) -> bool:
    if _state_step(ckpt) is None:
        return False
    deepspeed = (ckpt / "latest").is_file() and any(
        _non_empty_dir(p) for p in ckpt.glob("global_step*"))
    safetensors = list(ckpt.glob("*.safetensors"))
    if any(not _safetensors_ok(p) for p in safetensors):
        return False
    pickles = [p for p in ckpt.iterdir() if p.is_file() and p.suffix in (".pt", ".pth", ".bin")]
    if any(not zipfile.is_zipfile(p) for p in pickles):
        return False
    fsdp_weights = any(_non_empty_dir(p) for p in ckpt.glob("pytorch_model_fsdp_*"))
    fsdp_optim = any(_non_empty_dir(p) for p in ckpt.glob("optimizer_*"))
    weights = deepspeed or bool(safetensors) or any(ckpt.glob("pytorch_model*.bin")) \
        or fsdp_weights
    optimizer = deepspeed or (ckpt / "optimizer.pt").is_file() or fsdp_optim
    return weights and optimizer


def checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` folder, oldest first."""
    if not checkpoint_dir.is_dir():
        return []
    found = []
    for child in checkpoint_dir.iterdir():
        if child.is_dir() and child.name.startswith(PREFIX):
            try:
                found.append((int(child.name[len(PREFIX):]), child))
            except ValueError:
                continue
    return sorted(found)


def last_good_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``checkpoint_dir`` (incomplete ones are skipped,
    with a warning), or ``None``."""
    for _step, ckpt in reversed(checkpoints(checkpoint_dir)):
        if checkpoint_complete(ckpt):
            return ckpt
        log.warning("checkpoint %s is incomplete (a file is missing, empty or cut short): "
                    "skipped", ckpt)
    return None


def incomplete_after(checkpoint_dir: Path, good: Path | None) -> list[Path]:
    """Checkpoint folders newer than ``good`` (all of them if ``None``): the ones a resume from
    ``good`` will write again, so they must not be left half-written in the way."""
    floor = -1 if good is None else int(good.name[len(PREFIX):])
    return [ckpt for step, ckpt in checkpoints(checkpoint_dir) if step > floor]
