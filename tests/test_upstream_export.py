"""``python -m amuro_tasks export-upstream``: a task folder that stock lm-eval runs without amuro.

Fast tests check the folder (one folder, no upstream duplicates, only allowed imports, the rows
module copied byte for byte, every YAML key one lm-eval reads, prompts that are the declared
templates and render like the plugin's, Hub loading as the plugin's) and that the exported
``process_docs`` hooks build every set's scored docs and whole shot pool exactly as the plugin
does. The slow test is the proof: stock lm-eval, in a subprocess where ``amuro_tasks`` cannot be
imported, runs every exported task on local copies of the fixtures, and its per-sample outputs
equal the plugin's (recorded in ``tests/data/plugin_outputs.json``, which
``tests/test_plugin_outputs.py`` checks against the plugin).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import datasets
import pytest
import yaml
from lm_eval_outputs import as_written, assert_same, load_recorded, samples_file_records

from amuro_tasks import rows
from amuro_tasks.export import (
    ALLOWED_IMPORTS,
    FOLDER,
    README_LINE,
    ROWS_FILE,
    export_upstream,
    exported_tasks,
    hub_source,
    local_source,
)
from amuro_tasks.families import FAMILIES, SPECS, get_family
from amuro_tasks.family import FORMATS
from amuro_tasks.loading import LoadOptions, load_docs, load_raw_split, split_names
from amuro_tasks.prompts import render_prompt
from amuro_tasks.tasks import task_name
from amuro_tasks.yaml_gen import YAML_DIR

LM_EVAL_TASKS = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
EXPORTED = [task_name(s.name, f) for s, f in exported_tasks()]
EXPORTED_SETS = list(dict.fromkeys(s.name for s, _ in exported_tasks()))


@pytest.fixture(scope="module")
def hub_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_upstream(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def local_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_upstream(tmp_path_factory.mktemp("local"), local_data="fixtures")


def _load(path: Path) -> dict:
    """A YAML as lm-eval's loader reads it, ``!function`` kept as its dotted name."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"!{loader.construct_scalar(node)}")
    return yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass


def _utils(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"exported_utils_{folder.parent.name}",
                                                  folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- the folder
def test_export_writes_one_folder_with_no_upstream_name_or_task(hub_export: Path) -> None:
    assert hub_export.name == FOLDER and [p.name for p in hub_export.parent.iterdir()] == [FOLDER]
    assert not (LM_EVAL_TASKS / FOLDER).exists(), "the folder name is taken upstream"
    assert all(p.is_file() for p in hub_export.iterdir()), "one flat folder"
    yamls = sorted(p.stem for p in hub_export.glob("amuro_*.yaml"))
    assert yamls == sorted(EXPORTED) and len(yamls) == 63 - 6
    # the default format of sets whose default is upstream's prompt is left out, and said so
    left_out = {task_name(s.name, "default") for s in SPECS.values() if s.upstream_task}
    assert left_out == {f"amuro_{n}_default" for n in ("arc_easy", "arc_challenge",
                                                       "openbookqa", "hellaswag", "boolq",
                                                       "sciq_mc")}
    assert not left_out & set(yamls)
    readme = (hub_export / "README.md").read_text()
    for spec in SPECS.values():
        if spec.upstream_task:
            assert f"`{spec.name}` (upstream `{spec.upstream_task}`)" in readme
    upstream_names = {p.stem for p in LM_EVAL_TASKS.rglob("*.yaml")}
    assert not set(yamls) & upstream_names


def test_exported_python_imports_only_the_allowed_packages(hub_export: Path) -> None:
    allowed = ALLOWED_IMPORTS | set(sys.stdlib_module_names)
    files = sorted(hub_export.rglob("*.py"))
    assert [p.name for p in files] == [ROWS_FILE, "utils.py"]
    for path in files:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                imported.add(node.module.split(".")[0])
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}"
        assert "__import__" not in path.read_text() and "import_module" not in path.read_text()


def test_the_rows_module_is_a_verbatim_standard_library_copy(hub_export: Path) -> None:
    source = Path(rows.__file__)
    assert (hub_export / ROWS_FILE).read_bytes() == source.read_bytes()
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_the_exported_rules_rebuild_the_declared_ones(hub_export: Path) -> None:
    utils = _utils(hub_export)
    assert set(utils.RULES) == set(EXPORTED_SETS)
    for name, rules in utils.RULES.items():
        declared = SPECS[name].rules
        assert repr(rules) == repr(declared)  # the generated literal is the declaration
        assert dataclasses.asdict(rules) == dataclasses.asdict(declared)


# --------------------------------------------------------------------------- the YAMLs
def _lm_eval_keys() -> tuple[set[str], set[str]]:
    from lm_eval.config.task import FewshotConfig, TaskConfig

    return ({f.name for f in dataclasses.fields(TaskConfig)} | {"include"},
            {f.name for f in dataclasses.fields(FewshotConfig)})


