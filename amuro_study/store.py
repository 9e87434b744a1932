"""The result store: one folder per unit, and a unit is done iff its ``result.json`` exists.

Layout under ``<output_dir>/units/<stage>/<name>/`` (the folder name is made for people to read
from the unit: :func:`amuro_study.plan.unit_folder`; ids come from the JSON files, never from
folder names)::

    unit.json      the typed identity (written first, informational)
    result.json    the result, written last and atomically (temp file + fsync + os.replace)
    error.json     the last failure (traceback); removed when the unit is retried
    log.txt        the libraries' log lines and output while the unit ran
    lm_eval/       an evaluation's lm-eval output, as ``lm_eval --output_path`` writes it:
                   ``results_<date>.json`` and ``samples_<task>_<date>.jsonl``
    model/         a fine-tuned model (``amuro_sft`` output; resumes from its own checkpoints)
    step_<k>/      demo pre-training checkpoints

Killing a run at any moment leaves either no ``result.json`` (the unit is redone, its partial
files cleared first) or a complete one (the unit is skipped). One path per unit means a result
can never be duplicated; an ``fcntl`` lock per unit keeps two live runners off the same unit
(the kernel drops the lock when a process dies, even by SIGKILL).

Storage errors (a full disk, a read-only folder) are errors of the unit that meets them: the
runner records them like any other failure and goes on; :meth:`ResultStore.write_error` says so
on the outcome when even the error record cannot be written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from amuro_sft.atomic import write_json_atomic

RESULT = "result.json"
ERROR = "error.json"
IDENTITY = "unit.json"
LOCK = ".lock"


class ResultStore:
    """Results of the units of a study, keyed by unit id.

    ``folders`` maps each id to its folder under ``units/`` (a plan's
    :attr:`~amuro_study.plan.Plan.unit_folders`); an id not in it is its own folder name.
    """

    def __init__(self, root: str | os.PathLike[str],
                 folders: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.folders = dict(folders or {})

    def unit_dir(self, uid: str) -> Path:
        """The folder of unit ``uid``."""
        return self.root / "units" / self.folders.get(uid, uid)

    def result_path(self, uid: str) -> Path:
        """Path of the done-marker and result of ``uid``."""
        return self.unit_dir(uid) / RESULT

    def is_done(self, uid: str) -> bool:
        """Whether ``uid`` finished (its result file exists)."""
        return self.result_path(uid).is_file()

    def done_ids(self) -> set[str]:
        """Ids of the finished units of :attr:`folders` (without folders: of every result
        file under ``units/``, read from the file)."""
        if self.folders:
            return {uid for uid in self.folders if self.is_done(uid)}
        units = self.root / "units"
        if not units.is_dir():
            return set()
        done = set()
        for path in units.rglob(RESULT):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                done.add(json.loads(path.read_text(encoding="utf-8")).get("uid"))
        return done - {None}

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

    def try_write_error(self, uid: str, error: BaseException, description: str = "") -> str:
        """:meth:`write_error` that never raises: ``""`` when recorded, else a note saying why
        ``error.json`` could not be written (a full or read-only disk), for the outcome."""
        try:
            self.write_error(uid, error, description)
        except OSError as err:
            return f" ({ERROR} not written: {err.strerror or err})"
        return ""

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

    def adopt_old_folders(self) -> tuple[list[str], list[str]]:
        """Move the units of an output folder in the older layout (``units/<uid>/``) whose id is
        still one of the plan's to their folders: finished units are renamed (their files are
        relative to their folder), and unfinished ones are removed (they are redone, like any
        half-done unit). Returns
        ``(moved, removed)`` ids. Safe when another runner does the same at once."""
        moved: list[str] = []
        removed: list[str] = []
        for uid, folder in self.folders.items():
            old, new = self.root / "units" / uid, self.unit_dir(uid)
            if folder == uid or not old.is_dir() or new.exists():
                continue
            with contextlib.suppress(FileNotFoundError, FileExistsError, OSError):
                if (old / RESULT).is_file():
                    new.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(old, new)
                    moved.append(uid)
                else:
                    shutil.rmtree(old)
                    removed.append(uid)
        return moved, removed

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
