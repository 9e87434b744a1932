"""What the upstream export contains and where each exported set's data comes from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.family import DatasetSpec
from amuro_tasks.loading import split_names
from amuro_tasks.tasks import all_tasks

FOLDER = "amuro"
LOCAL_DATA_FOLDER = "amuro_local_data"
ROWS_FILE = "amuro_rows.py"
ALLOWED_IMPORTS = frozenset({"datasets", "jinja2", "lm_eval", "rouge_score"})
"""Third-party packages the exported Python may import (besides the standard library)."""
MIN_LM_EVAL = "0.4.10"
"""The first lm-eval that reads ``fewshot_config.process_docs`` (the exported shot pools)."""
README_LINE = (
    "| [amuro](amuro/README.md) | Prompt-format variants of the evaluation suite of \"Amuro & "
    "Char\" (Sun & Dredze, 2024): NLI, paraphrase, summarization and question generation sets, "
    "ARC, OpenBookQA, HellaSwag, BoolQ, SciQ and LLMBar, each in a fine-tuning format, an "
    "instruction format and raw input. | English |"
)
"""The row to add to ``lm_eval/tasks/README.md``."""


def exported(spec: DatasetSpec, fmt: str) -> bool:
    """Whether task (``spec``, ``fmt``) is exported: not when it would duplicate an upstream
    task (the ``default`` format of a set whose ``default`` prompt is upstream's)."""
    return not (fmt == "default" and spec.upstream_task)


def exported_tasks() -> list[tuple[DatasetSpec, str]]:
    """Every exported (set, format), in declaration order."""
    return [(spec, fmt) for spec, fmt in all_tasks() if exported(spec, fmt)]


def split_label(split: str | tuple[str, ...]) -> str:
    """The lm-eval split name of a declared split; several splits scored as one (LLMBar's
    ``Adversarial_*``) become one split named by their common prefix (``Adversarial``)."""
    if isinstance(split, str):
        return split
    label = os.path.commonprefix(list(split)).rstrip("_")
    if not label:
        raise AmuroConfigError(f"splits {split} share no prefix to name them as one split")
    return label


def pool_mode(spec: DatasetSpec) -> str:
    """How a set's shot pool is chosen (as the plugin's :func:`amuro_tasks.loading.load_docs`):
    ``split`` (from its own split, never a scored input), ``carve`` (carved out of the scored
    split) or ``pooled`` (several splits, LLMBar)."""
    if not isinstance(spec.eval_split, str) or not isinstance(spec.fewshot_split, str | None):
        return "pooled"
    return "carve" if spec.fewshot_split is None else "split"


@dataclass(frozen=True)
class DataSource:
    """How the exported YAMLs of one set load their data (lm-eval's own loading keys)."""

    path: str
    name: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    test_split: str = ""
    fewshot_split: str = ""

    def yaml_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {"dataset_path": self.path}
        if self.name is not None:
            keys["dataset_name"] = self.name
        if self.kwargs:
            keys["dataset_kwargs"] = self.kwargs
        return keys | {"test_split": self.test_split, "fewshot_split": self.fewshot_split}

    def load_kwargs(self, split: str) -> dict[str, Any]:
        """``datasets.load_dataset`` arguments of one split, as lm-eval loads it."""
        return {"path": self.path, "name": self.name, "split": split, **self.kwargs}


def splits_of(spec: DatasetSpec) -> dict[str, tuple[str, ...]]:
    """lm-eval split name -> the declared split(s) it holds, for the scored and shot sides."""
    sides = [spec.eval_split] + ([spec.fewshot_split] if spec.fewshot_split is not None else [])
    return {split_label(s): split_names(s) for s in sides}


def _one_or_list(files: list[str]) -> str | list[str]:
    return files if len(files) > 1 else files[0]


def hub_source(spec: DatasetSpec) -> DataSource:
    """The set's real data, read as the plugin's ``AMURO_DATA=hub`` reads it
    (:mod:`amuro_tasks.sources`): the Hub dataset at its pinned commit (``main`` when none is
    declared), the files of its parquet conversion, or the authors' GitHub files (LLMBar). The
    scored split is the default protocol's."""
    from amuro_tasks.sources import GITHUB_RAW

    ref = spec.ref
    kwargs: dict[str, Any] = {}
    path, name = spec.path, spec.config
    if ref.github:
        path, name = "json", None
        kwargs["data_files"] = {
            label: _one_or_list([f"{GITHUB_RAW}/{ref.github}/{ref.revision}/{p}"
                                 for s in members for p in ref.patterns(s)])
            for label, members in splits_of(spec).items()}
    else:
        if spec.revision:
            kwargs["revision"] = spec.revision
        if ref.hub_files:
            name = None
            kwargs["data_files"] = {
                label: _one_or_list([p for s in members for p in ref.patterns(s)])
                for label, members in splits_of(spec).items()}
        elif any(len(members) > 1 for members in splits_of(spec).values()):
            raise AmuroConfigError(f"{spec.name}: several splits scored as one need hub_files")
    return DataSource(path, name, kwargs, split_label(spec.eval_split),
                      split_label(spec.fewshot_split or spec.eval_split))


def local_source(spec: DatasetSpec, root: Path) -> DataSource:
    """The set in a local dataset folder written by :func:`write_local_datasets`."""
    return DataSource(str(root / spec.path.replace("/", "__")), spec.config or "default", {},
                      split_label(spec.eval_split),
                      split_label(spec.fewshot_split or spec.eval_split))
