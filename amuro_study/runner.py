"""Run one unit (in whatever process an executor chose) and run a whole study stage by stage.

:func:`execute_unit` is the only function executors call: it takes the unit's lock, skips it if
done, clears what a half-done attempt left, does the work, and writes the result atomically. A
failure -- of the work, or of the storage (a full disk, a read-only folder) -- is recorded as
``error.json`` where that can still be written, and returned, never raised, so the study goes
on with the other units; units whose dependency failed are reported as blocked.

While a unit runs, its ``log.txt`` receives the libraries' log records (lm-eval, transformers,
TRL, datasets, accelerate, amuro: INFO and above, through :mod:`logging` handlers), Python
warnings, and what they print; progress-bar redraws are left out. amuro's own warnings (and
any error record) are also kept on the unit's outcome, which the terminal shows.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amuro_sft.hub import checkpoint_id, resolve_revision, revision_step
from amuro_study.evaluate import evaluate_unit
from amuro_study.plan import EvalUnit, FinetuneUnit, Plan, PretrainUnit, Unit, recipe_identity
from amuro_study.records import ResultRecord
from amuro_study.store import ResultStore

if TYPE_CHECKING:
    from amuro_sft.recipe import SFTRecipe

DONE, SKIPPED, FAILED, BLOCKED = "done", "skipped", "failed", "blocked"
LOG = "log.txt"
VERBOSE_ENV = "AMURO_STUDY_VERBOSE"
"""Set to ``1`` to keep the libraries' output on the terminal instead of ``<unit>/log.txt``."""
LIBRARY_LOGGERS = ("lm_eval", "transformers", "datasets", "trl", "accelerate", "peft",
                   "huggingface_hub", "amuro", "amuro_sft", "amuro_study", "amuro_tasks")
"""Loggers whose INFO records go to a unit's ``log.txt`` (the rest: WARNING and above)."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_OUTCOME_WARNINGS = 5


class _LogLines(io.TextIOBase):
    """A unit's ``log.txt`` as a text stream of whole lines, without progress-bar redraws.

    tqdm (lm-eval's, datasets', transformers' bars) redraws a bar with carriage returns on a
    file that is not a terminal; a line holding one is a redraw and is dropped. ``fileno`` is
    the file's, so a subprocess writes to the log directly.
    """

    def __init__(self, fh: io.TextIOWrapper) -> None:
        super().__init__()
        self._fh = fh
        self._pending = ""

    def writable(self) -> bool:
        """Yes."""
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The file's (some libraries read ``sys.stdout.encoding``)."""
        return self._fh.encoding

    @property
    def buffer(self) -> Any:
        """The file's binary buffer (bytes written there go to the log unfiltered)."""
        return self._fh.buffer

    def write(self, text: str) -> int:
        """Write the complete lines of ``text`` (the rest waits for its newline)."""
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if "\r" not in line.removesuffix("\r"):
                self._fh.write(line.removesuffix("\r") + "\n")
        return len(text)

    def flush(self) -> None:
        """Flush the file."""
        self._fh.flush()

    def fileno(self) -> int:
        """The log file's descriptor."""
        return self._fh.fileno()

    def finish(self) -> None:
        """Write a last unterminated line (unless it is a redraw)."""
        if self._pending and "\r" not in self._pending:
            self._fh.write(self._pending + "\n")
        self._pending = ""
        self._fh.flush()


class _Matter(logging.Handler):
    """Keeps the records a person should see on the terminal: amuro's warnings, any error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` if it matters."""
        if record.name.startswith("amuro") or record.levelno >= logging.ERROR:
            line = f"{record.levelname.lower()}: {record.getMessage()}".splitlines()[0]
            if line not in self.seen:
                self.seen.append(line)


@contextlib.contextmanager
def _route_logging(stream: io.TextIOBase, matter: _Matter) -> Iterator[None]:
    """Send the libraries' log records and Python warnings to ``stream`` (and what matters to
    ``matter``) for the duration; every logger is put back as it was afterwards."""
    to_log = logging.StreamHandler(stream)
    to_log.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    saved = [(root, root.level, root.handlers[:], root.propagate)]
    root.handlers = [to_log, matter]
    root.setLevel(logging.WARNING)
    for name in (*LIBRARY_LOGGERS, "py.warnings"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.handlers[:], logger.propagate))
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.WARNING if name == "py.warnings" else logging.INFO)
    capturing = getattr(logging, "_warnings_showwarning", None) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(capturing)
            for logger, level, handlers, propagate in saved:
                logger.handlers = handlers
                logger.setLevel(level)
                logger.propagate = propagate