@pytest.mark.parametrize("which", ["plugin", "export"])
def test_every_yaml_key_is_one_lm_eval_reads(which: str, hub_export: Path) -> None:
    task_keys, fewshot_keys = _lm_eval_keys()
    root = YAML_DIR if which == "plugin" else hub_export
    files = [p for p in root.rglob("*") if p.suffix == ".yaml" or p.name.endswith("_yaml")]
    assert files
    for path in files:
        config = _load(path)
        assert set(config) <= task_keys, (path, set(config) - task_keys)
        assert set(config.get("fewshot_config", {})) <= fewshot_keys, path
        if which == "plugin":  # data through custom_dataset: no key lm-eval would then ignore
            assert not {"dataset_path", "dataset_name"} & set(config), path


def test_plugin_yamls_carry_the_loader_and_each_tasks_set() -> None:
    for family in FAMILIES:
        template = _load(YAML_DIR / family.name / f"_amuro_{family.name}_template_yaml")
        assert template["custom_dataset"] == "!utils.load_amuro_set"
        assert template["output_type"] == family.scoring.output_type
        for spec in family.specs:
            for fmt in FORMATS:
                task = _load(YAML_DIR / family.name / f"{task_name(spec.name, fmt)}.yaml")
                assert task["dataset_kwargs"] == {"amuro_set": spec.name}
                assert task.get("num_fewshot", 0) == family.default_shots


def test_exported_prompts_are_the_declared_templates_and_render_like_the_plugin(
        hub_export: Path) -> None:
    from lm_eval.utils import apply_template  # lm-eval's own Jinja rendering of doc_to_text

    for spec, fmt in exported_tasks():
        config = _load(hub_export / f"{task_name(spec.name, fmt)}.yaml")
        assert config["doc_to_text"] == get_family(spec.family).prompts[fmt]
        docs = load_docs(spec.name, LoadOptions(source="fixtures"))
        for doc in [*docs["eval"], *docs["fewshot"]]:
            assert apply_template(config["doc_to_text"], doc) == render_prompt(
                spec.family, fmt, doc), (spec.name, fmt)


