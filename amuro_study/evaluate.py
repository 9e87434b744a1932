"""Score one checkpoint with lm-eval's Python API and turn the output into result records.

One :func:`lm_eval.simple_evaluate` call per evaluation unit: every set x format of the unit in
one model load, with amuro's tasks (``amuro_tasks.task_manager``), ``log_samples=True``, and the
per-sample logs written as ``samples/<task>.jsonl`` next to the unit's result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from amuro_study.config import BackendSpec
from amuro_study.plan import EvalUnit
from amuro_study.records import ResultRecord, atomic_write_text

SAMPLES_DIR = "samples"


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def data_read(unit: EvalUnit) -> dict[str, Any]:
    """Per set of ``unit``: what its load read in this process (protocol, splits, source and
    commit of each split, rows scored, rows dropped by reason; ``amuro_tasks.loading``)."""
    from amuro_tasks.loading import data_provenance

    return {t.eval_set: data_provenance(t.eval_set, unit.splits) for t in unit.tasks}


def scored_data(eval_set: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """``split`` and ``data_commit`` of a record of ``eval_set``, from :func:`data_read`."""
    read = (data or {}).get(eval_set) or {}
    scored = str(read.get("scored_split", "")).split("+")
    commits = {s.get("commit") for s in read.get("sources", []) if s.get("split") in scored}
    return {"split": read.get("scored_split"),
            "data_commit": commits.pop() if len(commits) == 1 else None}


def _write_samples(path: Path, samples: list[dict[str, Any]]) -> None:
    lines = [json.dumps(s, default=str, ensure_ascii=False) for s in samples]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def results_to_records(
    unit: EvalUnit, results: dict[str, Any], *, commit: str | None,
    samples_paths: dict[str, str] | None = None, data: dict[str, Any] | None = None,
) -> list[ResultRecord]:
    """One :class:`ResultRecord` per (task, metric) of an lm-eval ``results`` dict.

    Set and format come from the unit's typed :class:`~amuro_study.plan.EvalTask` list, never
    from parsing the task name; stderr is lm-eval's ``<metric>_stderr`` (``None`` if N/A);
    split and data commit from ``data`` (:func:`data_read`).
    """
    ft = unit.finetune
    epochs = None
    if ft is not None and ft.max_steps <= 0 and float(ft.epochs).is_integer():
        epochs = int(ft.epochs)
    records = []
    for task in unit.tasks:
        row = results["results"].get(task.task_name)
        if row is None:
            raise RuntimeError(f"lm-eval returned no result for {task.task_name}")
        for key, value in sorted(row.items()):
            if "," not in key or "_stderr," in key:
                continue
            metric, _filter = key.split(",", 1)
            number = _number(value)
            if number is None:
                continue
            records.append(ResultRecord(
                model=unit.checkpoint.model, revision=unit.checkpoint.revision,
                step=unit.checkpoint.step, commit=commit,
                finetune=ft.task if ft else None, learning_rate=ft.learning_rate if ft else None,
                epochs=epochs, seed=ft.seed if ft else None,
                eval_set=task.eval_set, format=task.format, shots=unit.shots,
                fewshot_seed=unit.fewshot_seed if unit.shots else None,
                shot_sampling=unit.shot_sampling if unit.shots else None, metric=metric,
                value=number, stderr=_number(row.get(f"{metric}_stderr,{_filter}")),
                samples_path=(samples_paths or {}).get(task.task_name),
                protocol=unit.splits, **scored_data(task.eval_set, data),
            ))
    return records


def evaluate_unit(
    unit: EvalUnit, pretrained: str, revision: str | None, unit_dir: Path,
    backend: BackendSpec, *, commit: str | None = None,
) -> tuple[list[ResultRecord], dict[str, Any]]:
    """Run lm-eval for ``unit`` on the model at ``pretrained`` (@ ``revision``).

    Writes ``unit_dir/samples/<task>.jsonl`` and returns the records (``samples_path`` relative
    to ``unit_dir``) and provenance (lm-eval version, model config, sample counts).
    """
    import lm_eval

    import amuro_tasks

    if backend.lm_eval_model != backend.eval:
        import amuro_tasks.prefix_lm  # noqa: F401  (registers amuro-hf with lm-eval)

    metadata: dict[str, Any] = unit.lm_eval_metadata()
    # lm-eval copies model_args into the task metadata only when it builds the TaskManager
    # itself; first_token scoring reads the tokenizer from there
    metadata |= {k: v for k, v in backend.model_args(pretrained, revision).items()
                 if k in ("pretrained", "revision", "trust_remote_code")}
    out = lm_eval.simple_evaluate(
        model=backend.lm_eval_model, model_args=backend.model_args(pretrained, revision),
        tasks=[t.task_name for t in unit.tasks], num_fewshot=unit.shots, limit=unit.limit,
        device=backend.device if backend.eval == "hf" else None, **backend.batch_kwargs(),
        log_samples=True, fewshot_random_seed=unit.fewshot_random_seed,
        # amuro tasks only: indexing lm-eval's ~thousands of built-in YAMLs costs ~9 s a call
        task_manager=amuro_tasks.task_manager(metadata=metadata, include_defaults=False),
        verbosity="ERROR",
    )
    if out is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results (non-zero rank?)")
    samples_dir = unit_dir / SAMPLES_DIR
    samples_paths: dict[str, str] = {}
    for task in unit.tasks:
        rel = f"{SAMPLES_DIR}/{task.task_name}.jsonl"
        _write_samples(samples_dir / f"{task.task_name}.jsonl",
                       list(out.get("samples", {}).get(task.task_name, [])))
        samples_paths[task.task_name] = rel
    config = dict(out.get("config", {}))
    commit = commit or config.get("model_sha") or None
    data = data_read(unit)
    records = results_to_records(unit, out, commit=commit, samples_paths=samples_paths, data=data)
    provenance = {
        "lm_eval_version": out.get("lm_eval_version"),
        "transformers_version": out.get("transformers_version"),
        "config": {k: v for k, v in config.items() if k != "model_args"} | {
            "model_args": backend.model_args(pretrained, revision)},
        "n_samples": out.get("n-samples"), "versions": out.get("versions"),
        "n_shot": out.get("n-shot"), "data": data,
    }
    return records, provenance