@contextlib.contextmanager
def unit_log(path: Path, matter: _Matter | None = None) -> Iterator[None]:
    """Send this process's log records, warnings, ``sys.stdout`` and ``sys.stderr`` to
    ``path`` while a unit runs (unless verbose); ``matter`` collects what the terminal shows."""
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    from amuro_sft.progress import library_progress_bars

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as fh:  # line by line: tail -f
        lines = _LogLines(fh)
        try:  # bars off where the library allows it (lm-eval's: dropped by _LogLines)
            with library_progress_bars(False), _route_logging(lines, matter or _Matter()), \
                    contextlib.redirect_stdout(lines), contextlib.redirect_stderr(lines):
                yield
        finally:
            lines.finish()


@dataclass(frozen=True)
class UnitOutcome:
    """What happened to one unit in this run."""

    uid: str
    status: str
    """``done`` (ran now), ``skipped`` (already done), ``failed`` or ``blocked``."""
    description: str
    wall_s: float = 0.0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    """amuro's warnings and any error records logged while the unit ran (all in log.txt)."""


def store_of(plan: Plan) -> ResultStore:
    """The result store of ``plan``'s output folder."""
    return ResultStore(plan.output_dir, plan.unit_folders)


def prepare_output(plan: Plan) -> None:
    """Create the study's ``units/`` folder and move the units of a folder made by an older
    amuro to their current folders (:meth:`ResultStore.adopt_old_folders`), saying so."""
    (plan.output_dir / "units").mkdir(parents=True, exist_ok=True)
    moved, removed = store_of(plan).adopt_old_folders()
    if moved or removed:
        logging.getLogger("amuro").warning(
            "%s was made by an older amuro (units/<id>/): moved %d finished units to "
            "units/<stage>/<name>/, removed %d unfinished ones (redone)", plan.output_dir,
            len(moved), len(removed))


# --------------------------------------------------------------------------- unit bodies
def _run_pretrain(plan: Plan, unit: PretrainUnit) -> dict[str, Any]:
    from amuro_study.pretrain_demo import pretrain_tiny

    unit_dir = plan.unit_dir(unit.uid)
    saved = pretrain_tiny(unit.spec, unit_dir, plan.config.data)
    for ckpt in saved:
        ckpt["commit"] = checkpoint_id(str(unit_dir / ckpt["path"]))
    return {"checkpoints": saved}


RECIPE_FILE = "recipe.yaml"
"""A fine-tune unit's recipe, as ``amuro-sft --config`` reads it."""


def finetune_recipe(plan: Plan, unit: FinetuneUnit) -> SFTRecipe:
    """The ``amuro_sft`` recipe of ``unit``: the study's (validated when the config was read)
    with this checkpoint, output folder and devices; its identity is the unit's."""
    pretrained, revision = plan.locate(unit.base)
    declared = plan.config.finetune.options
    recipe = plan.config.finetune.recipe(unit.task, unit.learning_rate).with_options(
        model_name_or_path=pretrained, model_revision=revision or "main",
        output_dir=str(plan.finetuned_model_dir(unit)),
        use_cpu=declared.get("use_cpu", plan.config.backend.device == "cpu"),
        disable_tqdm=declared.get("disable_tqdm", True),
    ).validate(processes=plan.config.backend.num_gpus)
    if recipe_identity(recipe) != dict(unit.recipe):  # declared once: never two versions
        raise RuntimeError(f"the recipe of {unit.uid} does not match the unit's identity")
    return recipe


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accelerate_command(processes: int, recipe_file: str | os.PathLike[str]) -> list[str]:
    """``accelerate launch -m amuro_sft.cli --config <recipe_file>`` on ``processes`` processes
    (one per GPU; a free rendezvous port, so that concurrent fine-tunes do not collide)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(processes), "--main_process_port", str(_free_port()),
            "-m", "amuro_sft.cli", "--config", str(recipe_file)]


def _fd_stream(stream: Any) -> Any:
    """``stream`` if it has a file descriptor (a subprocess can write to it), else ``None``."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return stream


