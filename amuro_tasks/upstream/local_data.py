"""Local Hugging Face dataset folders for the export, from amuro's fixtures or a mirror."""

from __future__ import annotations

import shutil
from pathlib import Path

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.loading import FIXTURE_DIR
from amuro_tasks.sources import mirror_file
from amuro_tasks.upstream.plan import exported_tasks, splits_of


def write_local_datasets(source: str, root: Path) -> dict[str, Path]:
    """Hugging Face dataset folders, one per Hub dataset of the exported sets, from ``source``
    (``fixtures`` or an ``AMURO_DATA`` mirror: ``<owner>__<name>/<config>/<split>.jsonl``).

    Each folder holds copies of the split files and a ``README.md`` whose ``configs:`` section
    maps config names and (exported) split names to them, so that
    ``datasets.load_dataset(folder, config)`` reads them offline. Returns dataset id -> folder.
    """
    import yaml

    src_root = FIXTURE_DIR if source == "fixtures" else Path(source)
    configs: dict[str, dict[str, dict[str, list[str]]]] = {}
    for spec in {s.name: s for s, _ in exported_tasks()}.values():
        config = spec.config or "default"
        by_split = configs.setdefault(spec.path, {}).setdefault(config, {})
        for label, members in splits_of(spec).items():
            files = []
            for member in members:
                path = mirror_file(spec.ref, member, src_root)
                if path is None:
                    raise AmuroConfigError(f"{spec.name}/{member}: no "
                                           f"{src_root / spec.ref.mirror_key / member}.jsonl "
                                           "(or .parquet)")
                target = root / spec.path.replace("/", "__") / config / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                files.append(f"{config}/{path.name}")
            by_split[label] = files
    folders = {}
    for path, by_config in configs.items():
        folder = root / path.replace("/", "__")
        card = {"configs": [
            {"config_name": config,
             "data_files": [{"split": split, "path": files if len(files) > 1 else files[0]}
                            for split, files in by_split.items()]}
            for config, by_split in by_config.items()]}
        (folder / "README.md").write_text(
            "---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n\n"
            f"Local copy of `{path}` ({source}) for amuro's exported lm-eval tasks.\n")
        folders[path] = folder
    return folders
