"""Generate the plugin's task YAMLs in ``task_yamls/`` from the family declarations.

Like upstream's ``_generate_configs.py`` scripts: each task folder (one per family) holds one YAML
per (set, format), ``include``-ing the folder's template, which is built from its family's scoring
:class:`~amuro_tasks.family.Kind` (one template per kind). Every file is a dict written by a YAML
dumper (``!function`` tags included); every key is one lm-eval reads. Run
``python -m amuro_tasks.yaml_gen`` after changing a family; a test fails while the committed
files are stale.

The plugin's data comes through lm-eval's ``custom_dataset`` hook
(:func:`amuro_tasks.harness.load_amuro_set`), which reads the ``AMURO_DATA`` switch and the
``amuro_*`` ``--metadata`` options; so the YAMLs carry no ``dataset_path``/``dataset_name`` (lm-eval
would ignore them). The upstream export (:mod:`amuro_tasks.export`) writes lm-eval's own loading
keys instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from amuro_tasks.families import FAMILIES
from amuro_tasks.family import FORMATS, DatasetSpec, Family, Kind
from amuro_tasks.prompts import TARGET_DELIMITER
from amuro_tasks.shots import SAMPLER_NAME
from amuro_tasks.tasks import task_name, task_tags

__all__ = ["YAML_DIR", "Function", "dump_yaml", "render_all", "scoring_config", "task_name",
           "task_tags", "write_all"]

YAML_DIR = Path(__file__).parent / "task_yamls"
FEWSHOT_DELIMITER = "\n\n"
GENERATION_KWARGS: dict[str, Any] = {
    "until": ["\n\n", "###"], "max_gen_toks": 60, "do_sample": False, "temperature": 0.0,
}
"""Greedy decoding up to 60 tokens, stopping at a blank line or the next ``###`` block."""
TASK_VERSION = 1.0


class Function(str):
    """A YAML ``!function module.name`` value (lm-eval imports it next to the YAML)."""


