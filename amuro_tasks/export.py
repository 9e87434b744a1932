"""``python -m amuro_tasks export-upstream DIR``: amuro's tasks as a folder for upstream lm-eval.

Writes ONE folder, ``DIR/amuro/``, to drop into ``lm_eval/tasks/`` of an unmodified lm-eval 0.4.x
(or to pass as ``--include_path``), with no dependency on amuro:

* ``amuro_<set>_<format>.yaml``: lm-eval's own loading (``dataset_path``, ``dataset_name``,
  ``dataset_kwargs``, ``test_split``, ``fewshot_split``, ``process_docs``), the prompt as lm-eval
  ``doc_to_text`` Jinja (the template string of the family declaration, verbatim), the shot pool
  through ``fewshot_config`` (``process_docs`` + the ``first_n`` sampler);
* ``_amuro_<kind>_template_yaml``: the scoring keys, one template per scoring kind;
* ``utils.py``: generated per-set ``process_docs`` hooks and the ROUGE-L metric;
* ``amuro_rows.py``: a byte-identical copy of :mod:`amuro_tasks.rows` (standard library only), so
  that rows become docs, and shots are chosen, by the plugin's own code;
* ``README.md``: upstream's task-README template, with what the export cannot express.

Left out, and said so in the README: the ``default`` format of sets whose ``default`` *is* an
upstream task's prompt (ARC, OpenBookQA, HellaSwag, BoolQ, SciQ-MC: use upstream's tasks), the
paper's ``first_token`` scoring (it needs the model's tokenizer when the data is built), and
amuro's ``AMURO_DATA`` switch and ``--metadata`` options (the export reads the Hub; the shot seed
and pool size are constants in ``utils.py``).

``--local-data SOURCE`` (``fixtures`` or an ``AMURO_DATA`` mirror directory) also writes
``DIR/amuro_local_data/``: one Hugging Face dataset folder per Hub dataset (its files and a
README ``configs:`` section naming configs and splits), and points the exported YAMLs at it, so
that stock lm-eval runs the export offline (amuro's CI proof does exactly this).

This module writes the files; :mod:`amuro_tasks.upstream` holds the pieces (what is exported and
from where, the generated ``utils.py``, the README, the local dataset folders).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amuro_tasks import rows
from amuro_tasks.families import get_family
from amuro_tasks.family import DatasetSpec, Family, Kind
from amuro_tasks.tasks import task_name, task_tags
from amuro_tasks.upstream.hooks import utils_py
from amuro_tasks.upstream.local_data import write_local_datasets
from amuro_tasks.upstream.plan import (
    ALLOWED_IMPORTS,
    FOLDER,
    LOCAL_DATA_FOLDER,
    MIN_LM_EVAL,
    README_LINE,
    ROWS_FILE,
    DataSource,
    exported,
    exported_tasks,
    hub_source,
    local_source,
)
from amuro_tasks.upstream.readme import readme
from amuro_tasks.yaml_gen import Function, dump_yaml, family_file, fewshot_config, scoring_config

__all__ = ["ALLOWED_IMPORTS", "FOLDER", "LOCAL_DATA_FOLDER", "MIN_LM_EVAL", "README_LINE",
           "ROWS_FILE", "export_upstream", "exported", "exported_tasks", "hub_source",
           "local_source", "main", "readme", "utils_py", "write_local_datasets"]


# --------------------------------------------------------------------------- YAML files
def template_name(kind: Kind) -> str:
    return f"_amuro_{kind.name}_template_yaml"


def _template(kind: Kind) -> dict[str, Any]:
    return scoring_config(kind, Function("utils.process_results_rouge"))


def _task(spec: DatasetSpec, fmt: str, source: DataSource) -> dict[str, Any]:
    family = get_family(spec.family)
    task: dict[str, Any] = {
        "include": template_name(family.scoring),
        "task": task_name(spec.name, fmt),
        "tag": task_tags(spec, fmt),
        **source.yaml_keys(),
        "process_docs": Function(f"utils.eval_docs_{spec.name}"),
        # stock lm-eval's first_n: the plugin's shots by default (amuro_shots=fixed); the
        # per-document mode needs amuro's sampler, which a folder for upstream cannot register
        "fewshot_config": {**fewshot_config(family.scoring, "first_n"),
                           "process_docs": Function(f"utils.shots_{spec.name}")},
    }
    if family.default_shots:
        task["num_fewshot"] = family.default_shots
    task["doc_to_text"] = family.prompts[fmt]
    return task



# --------------------------------------------------------------------------- the export
def export_upstream(out_dir: str | Path, local_data: str | None = None) -> Path:
    """Write ``out_dir/amuro/`` (see the module docstring), replacing an earlier export there;
    returns that folder.

    ``local_data`` (``fixtures`` or a mirror directory) also writes ``out_dir/amuro_local_data/``
    and points the YAMLs at it instead of the Hub.
    """
    out = Path(out_dir).resolve()
    folder = out / FOLDER
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    specs = list({s.name: s for s, _ in exported_tasks()}.values())
    if local_data is not None:
        root = out / LOCAL_DATA_FOLDER
        if root.exists():
            shutil.rmtree(root)
        write_local_datasets(local_data, root)
        sources = {s.name: local_source(s, root) for s in specs}
    else:
        sources = {s.name: hub_source(s) for s in specs}
    header = ("Generated by amuro's `python -m amuro_tasks export-upstream` from {file}; "
              "see README.md.")
    for kind in {get_family(s.family).scoring.name: get_family(s.family).scoring
                 for s in specs}.values():
        (folder / template_name(kind)).write_text(
            dump_yaml(_template(kind), f"Scoring of the amuro tasks of kind {kind.name!r}."))
    for spec, fmt in exported_tasks():
        family: Family = get_family(spec.family)
        (folder / f"{task_name(spec.name, fmt)}.yaml").write_text(dump_yaml(
            _task(spec, fmt, sources[spec.name]), header.format(file=family_file(family))))
    (folder / "utils.py").write_text(utils_py(sources))
    shutil.copyfile(Path(rows.__file__), folder / ROWS_FILE)
    (folder / "README.md").write_text(readme(sources))
    return folder


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m amuro_tasks export-upstream DIR [--local-data SOURCE]``."""
    parser = argparse.ArgumentParser(prog="python -m amuro_tasks export-upstream",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="output directory: the tasks are written to DIR/amuro/")
    parser.add_argument("--local-data", metavar="SOURCE",
                        help="'fixtures' or an AMURO_DATA mirror directory: also write "
                             f"DIR/{LOCAL_DATA_FOLDER}/ and point the YAMLs at it (offline runs)")
    args = parser.parse_args(argv)
    folder = export_upstream(args.dir, args.local_data)
    n = len(exported_tasks())
    print(f"wrote {n} tasks to {folder}\n"
          f"use: lm_eval --include_path {folder} --tasks 'amuro_*' ..., or copy it into "
          "lm_eval/tasks/ and add this row to lm_eval/tasks/README.md:\n" + README_LINE)
    return folder
