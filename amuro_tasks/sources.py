"""Where a split's raw rows come from, and the record of what was read.

Three kinds of source, one function (:func:`open_split`) for all of them:

* **the Hub**, at a pinned commit where one is declared (``EvalSet.revision``), else at ``main``
  resolved to its commit *before* loading, so that what is recorded is what is loaded. Datasets
  whose Hub repository holds only a loading script (refused by ``datasets`` >= 4) declare
  ``hub_files``: the glob patterns of one split's files in their parquet conversion, resolved on
  the repository at the pinned commit and read with the ``parquet`` builder;
* **GitHub** (``EvalSet.github``): the authors' own files at a pinned commit, read with the
  ``json`` builder from ``raw.githubusercontent.com`` (LLMBar, whose Hub repository is a loading
  script over exactly these files);
* **a local mirror** (or the shipped fixtures): ``<root>/<owner>__<name>/<config>/<split>.jsonl``
  (or ``.parquet``). A file ``datasets`` cannot read (bytes that are not UTF-8, a line that is
  not JSON, a column whose type changes, an empty file) is reported naming the file and line.

Every split read yields a :class:`SplitSource`: source, repository, revision asked for, commit
read, files, rows. The plugin keeps them per set (:func:`amuro_tasks.loading.data_provenance`),
the study writes them into its results, ``amuro-sft`` into ``amuro_run.json``, and
``amuro data check`` prints them.

The two module constants :data:`HF_ROOT` and :data:`GITHUB_RAW` are where Hub and GitHub files
live; the tests point them at local folders laid out like those repositories, so that the Hub
code path runs offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amuro_tasks.rows import AmuroDataError

if TYPE_CHECKING:  # `datasets` is imported where data is read: `import amuro_tasks` stays fast
    import datasets

log = logging.getLogger("amuro")

HF_ROOT = "hf://datasets"
"""Base of Hub dataset repositories as ``datasets`` reads them (``{HF_ROOT}/{id}@{commit}``)."""
GITHUB_RAW = "https://raw.githubusercontent.com"
"""Base of raw GitHub files (``{GITHUB_RAW}/{owner}/{repo}/{commit}/{file}``)."""
FIXTURE_DIR = Path(__file__).parent / "fixtures"
MIRROR_SUFFIXES: tuple[tuple[str, str], ...] = ((".jsonl", "json"), (".parquet", "parquet"))
"""A mirror's split files, in the order they are looked for, and their ``datasets`` builder."""
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DataRef:
    """Where a dataset lives: what :func:`open_split` needs (an evaluation set's declaration,
    or TULU's)."""

    path: str
    """Hugging Face dataset id (also names the dataset's folder in a mirror)."""
    config: str | None = None
    revision: str | None = None
    """Pinned commit (40 hex), a Hub ref, or ``None`` for ``main``; with ``github``, a GitHub
    commit."""
    hub_files: tuple[str, ...] = ()
    github: str | None = None

    @property
    def mirror_key(self) -> str:
        """The dataset's folder in a mirror: ``<owner>__<name>/<config or default>``."""
        return f"{self.path.replace('/', '__')}/{self.config or 'default'}"

    def patterns(self, split: str) -> list[str]:
        """``hub_files`` of one split, placeholders filled in."""
        return [p.format(config=self.config or "default", split=split,
                         split_path=split.replace("_", "/")) for p in self.hub_files]


