"""Local stand-ins for the Hub and GitHub repositories amuro reads, laid out like the real ones.

``amuro_tasks.sources`` reads Hub dataset files under ``HF_ROOT`` (``hf://datasets``) as
``{HF_ROOT}/{id}@{commit}/...`` and GitHub files as ``{GITHUB_RAW}/{owner}/{repo}/{commit}/...``;
:func:`point_at` points both at a local folder, and the writers below lay out repositories there
as the real ones are (per the sources cited in ``docs/data.md``), with rows in each dataset's real
schema (taken from the fixtures). So the Hub code path -- commit pinning, pattern resolution, the
``parquet``/``json`` builders, streaming -- runs offline, on files shaped like the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from amuro_tasks import sources
from amuro_tasks.loading import load_docs


def point_at(monkeypatch: pytest.MonkeyPatch, root: Path, commits: dict[str, str] | None = None
             ) -> None:
    """Read the Hub and GitHub from ``root``; ``commits``: what ``main`` (or another ref) of a
    Hub dataset resolves to (the ``dataset_info`` answer), by dataset id."""
    monkeypatch.setattr(sources, "HF_ROOT", str(root / "hub"))
    monkeypatch.setattr(sources, "GITHUB_RAW", str(root / "github"))
    monkeypatch.setattr(sources, "offline", lambda: False)
    table = dict(commits or {})

    def hub_commit(path: str, revision: str | None) -> str:
        if path not in table:
            raise sources.AmuroDataError(f"{path}: cannot resolve revision "
                                         f"{revision or 'main'!r} on the Hub (stand-in)")
        return table[path]

    monkeypatch.setattr(sources, "hub_commit", hub_commit)
    load_docs.cache_clear()


def hub_repo(root: Path, dataset: str, commit: str) -> Path:
    """The folder of Hub dataset ``dataset`` at ``commit``."""
    folder = root / "hub" / f"{dataset}@{commit}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def fixture_rows(key: str, split: str) -> list[dict]:
    """The fixture rows of ``<owner>__<name>/<config>`` ``split`` (the dataset's real schema)."""
    path = sources.FIXTURE_DIR / key / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parquet_conversion(root: Path, dataset: str, config: str, commit: str,
                       splits: dict[str, list[dict]], layout: str = "new") -> Path:
    """``refs/convert/parquet`` at ``commit``: ``new`` = ``<config>/<split>/0000.parquet`` (since
    mid-2023), ``old`` = ``<config>/<name>-<split>.parquet`` (train sharded as
    ``<name>-train-0000i-of-00002.parquet``), ``partial`` = ``<config>/partial-<split>/...``."""
    repo = hub_repo(root, dataset, commit)
    name = dataset.split("/")[1]
    for split, rows in splits.items():
        if layout == "new":
            write_parquet(repo / config / split / "0000.parquet", rows)
        elif layout == "partial":
            write_parquet(repo / config / f"partial-{split}" / "0000.parquet", rows)
        elif split == "train" and len(rows) > 1:
            half = len(rows) // 2
            write_parquet(repo / config / f"{name}-train-00000-of-00002.parquet", rows[:half])
            write_parquet(repo / config / f"{name}-train-00001-of-00002.parquet", rows[half:])
        else:
            write_parquet(repo / config / f"{name}-{split}.parquet", rows)
        # the converter also leaves duckdb index files next to the parquet files
        (repo / config / "index.duckdb").write_bytes(b"DUCK")
    return repo


def parquet_repo(root: Path, dataset: str, commit: str,
                 configs: dict[str, dict[str, list[dict]]]) -> Path:
    """A Hub dataset whose main holds parquet files and a README ``configs:`` section, as
    ``allenai/ai2_arc`` (``ARC-Easy/test-00000-of-00001.parquet``) or ``nyu-mll/glue``."""
    repo = hub_repo(root, dataset, commit)
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            write_parquet(repo / config / f"{split}-00000-of-00001.parquet", rows)
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (repo / "README.md").write_text("\n".join([*lines, "---", ""]))
    return repo


def github_llmbar(root: Path, commit: str, splits: dict[str, list[dict]]) -> Path:
    """github.com/princeton-nlp/LLMBar at ``commit``: ``Dataset/LLMBar/<Natural |
    Adversarial/<Subset>>/dataset.json``, each a top-level JSON array."""
    repo = root / "github" / "princeton-nlp" / "LLMBar" / commit
    for split, rows in splits.items():
        path = repo / "Dataset" / "LLMBar" / split.replace("_", "/") / "dataset.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=4))
    return repo
