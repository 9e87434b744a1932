"""The result store: one folder per unit, and a unit is done iff its ``result.json`` exists.

Layout under ``<output_dir>/units/<uid>/``::

    unit.json      the typed identity (written first, informational)
    result.json    the result, written last and atomically (temp file + fsync + os.replace)
    error.json     the last failure (traceback); removed when the unit is retried
    samples/       per-sample lm-eval logs of an evaluation (``<task>.jsonl``)
    model/         a fine-tuned model (``amuro_sft`` output; resumes from its own checkpoints)
    step_<k>/      demo pre-training checkpoints

Killing a run at any moment leaves either no ``result.json`` (the unit is redone, its partial
files cleared first) or a complete one (the unit is skipped). One path per unit means a result
can never be duplicated; an ``fcntl`` lock per unit keeps two live runners off the same unit
(the kernel drops the lock when a process dies, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amuro_sft.atomic import write_json_atomic

RESULT = "result.json"
ERROR = "error.json"
IDENTITY = "unit.json"
LOCK = ".lock"


class ResultStore:
    """Results of the units of a study, keyed by unit id."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def unit_dir(self, uid: str) -> Path:
        """The folder of unit ``uid``."""
        return self.root / "units" / uid

    def result_path(self, uid: str) -> Path:
        """Path of the done-marker and result of ``uid``."""
        return self.unit_dir(uid) / RESULT

    def is_done(self, uid: str) -> bool:
        """Whether ``uid`` finished (its result file exists)."""
        return self.result_path(uid).is_file()

    def done_ids(self) -> set[str]:
        """Ids of every finished unit under this root."""
        units = self.root / "units"
        if not units.is_dir():
            return set()
        return {p.parent.name for p in units.glob(f"*/{RESULT}")}

    def read_result(self, uid: str) -> dict[str, Any]:
        """The result payload of a finished unit."""
        return json.loads(self.result_path(uid).read_text(encoding="utf-8"))

    def write_result(self, uid: str, payload: dict[str, Any]) -> Path:
        """Mark ``uid`` done with ``payload`` (atomic); clears a stale error record."""
        path = write_json_atomic(self.result_path(uid), payload)
        with contextlib.suppress(FileNotFoundError):
            (self.unit_dir(uid) / ERROR).unlink()
        return path

    def write_identity(self, uid: str, identity: dict[str, Any]) -> None:
        """Record the typed identity of ``uid`` next to its result."""
        write_json_atomic(self.unit_dir(uid) / IDENTITY, {"uid": uid, **identity})

    def write_error(self, uid: str, error: BaseException, description: str = "") -> Path:
        """Record that ``uid`` failed (the unit stays not-done and is retried next run)."""
        payload = {
            "uid": uid, "description": description, "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        return write_json_atomic(self.unit_dir(uid) / ERROR, payload)

    def read_error(self, uid: str) -> dict[str, Any] | None:
        """The last failure of ``uid``, if any."""
        path = self.unit_dir(uid) / ERROR
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def clear_partial(self, uid: str, keep: tuple[str, ...] = ()) -> None:
        """Remove what a half-done attempt left (except ``keep`` and the lock), before a redo."""
        folder = self.unit_dir(uid)
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            if child.name in (LOCK, RESULT, *keep):
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    @contextlib.contextmanager
    def claim(self, uid: str) -> Iterator[None]:
        """Hold the unit's lock (blocks while another live process holds it)."""
        folder = self.unit_dir(uid)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
