"""``amuro``: plan, run and report a study; ``amuro demo`` runs the offline demo end to end.

::

    amuro study plan CONFIG.yaml            # the grid and its cost, nothing is run
    amuro study run CONFIG.yaml             # run (or resume) it, then write the report
    amuro study report CONFIG.yaml          # report from the results collected so far
    amuro study report --paper OUT          # the report of the paper's released results
    amuro data check CONFIG.yaml|TASKS      # read the first rows of every split it will touch
    amuro demo                              # = amuro study run examples/demo.yaml

Exit status: 0 when every unit is done, 1 when some unit failed or was blocked (they are
listed) or there is nothing to report yet, 2 for a bad config, command line or output folder
(nothing was run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from amuro_study.config import EvalSpec, StudyConfig, StudyConfigError, load_config
from amuro_study.plan import Plan, build_plan, estimate_cost
from amuro_study.runner import (
    BLOCKED,
    DONE,
    FAILED,
    SKIPPED,
    VERBOSE_ENV,
    StudySummary,
    UnitOutcome,
    collect_records,
    prepare_output,
    run_study,
    stage_durations,
    store_of,
)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
STAGE_TITLES = {
    "pretrain": "pre-train tiny model", "base-eval": "evaluate base checkpoints",
    "finetune": "fine-tune checkpoints", "finetuned-eval": "evaluate fine-tuned models",
}


def set_offline() -> None:
    """No Hub access for this process and its children."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[key] = "1"


def quiet_libraries() -> None:
    """Keep the terminal for amuro's progress and the warnings that matter.

    While a unit runs, the libraries' log records, warnings and output go to its ``log.txt``
    (:func:`amuro_study.runner.unit_log`, which also turns their progress bars off). Between
    units (planning, the report) their chatter is cut to errors, and Python warnings become
    log records (``py.warnings``, shown from ERROR on); amuro's own warnings stay on.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_DISABLED", "true")
    for name in ("lm_eval", "transformers", "datasets", "accelerate", "trl",
                 "huggingface_hub", "matplotlib", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.captureWarnings(True)
    if not logging.getLogger("amuro").handlers:  # amuro's warnings: one plain line each
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("amuro: %(levelname)s: %(message)s"))
        handler.setLevel(logging.WARNING)
        logging.getLogger("amuro").addHandler(handler)


class RichProgress:
    """One ``rich`` progress bar per stage, with failures printed as they happen."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(file=sys.stdout)
        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=self.console,
            redirect_stdout=False, redirect_stderr=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def start_stage(self, stage: str, total: int, completed: int) -> None:
        """Open the bar of ``stage`` (``completed`` units were already done)."""
        note = f"{completed} already done" if completed else ""
        self.tasks[stage] = self.progress.add_task(
            STAGE_TITLES.get(stage, stage), total=total, completed=completed, note=note)

    def advance(self, stage: str, outcome: UnitOutcome) -> None:
        """One unit of ``stage`` finished (or failed)."""
        self.progress.advance(self.tasks[stage])
        if outcome.status in (FAILED, BLOCKED):
            self.progress.console.print(
                f"[red]{outcome.status}[/red] {outcome.description}: {outcome.error}",
                markup=True, highlight=False)
        for line in outcome.warnings:
            self.progress.console.print(f"[yellow]{outcome.description}[/yellow]: {line}",
                                        markup=True, highlight=False)

    def end_stage(self, stage: str) -> None:
        """Close the bar of ``stage``."""
        self.progress.update(self.tasks[stage], note="")