class _Dumper(yaml.SafeDumper):
    """Block style, sequences indented under their key (as upstream's YAMLs), no aliases."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def choose_scalar_style(self) -> str:
        if self.event.tag == "!function":  # a dotted name: plain, as lm-eval's own YAMLs write it
            return ""
        return super().choose_scalar_style()


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # strings with line breaks (delimiters, prompt templates) as one double-quoted line
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style='"' if "\n" in value else None)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(Function, lambda d, v: d.represent_scalar("!function", str(v)))


def dump_yaml(data: dict[str, Any], header: str = "") -> str:
    """``data`` as YAML (keys in insertion order), after ``header`` comment lines."""
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=False)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body


def fewshot_config(kind: Kind, sampler: str = SAMPLER_NAME) -> dict[str, Any]:
    """How shots are shown: by amuro's sampler (:mod:`amuro_tasks.shots`: the pool's first rows,
    in order, unless ``amuro_shots=per_document``), or by an lm-eval ``sampler`` (the upstream
    export: ``first_n``); a choice shot ends with its answer's text (``target``), not its
    index."""
    config: dict[str, Any] = {"sampler": sampler}
    if kind.output_type == "multiple_choice":
        config["doc_to_target"] = "target"
    return config


def scoring_config(kind: Kind, process_results: Function) -> dict[str, Any]:
    """The lm-eval keys that score a task of ``kind``: plugin and upstream export alike."""
    config: dict[str, Any] = {
        "output_type": kind.output_type,
        "target_delimiter": TARGET_DELIMITER,
        "fewshot_delimiter": FEWSHOT_DELIMITER,
    }
    if kind.output_type == "multiple_choice":
        config |= {"doc_to_target": "label", "doc_to_choice": "choices"}
    else:
        config |= {"doc_to_target": "target", "generation_kwargs": dict(GENERATION_KWARGS),
                   "process_results": process_results}
    config["metric_list"] = [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                             for m in kind.metrics]
    config["metadata"] = {"version": TASK_VERSION}
    return config


def family_file(family: Family) -> str:
    """Where a family is declared, relative to the repository root."""
    return f"amuro_tasks/families/{family.name}.py"


def template_name(family: Family) -> str:
    return f"_amuro_{family.name}_template_yaml"


def _template(family: Family) -> dict[str, Any]:
    return {
        "custom_dataset": Function("utils.load_amuro_set"),
        "test_split": "eval",
        "fewshot_split": "fewshot",
        "fewshot_config": fewshot_config(family.scoring),
        **scoring_config(family.scoring, Function("utils.process_results_rouge")),
    }


def _task(family: Family, spec: DatasetSpec, fmt: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "include": template_name(family),
        "task": task_name(spec.name, fmt),
        "tag": task_tags(spec, fmt),
        "dataset_kwargs": {"amuro_set": spec.name},
    }
    if family.default_shots:
        task["num_fewshot"] = family.default_shots
    task["doc_to_text"] = Function(f"utils.doc_to_text_{fmt}")
    return task


def _splits(split: str | tuple[str, ...] | None) -> str:
    return ", ".join((split,) if isinstance(split, str) else split or ())


def _task_header(family: Family, spec: DatasetSpec) -> str:
    shots = _splits(spec.fewshot_split) or f"{_splits(spec.eval_split)} (carved out, not scored)"
    upstream = (f" (amuro_split=upstream: {_splits(spec.upstream_split)})"
                if spec.upstream_split else "")
    return (
        f"Generated by `python -m amuro_tasks.yaml_gen` from {family_file(family)}.\n"
        f"Data: {spec.path}{f' ({spec.config})' if spec.config else ''}, scored split "
        f"{_splits(spec.eval_split)}{upstream}, shots from {shots};\n"
        "loaded by amuro_tasks.harness.load_amuro_set (custom_dataset) from AMURO_DATA: "
        "hub (default), fixtures or a mirror."
    )


def _utils_py(family: Family) -> str:
    names = ", ".join(f'"{n}"' for n in ("load_amuro_set", "process_results_rouge",
                                          *(f"doc_to_text_{f}" for f in FORMATS)))
    return (
        f'"""lm-eval hooks for amuro\'s {family.name} tasks: the logic lives in '
        f'``amuro_tasks.harness``,\nthe prompts in ``{family_file(family)}``."""\n\n'
        "from amuro_tasks.harness import (\n    doc_to_text,\n    load_amuro_set,\n"
        "    process_results_rouge,\n    quiet_custom_dataset_notice,\n)\n\n"
        f"__all__ = [{names}]\n\n"
        "quiet_custom_dataset_notice()  # lm-eval's per-task custom_dataset notice\n\n"
        + "".join(f'doc_to_text_{f} = doc_to_text("{family.name}", "{f}")\n' for f in FORMATS)
    )


def render_all() -> dict[Path, str]:
    """Every generated file, relative to ``task_yamls/``, with its content."""
    files: dict[Path, str] = {}
    for family in FAMILIES:
        folder = Path(family.name)
        header = (f"Generated by `python -m amuro_tasks.yaml_gen` from {family_file(family)}: "
                  f"scoring of kind {family.kind!r}.")
        files[folder / template_name(family)] = dump_yaml(_template(family), header)
        files[folder / "utils.py"] = _utils_py(family)
        for spec in family.specs:
            for fmt in FORMATS:
                files[folder / f"{task_name(spec.name, fmt)}.yaml"] = dump_yaml(
                    _task(family, spec, fmt), _task_header(family, spec))
    return files


def write_all(root: Path = YAML_DIR) -> list[Path]:
    """Write every generated file under ``root``; returns the paths written."""
    written = []
    for rel, content in render_all().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


if __name__ == "__main__":
    paths = write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else YAML_DIR)
    print(f"wrote {len(paths)} files")
