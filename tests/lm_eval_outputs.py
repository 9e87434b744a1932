"""Per-sample lm-eval outputs of amuro's tasks, in a form that can be recorded and compared.

Used by ``tests/test_plugin_outputs.py`` (the plugin against outputs recorded before the task
declarations were restructured) and ``tests/test_upstream_export.py`` (stock lm-eval on the
exported tasks against the plugin). Record anew with
``PYTHONPATH=. python tests/lm_eval_outputs.py`` (only when a change of outputs is intended).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "data" / "plugin_outputs.json"
LIMIT = 3
LOGLIK_TOLERANCE = 1e-5

#: (name, tasks, num_fewshot or None for each task's default, extra metadata)
RUNS: tuple[tuple[str, str, int | None, dict[str, Any]], ...] = (
    ("default_shots", "amuro_*", None, {}),
    ("llmbar_4_shots", "amuro_llmbar_*", 4, {}),
    ("first_token", "amuro_nli,amuro_paraphrase", None, {"amuro_scoring": "first_token"}),
)


def sample_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """What a sample shows of the model's inputs and outputs (the doc itself is left out: the
    plugin's docs carry pre-rendered prompts that the exported tasks render with Jinja)."""
    args = [list(a) for a in sample["arguments"]]
    contexts = {a[0] for a in args}
    assert len(contexts) == 1, "one context per document"
    second = [a[1] for a in args]
    record: dict[str, Any] = {"doc_id": sample["doc_id"], "context": contexts.pop()}
    if isinstance(second[0], str):
        record["continuations"] = second
        record["resps"] = [[float(r[0]), bool(r[1])] for r in sample["filtered_resps"]]
    else:
        record["gen_kwargs"] = json.loads(json.dumps(second[0], default=str))
        record["resps"] = [str(r) for r in sample["filtered_resps"]]
    target = sample["target"]
    record["target"] = target if isinstance(target, (int, str)) else str(target)
    record["metrics"] = {m: float(sample[m]) for m in sample["metrics"]}
    return record


def file_sample_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`sample_record` of a sample as lm-eval writes it to ``samples_<task>_*.jsonl``
    (arguments as ``gen_args_N``, responses and target as strings)."""
    args = [[a["arg_0"], a["arg_1"]] for _, a in sorted(sample["arguments"].items(),
                                                       key=lambda kv: int(kv[0].split("_")[-1]))]
    resps = sample["filtered_resps"]
    if isinstance(args[0][1], str):
        resps = [(float(r[0]), {"True": True, "False": False}[r[1]]) for r in resps]
    record = sample_record({**sample, "arguments": args, "filtered_resps": resps})
    record["target"] = sample["target"]  # str(target): compare with :func:`as_written`
    return record


def as_written(records: Mapping[str, Any]) -> dict[str, Any]:
    """Task records as they read back from samples files (targets are strings there)."""
    return {task: {**run, "samples": [{**s, "target": str(s["target"])} for s in run["samples"]]}
            for task, run in records.items()}


def samples_file_records(out_dir: Path, n_shot: Mapping[str, int]) -> dict[str, Any]:
    """Task records read from an ``lm_eval --log_samples --output_path out_dir`` run."""
    records = {}
    for task, shots in n_shot.items():
        (path,) = out_dir.rglob(f"samples_{task}_*.jsonl")
        samples = [json.loads(line) for line in path.read_text().splitlines()]
        records[task] = {"n_shot": shots, "samples": [
            file_sample_record(s) for s in sorted(samples, key=lambda s: s["doc_id"])]}
    return records


def task_records(out: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``simple_evaluate`` output -> task -> {n_shot, samples}."""
    return {
        task: {"n_shot": out["n-shot"][task],
               "samples": [sample_record(s) for s in sorted(samples, key=lambda s: s["doc_id"])]}
        for task, samples in out["samples"].items()
    }


def assert_same(got: Mapping[str, Any], want: Mapping[str, Any], where: str = "") -> None:
    """Equal records: strings and ints exactly, log-likelihoods and metrics within 1e-5."""
    if isinstance(want, Mapping):
        assert isinstance(got, Mapping) and set(got) == set(want), (
            f"{where}: keys {sorted(got) if isinstance(got, Mapping) else got} != {sorted(want)}")
        for key in want:
            assert_same(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and math.isclose(
            got, want, rel_tol=0, abs_tol=LOGLIK_TOLERANCE), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def evaluate(model_dir: Path, tasks: Iterable[str], num_fewshot: int | None = None,
             task_manager: Any = None, limit: int = LIMIT, **metadata: Any) -> dict[str, Any]:
    """One ``simple_evaluate`` call on the tiny model; per-task records."""
    import lm_eval

    import amuro_tasks

    if task_manager is None:
        task_manager = amuro_tasks.task_manager(
            metadata={"pretrained": str(model_dir), **metadata}, include_defaults=False)
    matched = task_manager.match_tasks(list(tasks))
    # a glob matches tasks and tags: build each task once, not once per tag naming it
    loaded = task_manager.load([n for n in matched if n in task_manager.all_subtasks]
                               or matched)["tasks"]
    if num_fewshot is not None:  # set on the task: lm-eval never overrides a YAML's 0 shots
        for task in loaded.values():
            task.set_config(key="num_fewshot", value=num_fewshot)
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32",
        tasks=list(loaded.values()), batch_size=16, device="cpu", limit=limit, log_samples=True,
        task_manager=task_manager, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
        fewshot_random_seed=0,
    )
    return task_records(out)


def plugin_outputs(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Every run of :data:`RUNS` through the plugin: run name -> task -> records."""
    return {name: evaluate(model_dir, tasks.split(","), shots, **meta)
            for name, tasks, shots, meta in RUNS}


def plugin_docs() -> dict[str, Any]:
    """Every set's validated docs as the plugin loads them from the fixtures: the scored rows and
    the whole shot pool (row indices, in order) and a digest of every doc's fields."""
    import hashlib

    from amuro_tasks.loading import LoadOptions, load_docs
    from amuro_tasks.specs import SPECS

    out = {}
    for name in sorted(SPECS):
        docs = load_docs(name, LoadOptions(source="fixtures"))
        out[name] = {
            split: {"row_index": list(docs[split]["row_index"]),
                    "sha256": hashlib.sha256(json.dumps(docs[split].to_list(), sort_keys=True,
                                                        ensure_ascii=False).encode()).hexdigest()}
            for split in ("eval", "fewshot")
        }
    return out


def load_recorded() -> dict[str, Any]:
    """The outputs recorded by this module's ``__main__``."""
    return json.loads(RECORDED.read_text())


if __name__ == "__main__":  # record (the tiny model of tests/conftest.py: default shape, seed 0)
    import os
    import tempfile

    os.environ.update(AMURO_DATA="fixtures", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    from amuro_tasks.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        records = plugin_outputs(build_tiny_model(Path(tmp) / "tiny"))
    records["docs"] = plugin_docs()
    RECORDED.write_text(json.dumps(records, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {RECORDED}",
          {k: len(v) for k, v in records.items()}, file=sys.stderr)