def print_plan(plan: Plan, out: Any = None) -> None:
    """The grid and its cost estimate, in words."""
    out = out or sys.stdout
    cfg = plan.config
    store = store_of(plan)
    done = store.done_ids()
    print(f"study {cfg.name!r} -> {cfg.output_dir}", file=out)
    print(f"checkpoints ({len(plan.checkpoints)}): "
          + ", ".join(c.label for c in plan.checkpoints), file=out)
    rates = {t: sorted({u.learning_rate for u in plan.finetunes if u.task == t})
             for t in cfg.finetune.tasks}
    print("fine-tuning: " + ("; ".join(f"{t} (lr {', '.join(f'{r:g}' for r in lrs)})"
                                       for t, lrs in rates.items()) or "none"), file=out)
    print("evaluation: " + ", ".join(f"{s.name} [{'/'.join(s.formats)}]" for s in cfg.eval.sets)
          + f"; shots {list(cfg.eval.shots)}; limit {cfg.eval.limit}; data {cfg.data}", file=out)
    if cfg.eval.fewshot_seeds != EvalSpec().fewshot_seeds \
            or cfg.eval.shot_sampling != EvalSpec().shot_sampling:
        print(f"shot sets (seeds) {list(cfg.eval.fewshot_seeds)}, shot sampling "
              f"{', '.join(cfg.eval.shot_sampling)}: one evaluation per k-shot count and shot set",
              file=out)
    print(f"backend: eval {cfg.backend.eval} on {cfg.backend.device}, executor "
          f"{cfg.backend.executor}", file=out)
    for stage, units in plan.stages():
        print(f"\n[{stage}] {len(units)} units", file=out)
        for unit in units:
            mark = "done" if unit.uid in done else "todo"
            print(f"  {mark}  {unit.uid}  {unit.describe()}", file=out)
    cost = estimate_cost(plan, done, stage_durations(plan))
    print("\ncost estimate:", file=out)
    for line in cost.lines():
        print(f"  {line}", file=out)


class NothingToReport(RuntimeError):
    """No evaluation has finished yet in the study's output folder."""


def load_and_plan(path: str | Path, output_dir: str | None = None) -> Plan:
    """Config -> validated plan (Hub steps resolved); raises :class:`StudyConfigError`."""
    config: StudyConfig = load_config(path, output_dir or None)
    if config.offline:
        set_offline()
    return build_plan(config)


def check_output_dir(path: Path, key: str = "output_dir") -> None:
    """Raise :class:`StudyConfigError` naming ``key`` unless ``path`` is (or can be made) a
    folder amuro can write in: not a file, not read-only. A probe file is created and removed
    (as root, permission bits say nothing: only a real write tells)."""
    if path.exists() and not path.is_dir():
        raise StudyConfigError(f"{key}: {path} is a file, not a folder")
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".amuro-write-probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        for folder in created:  # deepest first: leave nothing behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise StudyConfigError(f"{key}: cannot write to {path}: {err.strerror or err}") from None


def write_report(plan: Plan, out_dir: Path | None = None) -> Path:
    """Build the report from the plan's collected records (``amuro_study.report.build_report``).

    The report analyses one shot count (4 if planned, else the first) and one learning rate per
    fine-tuning task (the first listed); every record stays in its tables' source data.
    """
    from amuro_study.records import to_frame
    from amuro_study.report import build_report

    records = collect_records(plan)
    if not records:
        source = plan.config.source or "CONFIG.yaml"
        raise NothingToReport(f"no evaluation has finished in {plan.output_dir / 'units'} yet: "
                              f"run `amuro study run {source}` first")
    cfg = plan.config
    shots = 4 if 4 in cfg.eval.shots else cfg.eval.shots[0]
    rates = {f.task: f.learning_rate for f in reversed(plan.finetunes)}
    notes = (f"Study `{cfg.name}` ({cfg.source or 'config'}): {len(plan.checkpoints)} checkpoints"
             f" of {cfg.model}, data source `{cfg.data}`, eval limit {cfg.eval.limit}; "
             f"results under {plan.output_dir / 'units'}.")
    frame = to_frame(records)
    if cfg.pretrain is not None and cfg.pretrain.world is not None:
        from amuro_study.demo_world import describe

        notes = describe(cfg.pretrain.world, frame) + "\n\n" + notes
    return Path(build_report(frame, out_dir or plan.report_dir(),
                             title=f"amuro study report: {cfg.name}", shots=shots,
                             learning_rates=rates, notes=notes))


HISTORY = "history"
"""``<output_dir>/history/``: one JSON file per ``amuro study run`` (never overwritten)."""


def _run_record_path(plan: Plan) -> Path:
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%dT%H%M%S.%f")  # sorts by time; unique per process
    return plan.output_dir / HISTORY / f"run-{stamp}-{os.getpid()}.json"


def _write_run_record(path: Path, record: dict[str, Any]) -> str:
    """Write the run's record; ``""`` or why it could not be written (never raises)."""
    from amuro_sft.atomic import write_json_atomic

    try:
        write_json_atomic(path, record)
    except OSError as err:
        return f"could not write the run summary {path}: {err.strerror or err}"
    return ""


