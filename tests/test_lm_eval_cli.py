"""The tasks through lm-eval's own command line, exactly as a user runs them."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amuro_tasks import include_path, task_manager
from amuro_tasks.prompts import FORMATS, render_prompt
from amuro_tasks.specs import SPECS
from amuro_tasks.yaml_gen import YAML_DIR, render_all, task_name

ALL_TASKS = sorted(task_name(s, f) for s in SPECS for f in FORMATS)
ENV = {**os.environ, "AMURO_DATA": "fixtures", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _lm_eval(*args: str) -> subprocess.CompletedProcess:
    return _run(sys.executable, "-m", "lm_eval", *args)


def _results(out: Path) -> dict:
    files = sorted(out.rglob("results_*.json"))
    assert files, f"no results under {out}"
    return json.loads(files[-1].read_text())


def _contexts(out: Path, task: str) -> dict[int, str]:
    (path,) = out.rglob(f"samples_{task}_*.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return {r["doc_id"]: r["arguments"]["gen_args_0"]["arg_0"] for r in rows}


def _per_task_warnings(lines: list[str]) -> list[str]:
    """Warnings that name an amuro task (one line per task: noise, not information)."""
    return [line for line in lines if "WARNING" in line and re.search(r"\bamuro_\w+", line)]


def test_building_every_task_warns_nothing_per_task(caplog: pytest.LogCaptureFixture) -> None:
    notice = logging.getLogger("lm_eval.api.task")
    with caplog.at_level(logging.WARNING):
        loaded = task_manager(include_defaults=False).load(ALL_TASKS)["tasks"]
    assert sorted(loaded) == ALL_TASKS
    warnings = [f"WARNING {r.name}: {r.getMessage()}" for r in caplog.records
                if r.levelno >= logging.WARNING]
    assert not _per_task_warnings(warnings), warnings[:5]
    # control: without amuro's filter lm-eval does say it, once per task (the test can fail)
    saved = list(notice.filters)
    caplog.clear()
    try:
        for f in saved:
            notice.removeFilter(f)
        with caplog.at_level(logging.WARNING):
            task_manager(include_defaults=False).load(ALL_TASKS[:2])
    finally:
        for f in saved:
            notice.addFilter(f)
    noise = [r for r in caplog.records if "Custom kwargs can be passed" in r.getMessage()]
    assert len(noise) == 2


def test_committed_yamls_match_the_generator() -> None:
    expected = render_all()
    for rel, content in expected.items():
        stale = f"{rel} is stale: run python -m amuro_tasks.yaml_gen"
        assert (YAML_DIR / rel).read_text() == content, stale
    on_disk = {p.relative_to(YAML_DIR) for p in YAML_DIR.rglob("*") if p.suffix in {".yaml", ""}
               and p.is_file() and p.name != "README.md"}
    assert on_disk <= set(expected), f"YAMLs without a spec: {on_disk - set(expected)}"


def test_every_task_folder_has_a_readme_naming_its_tasks() -> None:
    for folder in {rel.parts[0] for rel in render_all()}:
        readme = (YAML_DIR / folder / "README.md").read_text()
        for yaml in (YAML_DIR / folder).glob("amuro_*.yaml"):
            assert yaml.stem in readme, f"{folder}/README.md does not list {yaml.stem}"


def test_module_prints_the_include_path() -> None:
    out = _run(sys.executable, "-m", "amuro_tasks", "path").stdout.strip()
    assert out == include_path() and Path(out, "nli").is_dir()


@pytest.mark.slow
def test_ls_and_validate_accept_every_task() -> None:
    listed = _lm_eval("ls", "tasks", "--include_path", include_path()).stdout
    missing = [t for t in ALL_TASKS if t not in listed]
    assert not missing, f"lm_eval ls tasks does not list {missing}"
    out = _lm_eval("validate", "--tasks", ",".join(ALL_TASKS), "--include_path", include_path())
    assert "All tasks found and valid" in out.stdout
    via_amuro = _run("amuro-eval", "ls", "tasks").stdout
    assert all(t in via_amuro for t in ALL_TASKS)


@pytest.mark.slow
def test_whole_suite_runs_end_to_end_4_shot(tiny_model_dir: Path, other_tiny_model_dir: Path,
                                            tmp_path: Path) -> None:
    common = ["--device", "cpu", "--batch_size", "16", "--limit", "6", "--log_samples",
              "--include_path", include_path()]
    out_a = tmp_path / "a"
    run = _lm_eval("--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
                   "--tasks", "amuro_*", "--output_path", str(out_a), *common)
    assert not _per_task_warnings(run.stderr.splitlines()), "a warning repeated per task"
    results = _results(out_a)
    assert sorted(results["results"]) == ALL_TASKS
    for task in ALL_TASKS:
        # LLMBar pairs two long outputs per prompt: zero-shot by design (see its README)
        assert results["n-shot"][task] == (0 if "llmbar" in task else 4), task
        metrics = {k: v for k, v in results["results"][task].items()
                   if k.endswith(",none") and "stderr" not in k}
        assert metrics and all(0.0 <= v <= 1.0 for v in metrics.values()), (task, metrics)

    # every checkpoint sees the same shots: a different model gets identical contexts
    probe = ["amuro_mnli_matched_default", "amuro_xsum_instruct", "amuro_tweetqa_io"]
    out_b = tmp_path / "b"
    _lm_eval("--model", "hf", "--model_args", f"pretrained={other_tiny_model_dir},dtype=float32",
             "--tasks", ",".join(probe), "--output_path", str(out_b), *common)
    for task in probe:
        a, b = _contexts(out_a, task), _contexts(out_b, task)
        assert a == b and len(a) == 6
        assert a[0].count("\n\n") == 4  # four shots, then the scored prompt


@pytest.mark.slow
def test_zero_shot_context_is_the_bare_prompt(tiny_model_dir: Path, tmp_path: Path) -> None:
    from amuro_tasks.harness import load_amuro_set

    _run("amuro-eval", "--model", "hf", "--model_args",
         f"pretrained={tiny_model_dir},dtype=float32", "--tasks", "amuro_paws_instruct",
         "--num_fewshot", "0", "--limit", "3", "--device", "cpu", "--log_samples",
         "--output_path", str(tmp_path))
    docs = load_amuro_set("paws", amuro_data="fixtures")["eval"]
    contexts = _contexts(tmp_path, "amuro_paws_instruct")
    assert contexts == {i: render_prompt("paraphrase", "instruct", docs[i]) for i in range(3)}
    assert _results(tmp_path)["n-shot"]["amuro_paws_instruct"] == 0


@pytest.mark.slow
def test_per_document_shots_through_lm_evals_command_line(tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    """``--metadata amuro_shots=per_document`` in a fresh ``lm_eval`` process: the YAMLs' sampler
    is registered when lm-eval loads them, and each document gets its own draw from the pool,
    seeded by lm-eval's few-shot seed (``--seed``'s fourth value) as its default sampler."""
    import random

    from amuro_tasks.harness import load_amuro_set

    _lm_eval("--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
             "--include_path", include_path(), "--tasks", "amuro_rte_default", "--limit", "6",
             "--device", "cpu", "--log_samples", "--output_path", str(tmp_path),
             "--seed", "0,1234,1234,7", "--metadata",
             json.dumps({"amuro_shots": "per_document", "amuro_fewshot_seed": 5}))
    docs = load_amuro_set("rte", amuro_data="fixtures", amuro_fewshot_seed=5)
    pool, scored = list(docs["fewshot"]), list(docs["eval"])
    rnd = random.Random(7)
    want = {}
    for i in range(6):
        shots = rnd.sample(pool, 4)
        want[i] = "".join(render_prompt("nli", "default", s) + " " + s["target"] + "\n\n"
                          for s in shots) + render_prompt("nli", "default", scored[i])
    assert _contexts(tmp_path, "amuro_rte_default") == want
    assert len({c.split("\n\n")[0] for c in want.values()}) > 2
    config = _results(tmp_path)["configs"]["amuro_rte_default"]
    assert config["fewshot_config"]["sampler"] == "amuro"


def test_amuro_eval_refuses_a_second_include_path() -> None:
    proc = subprocess.run(["amuro-eval", "--tasks", "x", "--include_path", "/tmp"], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "takes only one" in proc.stderr


def test_amuro_eval_help_says_what_amuro_adds() -> None:
    """`amuro-eval --help`: what amuro adds (include path, device, batch size), then lm-eval's
    own help."""
    from amuro_tasks import include_path

    out = _run("amuro-eval", "--help").stdout
    head, _, rest = out.partition("Everything else is lm-eval's own:")
    assert "amuro adds" in head and f"--include_path {include_path()}" in head
    assert "--device cpu --batch_size 16" in head and "--batch_size auto" in head
    assert "usage: lm-eval" in rest and "--model_args" in rest


def test_the_readmes_python_snippet_runs_on_this_machine(tiny_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `simple_evaluate` snippet, as written (the model swapped for the tiny one,
    2 rows per task), runs on a machine without a GPU: it passes the device."""
    import functools

    import lm_eval

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                  if "simple_evaluate" in b]
    monkeypatch.setattr(lm_eval, "simple_evaluate",
                        functools.partial(lm_eval.simple_evaluate, limit=2))
    scope: dict = {}
    exec(snippet.replace("allenai/OLMo-1B-hf", f"{tiny_model_dir},dtype=float32"), scope)
    assert set(scope["out"]["results"]) == {f"amuro_xsum_{f}" for f in FORMATS}