def _run_finetune(plan: Plan, unit: FinetuneUnit) -> dict[str, Any]:
    from amuro_sft.recipe import write_recipe

    recipe = finetune_recipe(plan, unit)
    unit_dir = plan.unit_dir(unit.uid)
    recipe_file = write_recipe(recipe, unit_dir / RECIPE_FILE)
    gpus = plan.config.backend.num_gpus
    if gpus > 1:
        # Several GPUs: one process per GPU via `accelerate launch` (SFTTrainer refuses to use
        # several GPUs from one plain process). On a CPU-only machine the same launcher starts
        # `gpus` CPU processes (gloo), which is how the tests run this path.
        cmd = accelerate_command(gpus, recipe_file)
        proc = subprocess.run(cmd, check=False, stdout=_fd_stream(sys.stdout),
                              stderr=_fd_stream(sys.stderr))
        if proc.returncode:
            raise RuntimeError(f"amuro-sft --config {recipe_file} under accelerate launch "
                               f"exited with status {proc.returncode} (see {LOG})")
        out = recipe.output_dir
    else:
        from amuro_sft.train import run_sft

        out = Path(run_sft(recipe))
    if not (out / "amuro_run.json").is_file():
        raise RuntimeError(f"fine-tune finished without its marker {out / 'amuro_run.json'}")
    pretrained, revision = plan.locate(unit.base)
    return {"model_dir": os.path.relpath(out, unit_dir),
            "base_commit": checkpoint_id(pretrained, revision), "recipe": recipe.to_options()}


def eval_location(plan: Plan, unit: EvalUnit) -> tuple[str, str | None]:
    """``(pretrained, revision)`` of the model ``unit`` scores (base or fine-tuned)."""
    if unit.finetune is None:
        return plan.locate(unit.checkpoint)
    result = store_of(plan).read_result(unit.finetune.uid)
    return str((plan.unit_dir(unit.finetune.uid) / result["model_dir"]).resolve()), None


def _run_eval(plan: Plan, unit: EvalUnit) -> dict[str, Any]:
    pretrained, revision = eval_location(plan, unit)
    base_path, base_revision = plan.locate(unit.checkpoint)
    commit = checkpoint_id(base_path, base_revision)
    if unit.finetune is None and revision is not None and commit is None \
            and revision == f"step{revision_step(revision)}":
        # a bare step (step18000) names no branch: lm-eval must load the branch it resolves to
        commit = resolve_revision(base_path, base_revision).commit_sha
    if unit.finetune is None and commit is not None and not Path(pretrained).is_dir():
        revision = commit  # load what is recorded
    records, provenance = evaluate_unit(unit, pretrained, revision, plan.unit_dir(unit.uid),
                                        plan.config.backend, commit=commit)
    return {"records": [r.to_dict() for r in records], "lm_eval": provenance,
            "model_path": pretrained}


_BODIES: dict[str, Callable[[Plan, Any], dict[str, Any]]] = {
    "pretrain": _run_pretrain, "finetune": _run_finetune, "eval": _run_eval,
}
_KEEP_ON_REDO = {"finetune": ("model",)}
"""Partial files a redo keeps: ``amuro_sft`` resumes a fine-tune from its own checkpoints."""


def execute_unit(plan: Plan, uid: str) -> UnitOutcome:
    """Run unit ``uid`` of ``plan`` unless done; record its result or its error.

    Safe to call from several processes and after any crash: the unit lock serialises
    concurrent callers, the result is written last and atomically. Never raises for a failure
    of the unit or of its storage (full disk, read-only folder): the outcome says what failed.
    """
    unit = plan.units()[uid]
    store = store_of(plan)
    start = time.perf_counter()
    matter = _Matter()
    try:
        with store.claim(uid):
            if store.is_done(uid):
                return UnitOutcome(uid, SKIPPED, unit.describe())
            missing = [d for d in unit.deps if not store.is_done(d)]
            if missing:
                return UnitOutcome(uid, BLOCKED, unit.describe(),
                                   error=f"dependency not done: {', '.join(missing)}")
            try:
                store.clear_partial(uid, keep=_KEEP_ON_REDO.get(unit.kind, ()))
                store.write_identity(uid, unit.identity())
                with cpu_threads(plan.config.backend.cpu_threads), \
                        unit_log(plan.unit_dir(uid) / LOG, matter):
                    payload = _BODIES[unit.kind](plan, unit)
                wall = time.perf_counter() - start
                store.write_result(uid, {
                    "uid": uid, "kind": unit.kind, "identity": unit.identity(), "wall_s": wall,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **payload,
                })
            except (Exception, SystemExit) as err:  # recorded (a library's sys.exit too), go on
                note = store.try_write_error(uid, err, unit.describe())
                return UnitOutcome(uid, FAILED, unit.describe(), time.perf_counter() - start,
                                   f"{type(err).__name__}: {err}{note}", _noted(matter))
            return UnitOutcome(uid, DONE, unit.describe(), wall, warnings=_noted(matter))
    except OSError as err:  # its folder or lock cannot even be made: nothing can be recorded
        return UnitOutcome(uid, FAILED, unit.describe(), time.perf_counter() - start,
                           f"{type(err).__name__}: {err} (the unit's folder "
                           f"{plan.unit_dir(uid)} is not writable; nothing recorded)")


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """``backend.cpu_threads`` for torch in this process and for the processes it starts, for
    the duration (then as before)."""
    if threads is None:
        yield
        return
    import torch

    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