def test_exported_hub_loading_is_the_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each set's YAML loads the same data as ``AMURO_DATA=hub`` (the plugin's
    ``datasets.load_dataset`` calls, recorded): the same Hub dataset, config and pinned commit
    (the plugin also pins an unpinned ``main`` to the commit it resolves: here a stand-in), the
    same parquet-conversion patterns, the same GitHub files."""
    from amuro_tasks import sources

    resolved = "f" * 40
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or [1])
    monkeypatch.setattr(sources, "offline", lambda: False)
    monkeypatch.setattr(sources, "hub_commit", lambda path, revision: resolved)
    monkeypatch.setattr(sources, "_resolve_files",  # every pattern matches one file
                        lambda ref, split, base: [f"{base}/{p}" for p in ref.patterns(split)])
    for name in EXPORTED_SETS:
        spec = SPECS[name]
        source = hub_source(spec)
        sides = [spec.eval_split] + ([spec.fewshot_split] if spec.fewshot_split else [])
        for side, label in zip(sides, [source.test_split, source.fewshot_split], strict=False):
            for split in split_names(side):
                calls.clear()
                load_raw_split(spec, split, "hub")
                ((args, kwargs),) = calls
                exported = source.kwargs.get("data_files", {}).get(label)
                exported = [exported] if isinstance(exported, str) else exported
                if spec.github:  # the same raw GitHub files, at the pinned commit
                    assert args == ("json",) and source.path == "json", name
                    assert set(kwargs["data_files"][split]) <= set(exported), name
                elif spec.hub_files:  # the same patterns, on the repository at the pinned commit
                    assert args == ("parquet",) and source.path == spec.path, name
                    base = f"{sources.HF_ROOT}/{spec.path}@{source.kwargs['revision']}"
                    assert kwargs["data_files"][split] == [
                        f"{base}/{p}" for p in spec.ref.patterns(split)], name
                    assert set(spec.ref.patterns(split)) <= set(exported), name
                else:
                    assert (args[0], args[1]) == (source.path, source.name), name
                    assert kwargs["revision"] == source.kwargs.get("revision", resolved), name
                    assert kwargs["split"] == split == label, name


# --------------------------------------------------------------------------- the data hooks
@pytest.mark.parametrize("name", EXPORTED_SETS)
def test_exported_hooks_build_the_plugins_docs_and_whole_shot_pool(name: str,
                                                                   local_export: Path) -> None:
    utils = _utils(local_export)
    source = local_source(SPECS[name], local_export.parent / "amuro_local_data")
    # as lm-eval loads it; a fresh cache: datasets keys a local folder's cache by its layout,
    # not its content, so two exports of different fixture files would share it
    data = datasets.load_dataset(source.path, source.name,
                                 cache_dir=str(local_export.parent / "hf_datasets_cache"))
    scored = getattr(utils, f"eval_docs_{name}")(data[source.test_split]).to_list()
    shots = getattr(utils, f"shots_{name}")(data[source.fewshot_split]).to_list()
    plugin = load_docs(name, LoadOptions(source="fixtures"))
    multi = SPECS[name].family == "llmbar"  # the plugin also keeps each row's source split

    def bare(docs: list[dict]) -> list[dict]:
        drop = {"source_split", "row_index"} if multi else set()
        return [{k: v for k, v in d.items() if not k.startswith("prompt_") and k not in drop}
                for d in docs]

    assert bare(scored) == bare(plugin["eval"].to_list()) and scored
    assert bare(shots) == bare(plugin["fewshot"].to_list()) and len(shots) >= 4


def test_exported_rouge_is_the_plugins(hub_export: Path) -> None:
    from amuro_tasks.harness import process_results_rouge

    utils = _utils(hub_export)
    for target, generation in [("The council met on Monday.", " the councils met \n"),
                               ("Police arrested two men.", "Two men were arrested by police.")]:
        doc = {"target": target}
        assert utils.process_results_rouge(doc, [generation]) == process_results_rouge(
            doc, [generation])


def test_readme_follows_the_upstream_template(hub_export: Path) -> None:
    readme = (hub_export / "README.md").read_text()
    for heading in ("### Paper", "### Citation", "### Groups, Tags, and Tasks", "#### Groups",
                    "#### Tags", "#### Tasks", "### Checklist"):
        assert heading in readme, heading
    for task in EXPORTED:
        assert f"`{task}`" in readme, task
    assert README_LINE in readme and README_LINE.startswith("| [amuro](amuro/README.md) |")
    for feature in ("first_token", "AMURO_DATA", "FEWSHOT_SEED", "per_document", "first_n"):
        assert feature in readme, feature


def test_module_cli_exports(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-m", "amuro_tasks", "export-upstream",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "x" / "amuro" / "README.md").is_file()
    assert README_LINE in proc.stdout


# --------------------------------------------------------------------------- the proof
_BLOCKER = '''"""Make amuro unimportable: the exported tasks must run on stock lm-eval alone."""
import sys


class _NoAmuro:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("amuro_tasks", "amuro_sft", "amuro_study"):
            raise ModuleNotFoundError(f"{name} is blocked for this test", name=name)
        return None


sys.meta_path.insert(0, _NoAmuro())
'''


def _stock_env(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "no_amuro"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(_BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMURO_DATA")}
    return {**env, "PYTHONPATH": str(blocker), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets_cache")}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{args[:3]}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
def test_stock_lm_eval_runs_the_export_without_amuro_like_the_plugin(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    # as if dropped into lm_eval/tasks/: lm-eval then names the hook module
    # lm_eval.tasks.amuro.utils (an --include_path elsewhere gets a path-named module, below)
    folder = export_upstream(tmp_path / "lm_eval" / "tasks", local_data="fixtures")
    env = _stock_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import amuro_tasks"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert blocked.returncode != 0 and "blocked for this test" in blocked.stderr

    common = ["--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
              "--include_path", str(folder), "--device", "cpu", "--batch_size", "16",
              "--limit", "3", "--log_samples"]
    recorded = load_recorded()
    # every exported task at its default shots (4; LLMBar 0), in one lm_eval call
    out = tmp_path / "default_shots"
    run = _run(["-m", "lm_eval", "run", "--tasks", ",".join(EXPORTED), "--output_path", str(out),
                *common], env, tmp_path)
    assert "Custom kwargs" not in run.stderr
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert sorted(results["n-shot"]) == sorted(EXPORTED)
    got = samples_file_records(out, results["n-shot"])
    want = as_written({t: recorded["default_shots"][t] for t in EXPORTED})
    assert_same(got, want)
    # LLMBar with shots: its pools span several splits; --num_fewshot reaches it (no YAML 0)
    llmbar = [t for t in EXPORTED if "llmbar" in t]
    out = tmp_path / "llmbar_4_shots"
    folder = export_upstream(tmp_path / "elsewhere", local_data="fixtures")
    common[common.index("--include_path") + 1] = str(folder)
    _run(["-m", "lm_eval", "run", "--tasks", ",".join(llmbar), "--num_fewshot", "4",
          "--output_path", str(out), *common], env, tmp_path)
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert_same(samples_file_records(out, results["n-shot"]),
                as_written({t: recorded["llmbar_4_shots"][t] for t in llmbar}))


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    with mock.patch.dict(os.environ, _stock_env(tmp_path), clear=True):
        proc = subprocess.run([sys.executable, "-c", "import lm_eval, amuro_study"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0 and "blocked for this test" in proc.stderr


def test_exported_python_is_lint_clean(hub_export: Path) -> None:
    """What an upstream reviewer's linter sees: no unused import, no undefined name."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select",
                           "E,F,W,I,UP,B", "--line-length", "100", str(hub_export)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_an_lm_eval_without_fewshot_process_docs_is_refused(hub_export: Path) -> None:
    """lm-eval < 0.4.10 would build the shots with the scored split's process_docs: refused
    loudly at import instead of silently showing other shots."""
    with mock.patch.dict(sys.modules, {"lm_eval.config.task": None}):
        with pytest.raises(ImportError, match=r"lm-eval >= 0\.4\.10"):
            _utils(hub_export)
    _utils(hub_export)  # the installed lm-eval has it