def run(plan: Plan, *, executor: str | None = None, workers: int | None = None,
        cluster: str | None = None, report: bool = True, show_progress: bool = True
        ) -> tuple[StudySummary, Path | None]:
    """Run ``plan`` (resuming), then write the report; return the summary and report path.

    Each call leaves ``<output_dir>/history/run-<time>-<pid>.json``: written when the run
    starts (``status: running``; a run that was killed stays so) and again at its end, with
    every unit's outcome, the counts and the report's path. A storage error in a unit fails
    that unit only; one that stops the report or the summary from being written is in the
    returned summary (as the unit ``report`` / printed), never raised.
    """
    from amuro_study.executors import make_executor
    from amuro_study.runner import NoProgress

    exe = make_executor(plan, executor, workers, cluster)
    start = time.perf_counter()
    record_path = _run_record_path(plan)
    base = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
            "pid": os.getpid(), "config": str(plan.config.source or ""),
            "executor": executor or plan.config.backend.executor}
    problems = [_write_run_record(record_path, {**base, "status": "running"})]
    if show_progress:
        with RichProgress() as progress:
            summary = run_study(plan, exe, progress)
    else:
        summary = run_study(plan, exe, NoProgress())
    report_path = None
    if report:
        error_file = plan.output_dir / "report_error.json"
        try:
            error_file.unlink(missing_ok=True)
            report_path = write_report(plan)
        except Exception as err:  # the results stay; `amuro study report` retries
            import traceback

            from amuro_sft.atomic import write_json_atomic

            with contextlib.suppress(OSError):
                write_json_atomic(error_file, {
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": "".join(traceback.format_exception(err))})
            summary.outcomes.append(UnitOutcome("report", FAILED, "write the report",
                                                error=f"{type(err).__name__}: {err}"))
    problems.append(_write_run_record(record_path, {
        **base, **summary.to_dict(), "status": "finished",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": time.perf_counter() - start,
        "report": str(report_path) if report_path else None}))
    summary.problems = [p for p in problems if p]
    return summary, report_path


def print_summary(summary: StudySummary, report_path: Path | None, wall_s: float) -> None:
    """Counts, failures and where the report is."""
    counts = {s: len(summary.by_status(s)) for s in (DONE, SKIPPED, FAILED, BLOCKED)}
    print(f"\nunits: {counts[DONE]} run now, {counts[SKIPPED]} already done, "
          f"{counts[FAILED]} failed, {counts[BLOCKED]} blocked ({wall_s:.0f} s)")
    for outcome in summary.by_status(FAILED) + summary.by_status(BLOCKED):
        print(f"  {outcome.status.upper()}: {outcome.uid} {outcome.description}: {outcome.error}")
    if summary.by_status(FAILED):
        print("  (traceback: error.json, the libraries' log: log.txt, in the unit's folder "
              "under <output_dir>/units/; a re-run retries them)")
    for problem in summary.problems:
        print(f"  warning: {problem}")
    if report_path is not None:
        print(f"\nreport: {report_path.resolve()}")


# --------------------------------------------------------------------------- commands
def _cmd_plan(args: argparse.Namespace) -> int:
    plan = load_and_plan(args.config, args.output_dir)
    if args.check_data:
        from amuro_study.data_check import check_data

        print_plan(plan)
        print()
        return check_data(plan.config, rows=args.rows)  # with --output-dir applied
    if args.json:
        cost = estimate_cost(plan, store_of(plan).done_ids(), stage_durations(plan))
        print(json.dumps({
            "units": {uid: u.identity() for uid, u in plan.units().items()},
            "stages": {s: [u.uid for u in units] for s, units in plan.stages()},
            "cost": dataclasses.asdict(cost)}, indent=1, default=str))
    else:
        print_plan(plan)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    plan = load_and_plan(args.config, args.output_dir)  # a bad config fails before anything
    check_output_dir(plan.output_dir, "--output-dir" if args.output_dir else "output_dir")
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        quiet_libraries()
    print_plan(plan)
    print()
    start = time.perf_counter()
    summary, report_path = run(plan, executor=args.executor, workers=args.workers,
                               cluster=args.cluster, report=not args.no_report)
    print_summary(summary, report_path, time.perf_counter() - start)
    return 0 if summary.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    if args.paper:
        from amuro_study.paper_results import default_results_dir
        from amuro_study.report import paper_report

        results = Path(args.results) if args.results else default_results_dir()
        if not (results / "all_perf_table.csv").is_file():
            raise StudyConfigError(
                f"--paper: the authors' released results (all_perf_table.csv, "
                f"official_eval_table.csv) are not in {results}; pass --results DIR or set "
                "AMURO_PAPER_RESULTS")
        print(f"report: {paper_report(Path(args.paper), results)}")
        return 0
    if not args.config:
        raise StudyConfigError("<command line>: give CONFIG.yaml or --paper OUT")
    plan = load_and_plan(args.config, args.output_dir)
    if plan.output_dir.is_dir():
        prepare_output(plan)  # a folder made by an older amuro: its units are moved first
    out = Path(args.out) if args.out else plan.report_dir()
    try:
        path = write_report(plan, out)
    except OSError as err:  # a full disk, a read-only folder: the results are untouched
        print(f"amuro: error: cannot write the report to {out}: {err.strerror or err}",
              file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from amuro_study.data_check import check_data

    if args.rows is not None and args.rows < 1:
        raise StudyConfigError(f"--rows: must be >= 1, got {args.rows}")
    return check_data(args.target, rows=None if args.all_rows else args.rows, data=args.data,
                      splits=args.splits, on_invalid=args.on_invalid, tokenizer=args.tokenizer,
                      as_json=args.json)


def _cmd_demo(args: argparse.Namespace) -> int:
    if not DEMO_CONFIG.is_file():
        raise StudyConfigError(f"<demo>: {DEMO_CONFIG} not found (run from a source checkout)")
    args.config = str(DEMO_CONFIG)
    return _cmd_run(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.add_argument("--executor", choices=("local", "slurm"), help="override backend.executor")
    p.add_argument("--workers", type=_positive_int,
                   help="units at once: local processes, or SLURM jobs of a stage")
    p.add_argument("--cluster", help="submitit cluster (slurm, local, debug); default: auto")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument("--verbose", action="store_true", help="keep the libraries' own output")


def build_parser() -> argparse.ArgumentParser:
    """The ``amuro`` argument parser."""
    parser = argparse.ArgumentParser(prog="amuro", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    study = sub.add_parser("study", help="plan, run and report a study")
    ssub = study.add_subparsers(dest="study_command", required=True)

    p = ssub.add_parser("plan", help="print the grid and its cost estimate; run nothing")
    p.add_argument("config")
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    p.add_argument("--check-data", action="store_true",
                   help="also read the first rows of every split the study touches (amuro data "
                        "check); exit 1 if any would stop the run")
    p.add_argument("--rows", type=int, default=300, help="with --check-data: rows per split")
    p.set_defaults(func=_cmd_plan)

    p = ssub.add_parser("run", help="run (or resume) the study, then write the report")
    p.add_argument("config")
    _add_run_options(p)
    p.set_defaults(func=_cmd_run)

    p = ssub.add_parser("report", help="write the report from the collected results")
    p.add_argument("config", nargs="?")
    p.add_argument("--output-dir", help="override the config's output_dir")
    p.add_argument("--out", help="report folder (default: <output_dir>/report)")
    p.add_argument("--paper", metavar="OUT", help="report of the paper's released results")
    p.add_argument("--results", metavar="DIR",
                   help="with --paper: folder of the released CSVs (default: $AMURO_PAPER_RESULTS "
                        "or shared/paper/results next to the repository)")
    p.set_defaults(func=_cmd_report)

    data = sub.add_parser("data", help="check the data a study or a task list will read")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("check", help="read the first rows of every split a study config (or "
                                      "an lm-eval task list) touches, from its real source; "
                                      "exit 1 if anything would stop the run")
    p.add_argument("target", metavar="CONFIG_OR_TASKS",
                   help="a study YAML, or lm-eval task names/tags/globs or set names, "
                        "comma-separated (amuro_arc_*,xsum)")
    p.add_argument("--rows", type=int, default=300, help="rows read per split (default 300)")
    p.add_argument("--all-rows", action="store_true", help="read every row of every split")
    p.add_argument("--data", help="data source: hub, fixtures or a mirror directory (default: "
                                  "the config's `data`, else $AMURO_DATA, else hub)")
    p.add_argument("--splits", choices=("paper", "upstream"),
                   help="split protocol (default: the config's eval.splits, else paper)")
    p.add_argument("--on-invalid", choices=("error", "skip"), default="error",
                   help="task lists: what the run does with an invalid row (default error)")
    p.add_argument("--tokenizer", help="measure inputs in tokens of this tokenizer (default: "
                                       "the config's model)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_cmd_data_check)

    p = sub.add_parser("demo", help="the offline demo: amuro study run examples/demo.yaml")
    _add_run_options(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``amuro``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StudyConfigError as err:
        print(f"amuro: config error: {err}", file=sys.stderr)
        return 2
    except NothingToReport as err:
        print(f"amuro: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
