"""The family declarations: one file per family, everything else derived from them by import."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from jinja2 import meta

import amuro_tasks
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.families import FAMILIES, SPECS, get_family, get_spec
from amuro_tasks.family import FORMATS, KINDS, EvalSet, Family, Prompts
from amuro_tasks.loading import LoadOptions, load_docs
from amuro_tasks.prompts import _ENV
from amuro_tasks.rows import Normalizer
from amuro_tasks.suite import FINETUNE_TASKS

PACKAGE = Path(amuro_tasks.__file__).parent


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "amuro_tasks.")
                  if ".task_yamls" not in m.name)


def test_one_file_per_family_listed_in_the_registry() -> None:
    files = sorted(p.stem for p in (PACKAGE / "families").glob("*.py") if p.stem != "__init__")
    assert files == sorted(f.name for f in FAMILIES)
    for family in FAMILIES:
        module = sys.modules[f"amuro_tasks.families.{family.name}"]
        assert module.FAMILY is family
        assert family.sets and all(s.family == family.name for s in family.specs)
        assert family.kind in KINDS


def test_every_set_is_declared_once_and_bound_to_its_family() -> None:
    assert len(SPECS) == sum(len(f.sets) for f in FAMILIES) == 21
    for name, spec in SPECS.items():
        family = get_family(spec.family)
        assert spec.name == name and spec.kind == family.kind
        assert spec.metric == family.scoring.metrics[0]
        assert spec.is_classification == (family.name in {"nli", "paraphrase"})
    with pytest.raises(AmuroConfigError, match="unknown evaluation set 'nope'"):
        get_spec("nope")
    with pytest.raises(AmuroConfigError, match="unknown prompt family 'nope'"):
        get_family("nope")


def test_declarations_are_checked() -> None:
    prompts = Prompts(default="{{ x }}", instruct="{{ x }}", io="{{ x }}")
    one = EvalSet("a", "o/a", None, "test", Normalizer("text_to_text", {"fields": {},
                                                                         "target": "t"}))
    with pytest.raises(ValueError, match="unknown kind"):
        Family("f", "F", "ranking", prompts, (one,))
    with pytest.raises(ValueError, match="duplicate set names"):
        Family("f", "F", "generation", prompts, (one, one))
    with pytest.raises(ValueError, match="are not its sets"):
        Family("f", "F", "generation", prompts, (one,), format_groups={"g": ("b",)})
    with pytest.raises(ValueError, match="unknown normaliser kind"):
        Normalizer("guess")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_prompts_read_only_the_fields_of_the_sets_docs(name: str) -> None:
    spec = SPECS[name]
    family = get_family(spec.family)
    doc = load_docs(name, LoadOptions(source="fixtures"))["eval"][0]
    for fmt in FORMATS:
        used = meta.find_undeclared_variables(_ENV.parse(family.prompts[fmt]))
        assert used and used <= set(doc), (name, fmt, used - set(doc))


def test_fine_tuned_families_declare_the_input_field_to_truncate() -> None:
    for task in FINETUNE_TASKS.values():
        family = get_family(get_spec(task.train_set).family)
        field = family.truncate_field
        doc = load_docs(task.train_set, LoadOptions(source="fixtures"))["eval"][0]
        assert field in doc and isinstance(doc[field], str), family.name
        for fmt in FORMATS:  # the field is part of every prompt it shortens
            assert field in meta.find_undeclared_variables(_ENV.parse(family.prompts[fmt]))
        assert task.kind == family.kind


def test_no_import_cycle_inside_amuro_tasks() -> None:
    """Module-level imports between amuro_tasks modules form no cycle."""
    graph: dict[str, set[str]] = {}
    for name in _modules():
        path = PACKAGE.joinpath(*name.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        deps = set()
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "amuro_tasks.families" or node.module == "amuro_tasks":
                    deps |= {f"{node.module}.{a.name}" for a in node.names}
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in set(_modules()) and d != name}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path, node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph[node]):
            visit(dep, [*path, node])
        state[node] = 2

    for name in graph:
        visit(name, [])


def test_any_module_imported_first_knows_every_family() -> None:
    """Import order never matters: importing any amuro_tasks module first, in a fresh
    interpreter state, leaves every family renderable and every set registered."""
    code = f"""
import importlib, json, sys
results = {{}}
for first in {_modules()!r}:
    for name in [m for m in sys.modules if m == "amuro_tasks" or m.startswith("amuro_tasks.")]:
        del sys.modules[name]
    importlib.import_module(first)
    from jinja2 import meta
    from amuro_tasks.families import FAMILIES, SPECS
    from amuro_tasks.prompts import _ENV, render_prompt
    rendered = 0
    for family in FAMILIES:
        for fmt, template in family.prompts.as_dict().items():
            fields = meta.find_undeclared_variables(_ENV.parse(template))
            rendered += bool(render_prompt(family.name, fmt, {{k: "x" for k in fields}}))
    results[first] = [len(SPECS), sorted(f.name for f in FAMILIES), rendered]
print(json.dumps(results))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert set(results) == set(_modules())
    expected = [21, sorted(f.name for f in FAMILIES), 3 * len(FAMILIES)]
    assert all(r == expected for r in results.values()), results


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_readmes_say_where_the_prompts_live(family: Family) -> None:
    from amuro_tasks.yaml_gen import YAML_DIR

    where = f"`amuro_tasks/families/{family.name}.py` (`FAMILY.prompts`"
    readme = (YAML_DIR / family.name / "README.md").read_text()
    assert f"**Where the prompts live:** in {where}" in readme
    assert (PACKAGE / "families" / f"{family.name}.py").is_file()
    if "| format | prompt |" in readme:  # a table quoting the templates quotes them exactly
        for template in family.prompts.as_dict().values():
            cell = template.replace("\n", "\\n").replace("|", "\\|")
            assert f"`{cell}`" in readme, (family.name, template)
    main = (PACKAGE.parent / "README.md").read_text()
    assert ("Every prompt lives in its family's declaration, `amuro_tasks/families/<family>.py`"
            in main.replace("\n", " "))