def _noted(matter: _Matter) -> tuple[str, ...]:
    seen = matter.seen
    if len(seen) <= MAX_OUTCOME_WARNINGS:
        return tuple(seen)
    return (*seen[:MAX_OUTCOME_WARNINGS], f"... {len(seen) - MAX_OUTCOME_WARNINGS} more in {LOG}")


# --------------------------------------------------------------------------- a whole study
class Executor(Protocol):
    """Runs units; calls ``on_done`` with each outcome as it arrives."""

    def map(self, plan: Plan, uids: list[str],
            on_done: Callable[[UnitOutcome], None]) -> list[UnitOutcome]: ...


class Progress(Protocol):
    """Progress display: one bar per stage."""

    def start_stage(self, stage: str, total: int, completed: int) -> None: ...

    def advance(self, stage: str, outcome: UnitOutcome) -> None: ...

    def end_stage(self, stage: str) -> None: ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def start_stage(self, stage: str, total: int, completed: int) -> None:
        """Nothing."""

    def advance(self, stage: str, outcome: UnitOutcome) -> None:
        """Nothing."""

    def end_stage(self, stage: str) -> None:
        """Nothing."""


@dataclass
class StudySummary:
    """Outcomes of one ``run_study`` call."""

    outcomes: list[UnitOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What the run could not record (e.g. its summary, on a full disk)."""

    def by_status(self, status: str) -> list[UnitOutcome]:
        """Outcomes with ``status``."""
        return [o for o in self.outcomes if o.status == status]

    @property
    def ok(self) -> bool:
        """No unit failed or was blocked."""
        return not self.by_status(FAILED) and not self.by_status(BLOCKED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"outcomes": [asdict(o) for o in self.outcomes],
                "counts": {s: len(self.by_status(s)) for s in (DONE, SKIPPED, FAILED, BLOCKED)}}


def run_study(plan: Plan, executor: Executor, progress: Progress | None = None) -> StudySummary:
    """Run every stage of ``plan`` in order; skip done units, record failures, go on."""
    progress = progress or NoProgress()
    store = store_of(plan)
    summary = StudySummary()
    prepare_output(plan)
    for stage, units in plan.stages():
        done = [u for u in units if store.is_done(u.uid)]
        summary.outcomes += [UnitOutcome(u.uid, SKIPPED, u.describe()) for u in done]
        todo: list[Unit] = []
        for unit in units:
            if store.is_done(unit.uid):
                continue
            missing = [d for d in unit.deps if not store.is_done(d)]
            if missing:
                summary.outcomes.append(UnitOutcome(
                    unit.uid, BLOCKED, unit.describe(),
                    error=f"dependency not done: {', '.join(missing)}"))
            else:
                todo.append(unit)
        progress.start_stage(stage, total=len(units), completed=len(done))

        def on_done(outcome: UnitOutcome, stage: str = stage) -> None:
            progress.advance(stage, outcome)

        summary.outcomes += executor.map(plan, [u.uid for u in todo], on_done)
        progress.end_stage(stage)
    return summary


def collect_records(plan: Plan, uids: Iterable[str] | None = None) -> list[ResultRecord]:
    """Result records of the plan's finished evaluation units; ``samples_path`` made absolute."""
    store = store_of(plan)
    wanted = list(uids) if uids is not None else [
        u.uid for u in (*plan.base_evals, *plan.finetuned_evals)]
    records = []
    for uid in wanted:
        if not store.is_done(uid):
            continue
        for row in store.read_result(uid).get("records", []):
            if row.get("samples_path"):
                row = {**row, "samples_path": str(plan.unit_dir(uid) / row["samples_path"])}
            records.append(ResultRecord.from_dict(row))
    return records


def stage_durations(plan: Plan) -> dict[str, list[float]]:
    """Measured seconds of finished units, by stage (for the plan's time estimate)."""
    store = store_of(plan)
    out: dict[str, list[float]] = {}
    for stage, units in plan.stages():
        for unit in units:
            if store.is_done(unit.uid):
                wall = store.read_result(unit.uid).get("wall_s")
                if isinstance(wall, (int, float)):
                    out.setdefault(stage, []).append(float(wall))
    return out