@dataclass
class SplitSource:
    """What one split read came from (JSON-ready with :meth:`as_dict`)."""

    dataset: str
    config: str | None
    split: str
    source: str
    """``hub``, ``github``, ``fixtures`` or ``mirror``."""
    location: str
    """Repository (``id@commit``), GitHub repository, or the mirror's split file."""
    revision: str | None = None
    """The revision asked for (declared pin, or ``main``); ``None`` for local files."""
    commit: str | None = None
    """The commit the rows were read at (``None`` for local files, or when offline)."""
    files: list[str] = field(default_factory=list)
    rows: int | None = None
    notes: list[str] = field(default_factory=list)
    """What the reader should know: a partly converted split, an unresolved commit..."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """One line: ``hub EdinburghNLP/xsum@ed4a1ba...`` or ``mirror /path/test.jsonl``."""
        return f"{self.source} {self.location}"


# --------------------------------------------------------------------------- the Hub
def is_commit(revision: str | None) -> bool:
    """Whether ``revision`` is a full commit hash (immutable: no need to ask the Hub)."""
    return bool(revision and _COMMIT.match(revision))


def offline() -> bool:
    """Whether the Hub may not be asked (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``)."""
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@lru_cache(maxsize=64)
def hub_commit(path: str, revision: str | None) -> str:
    """The commit ``revision`` (default ``main``) of Hub dataset ``path`` points to now."""
    from huggingface_hub import HfApi

    wanted = revision or "main"
    try:
        sha = HfApi().dataset_info(path, revision=wanted).sha
    except Exception as err:  # noqa: BLE001 - every failure gets the same clear message
        raise AmuroDataError(
            f"{path}: cannot resolve revision {wanted!r} on the Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not sha:
        raise AmuroDataError(f"{path}: the Hub returned no commit for revision {wanted!r}")
    return sha


def mirror_hint(ref: DataRef, split: str) -> str:
    """How to provide a split without the Hub (the mirror layout), for error messages."""
    return (f"to read it from a local copy instead, write the split as "
            f"<dir>/{ref.mirror_key}/{split}.jsonl (or .parquet) and set AMURO_DATA=<dir> "
            f"(study: data: <dir>)")


def _hub_revision(ref: DataRef, split: str, where: str
                  ) -> tuple[str | None, str | None, list[str]]:
    """``(revision asked, commit to load, notes)`` of a Hub split."""
    asked = ref.revision or "main"
    if is_commit(ref.revision):
        return asked, ref.revision, []
    if offline():
        return asked, None, [f"offline: revision {asked!r} not resolved to a commit (read from "
                             "the local cache, if there)"]
    try:
        return asked, hub_commit(ref.path, ref.revision), []
    except AmuroDataError as err:
        raise AmuroDataError(f"{where}: {err}; {mirror_hint(ref, split)}") from None


def _resolve_files(ref: DataRef, split: str, base: str) -> list[str]:
    """The files of ``split`` under ``base`` matching ``ref.hub_files`` (each file once)."""
    from datasets.data_files import resolve_pattern

    found: list[str] = []
    for pattern in ref.patterns(split):
        try:
            matches = resolve_pattern(pattern, base_path=base)
        except FileNotFoundError:
            continue
        found += [m for m in matches if m not in found]
    return found


def _builder(files: list[str]) -> str:
    suffixes = {Path(f.split("?")[0]).suffix for f in files}
    if suffixes <= {".parquet"}:
        return "parquet"
    if suffixes <= {".json", ".jsonl"}:
        return "json"
    raise AmuroDataError(f"cannot read files of types {sorted(suffixes)}: {files[:3]}")


def _load_files(builder: str, split: str, files: list[str], streaming: bool) -> Any:
    import datasets

    return datasets.load_dataset(builder, data_files={split: files}, split=split,
                                 streaming=streaming)


def _open_hub(ref: DataRef, split: str, streaming: bool, where: str
              ) -> tuple[Any, SplitSource]:
    if ref.github:
        if not is_commit(ref.revision):
            raise AmuroDataError(f"{where}: GitHub data must be pinned to a commit, got "
                                 f"{ref.revision!r}")
        files = [f"{GITHUB_RAW}/{ref.github}/{ref.revision}/{p}" for p in ref.patterns(split)]
        record = SplitSource(ref.path, ref.config, split, "github",
                             f"github.com/{ref.github}@{ref.revision}", ref.revision,
                             ref.revision, files)
        try:
            return _load_files(_builder(files), split, files, streaming), record
        except Exception as err:  # noqa: BLE001 - say which file, and what to do instead
            raise AmuroDataError(
                f"{where}: cannot read {files[0]} ({type(err).__name__}: "
                f"{_first_line(err)}); {mirror_hint(ref, split)}") from None
    asked, commit, notes = _hub_revision(ref, split, where)
    at = commit or asked
    record = SplitSource(ref.path, ref.config, split, "hub", f"{ref.path}@{at}", asked, commit,
                         notes=notes)
    if ref.hub_files:
        base = f"{HF_ROOT}/{ref.path}@{at}"
        try:
            files = _resolve_files(ref, split, base)
        except Exception as err:  # noqa: BLE001 - a missing commit, no network...
            raise AmuroDataError(
                f"{where}: cannot list the files of {ref.path}@{at} "
                f"({type(err).__name__}: {_first_line(err)}); {mirror_hint(ref, split)}"
            ) from None
        if not files:
            raise AmuroDataError(
                f"{where}: no file of {ref.path}@{at} matches "
                f"{', '.join(ref.patterns(split))} (the Hub holds no such data at that commit); "
                + mirror_hint(ref, split))
        record.files = [f.removeprefix(base + "/") for f in files]
        if any("/partial-" in f for f in files):
            record.notes.append("the parquet conversion holds only part of this split")
            log.warning("%s/%s: the parquet conversion at %s holds only part of the split",
                        ref.path, split, at)
        try:
            return _load_files(_builder(files), split, files, streaming), record
        except Exception as err:  # noqa: BLE001
            raise AmuroDataError(f"{where}: cannot read {files[0]} "
                                 f"({type(err).__name__}: {_first_line(err)})") from None
    import datasets

    path = ref.path if HF_ROOT == "hf://datasets" else f"{HF_ROOT}/{ref.path}@{at}"
    try:
        data = datasets.load_dataset(path, ref.config, split=split, revision=commit,
                                     streaming=streaming)
    except Exception as err:  # noqa: BLE001
        raise AmuroDataError(
            f"{where}: cannot load {ref.path}" + (f" ({ref.config})" if ref.config else "")
            + f" from the Hub at {at} ({type(err).__name__}: {_first_line(err)}); "
            + mirror_hint(ref, split)) from None
    return data, record


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


# --------------------------------------------------------------------------- local files
def mirror_file(ref: DataRef, split: str, root: Path) -> Path | None:
    """The split file of ``ref`` in mirror ``root`` (``.jsonl`` first), if there is one."""
    for suffix, _ in MIRROR_SUFFIXES:
        path = root / ref.mirror_key / f"{split}{suffix}"
        if path.is_file():
            return path
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def diagnose_jsonl(path: Path) -> str | None:
    """What makes a JSONL file unreadable as a split, naming the line: bytes that are not UTF-8,
    a line that is not a JSON object, a column whose type changes, no rows at all. ``None``
    when none of these is found."""
    first_type: dict[str, tuple[str, int]] = {}
    rows = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return (f"line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                        f"column {err.start + 1}); mirror files must be UTF-8")
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as err:
                return f"line {number}: not valid JSON ({err.msg}, column {err.colno})"
            if not isinstance(row, dict):
                return f"line {number}: a JSON {_json_type(row)}, expected an object (a row)"
            rows += 1
            for column, value in row.items():
                kind = _json_type(value)
                if kind == "null":
                    continue
                seen = first_type.setdefault(column, (kind, number))
                if seen[0] != kind:
                    return (f"line {number}: column {column!r} is {kind} here but {seen[0]} on "
                            f"line {seen[1]}")
    if rows == 0:
        return "the file holds no rows (an empty split file)"
    return None


def _open_local(ref: DataRef, split: str, source: str, where: str
                ) -> tuple[datasets.Dataset, SplitSource]:
    root = FIXTURE_DIR if source == "fixtures" else Path(source)
    path = mirror_file(ref, split, root)
    if path is None:
        raise AmuroDataError(
            f"{where}: no local data at {root / ref.mirror_key}/{split}.jsonl (or "
            f".parquet); source {source!r} must mirror {ref.path} ({ref.config or 'default'})")
    builder = dict(MIRROR_SUFFIXES)[path.suffix]
    import datasets

    try:
        data = datasets.load_dataset(builder, data_files=str(path), split="train")
        # Arrow's JSON reader keeps bytes that are not UTF-8 inside a string (they fail only
        # when a row is read, anywhere later): a full validation finds them now
        data.data.table.validate(full=True)
    except Exception as err:  # noqa: BLE001 - name the file and, where possible, the line
        reason = diagnose_jsonl(path) if builder == "json" else None
        raise AmuroDataError(
            f"{where}: cannot read {path}: "
            + (reason or f"{type(err).__name__}: {_first_line(err) or 'unreadable'}")) from None
    if len(data) == 0:
        raise AmuroDataError(f"{where}: {path} holds no rows (an empty split file)")
    record = SplitSource(ref.path, ref.config, split,
                         "fixtures" if source == "fixtures" else "mirror", str(path),
                         files=[str(path)], rows=len(data))
    return data, record


# --------------------------------------------------------------------------- one entry point
def open_split(ref: DataRef, split: str, source: str, *, streaming: bool = False,
               name: str | None = None) -> tuple[Any, SplitSource]:
    """One split of ``ref`` in the dataset's own schema, from ``source`` (``hub``, ``fixtures``
    or a mirror directory), and the record of where it came from.

    ``streaming=True`` (Hub only; local files are read whole) returns an ``IterableDataset``,
    for reading the first rows without downloading a split (``amuro data check``). Errors
    name ``name/split`` (``name``: the evaluation set; default the dataset id).
    """
    where = f"{name or ref.path}/{split}"
    if source == "hub":
        data, record = _open_hub(ref, split, streaming, where)
        if not streaming:
            record.rows = len(data)
            if record.rows == 0:
                raise AmuroDataError(f"{where}: the split is empty at {record.location}")
        return data, record
    return _open_local(ref, split, source, where)
