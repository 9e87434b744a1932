"""Score one checkpoint with lm-eval's Python API and turn the output into result records.

One :func:`lm_eval.simple_evaluate` call per evaluation unit: every set x format of the unit in
one model load, with amuro's tasks (``amuro_tasks.task_manager``) and ``log_samples=True``. The
output is written by lm-eval's own ``EvaluationTracker``, exactly as ``lm_eval --output_path
<unit>/lm_eval/results.json --log_samples`` writes it: ``lm_eval/results_<date>.json`` (results,
configs, versions, n-shot, ...) and one ``lm_eval/samples_<task>_<date>.jsonl`` per task, which
the records point at (the report's bootstrap CIs read them).

The tracker logs a warning and goes on when a write fails (a full disk): each file is read back
and checked here before the unit can be recorded done, so a torn file is never trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amuro_study.config import BackendSpec
from amuro_study.plan import EvalUnit
from amuro_study.records import ResultRecord

LM_EVAL_DIR = "lm_eval"
"""A unit's lm-eval output folder (``--output_path <unit>/lm_eval/results.json``)."""
TRACKER_LOGGER = "lm_eval.loggers.evaluation_tracker"


class LmEvalOutputError(RuntimeError):
    """lm-eval's tracker did not write the unit's results or samples completely."""


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


class _Messages(logging.Handler):
    """Collects what lm-eval's tracker logs (its reason when a write fails)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message."""
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _tracker_messages() -> Iterator[_Messages]:
    logger = logging.getLogger(TRACKER_LOGGER)
    handler, level = _Messages(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def save_lm_eval_output(out_dir: Path, tracker: Any, results: dict[str, Any],
                        samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write ``results`` and ``samples`` with lm-eval's ``tracker`` as its command line does,
    then read every file back; return the files (relative to ``out_dir.parent``).

    Raises :class:`LmEvalOutputError` naming the file (and lm-eval's reason) when one is
    missing, torn or short: the tracker itself only logs a warning.
    """
    counts = {task: len(rows) for task, rows in samples.items()}
    with _tracker_messages() as said:
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])

    def fail(path: Path, what: str) -> LmEvalOutputError:
        reason = "; ".join(line for line in said.lines if "Saving" not in line)
        return LmEvalOutputError(f"lm-eval did not write {path} completely ({what})"
                                 + (f": {reason}" if reason else ""))

    date_id = getattr(tracker, "date_id", None)
    results_file = out_dir / f"results_{date_id}.json"
    try:
        written = json.loads(results_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise fail(results_file, type(err).__name__) from None
    missing = [t for t in results["results"] if t not in written.get("results", {})]
    if missing:
        raise fail(results_file, f"no results for {', '.join(missing)}")
    files = {}
    for task in results["configs"]:
        path = out_dir / f"samples_{task}_{date_id}.jsonl"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            for line in lines:
                json.loads(line)
        except (OSError, ValueError) as err:
            raise fail(path, type(err).__name__) from None
        if len(lines) != counts.get(task, 0):
            raise fail(path, f"{len(lines)} of {counts.get(task, 0)} samples")
        files[task] = str(path.relative_to(out_dir.parent))
    return {"results_file": str(results_file.relative_to(out_dir.parent)), "samples": files}


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

    Writes lm-eval's output under ``unit_dir/lm_eval/`` (:func:`save_lm_eval_output`) and
    returns the records (``samples_path`` relative to ``unit_dir``) and provenance (lm-eval
    version, model config, sample counts, the output files).
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    import amuro_tasks
    from amuro_tasks.quiet_git import quiet_git_hash

    if backend.lm_eval_model != backend.eval:
        import amuro_tasks.prefix_lm  # noqa: F401  (registers amuro-hf with lm-eval)

    metadata: dict[str, Any] = unit.lm_eval_metadata()
    # lm-eval copies model_args into the task metadata only when it builds the TaskManager
    # itself; first_token scoring reads the tokenizer from there
    metadata |= {k: v for k, v in backend.model_args(pretrained, revision).items()
                 if k in ("pretrained", "revision", "trust_remote_code")}
    out_dir = unit_dir / LM_EVAL_DIR
    tracker = EvaluationTracker(output_path=str(out_dir / "results.json"))
    with quiet_git_hash():
        out = lm_eval.simple_evaluate(
            model=backend.lm_eval_model, model_args=backend.model_args(pretrained, revision),
            tasks=[t.task_name for t in unit.tasks], num_fewshot=unit.shots, limit=unit.limit,
            device=backend.device if backend.eval == "hf" else None, **backend.batch_kwargs(),
            log_samples=True, evaluation_tracker=tracker,
            fewshot_random_seed=unit.fewshot_random_seed,
            # amuro tasks only: indexing lm-eval's ~thousands of built-in YAMLs costs ~9 s
            task_manager=amuro_tasks.task_manager(metadata=metadata, include_defaults=False),
        )
    if out is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results (non-zero rank?)")
    samples = out.pop("samples", {})
    config = dict(out.get("config", {}))
    data = data_read(unit)
    provenance = {
        "lm_eval_version": out.get("lm_eval_version"),
        "transformers_version": out.get("transformers_version"),
        "config": {k: v for k, v in config.items() if k != "model_args"} | {
            "model_args": backend.model_args(pretrained, revision)},
        "n_samples": out.get("n-samples"), "versions": out.get("versions"),
        "n_shot": out.get("n-shot"), "data": data,
    }
    files = save_lm_eval_output(out_dir, tracker, out, samples)
    commit = commit or config.get("model_sha") or None
    records = results_to_records(unit, out, commit=commit, samples_paths=files["samples"],
                                 data=data)
    return records, provenance | {"output": files}
