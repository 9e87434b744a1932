"""The one atomic writer of amuro: fine-tuning runs and studies write every record through it.

A file is written to a temp file in the same folder (``.<name>.<pid>-<random>.tmp``), flushed,
``fsync``-ed and renamed over the target with ``os.replace``; the folder is then ``fsync``-ed so
the rename survives a power cut. On any failure (a full disk, a read-only folder, a kill signal
raised as an exception) the temp file is removed and the error propagates, so nothing
half-written is left behind and the target is either the old file or the new one. Files are
created with mode ``0666`` masked by the umask, like ``open()``'s (``tempfile.mkstemp`` would
make them ``0600``).

Hand-written because neither the standard library nor the libraries amuro uses ship an atomic
writer (``huggingface_hub`` and ``transformers`` write in place).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")


def temp_path(target: Path) -> Path:
    """A fresh temp file name next to ``target`` (what :func:`is_temp_file` recognises)."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a temp file this module writes (left over only by a hard kill)."""
    return bool(_TEMP.match(Path(path).name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files in ``folder`` (not below it) that a killed writer left: those
    whose writer process is gone (a hard kill skips the writer's own clean-up)."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        match = _TEMP.match(path.name)
        if match and path.is_file() and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in folder ``path`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename); return ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON to ``path`` atomically; return ``path``."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document at ``path``, or ``None`` if there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
