"""Fault injection: full disks, failing writes, read-only folders and SIGKILLs at every write
point of a study's units.

After each fault: the run returns (nothing raised), the unit that met the fault is failed and
the others go on; no torn file is trusted (every result that exists is whole, and so is every
file it points at); no temp file is left; and a rerun with the fault gone gives exactly the
results of an uninterrupted run.

How faults are made:

* **Real full disk.** The study's output folder is a small tmpfs (``mount -t tmpfs``, as root).
  A process-wide audit hook (:func:`sys.addaudithook`, event ``open``) watches the files the
  study opens for writing; when a named one is opened it fills the tmpfs right then (leaving
  ``slack`` bytes), so the write that follows -- in amuro, lm-eval, transformers, safetensors'
  Rust writer or torch -- meets a real ``ENOSPC`` and leaves a real torn file. ``fill`` keeps
  the disk full to the end of the run; ``fill_once`` frees it at the next write-open of another
  file (someone else freed space).
* **Read-only folders**: a read-only bind mount over a folder (as root, permission bits would
  not stop a write).
* **Deterministic**: where mounting is not permitted the tmpfs and read-only cases skip, saying
  why, and the runner cases make the named file's open raise ``OSError(ENOSPC)`` instead.
* **SIGKILL**: ``amuro study run`` in a subprocess, killed at seeded random moments, then rerun.

Runner faults use stand-in unit bodies (fast); faults in lm-eval's and amuro-sft's output use a
real tiny study (pre-training, fine-tuning, evaluation), run once cleanly as the reference and
copied for each fault with the unit under test left to do. Each fault that fires is counted;
:func:`test_the_fault_count_in_the_docs_is_the_measured_one` checks ``docs/study.md``.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from amuro_sft.atomic import is_temp_file
from amuro_study import cli, runner
from amuro_study.config import parse_config
from amuro_study.executors import LocalExecutor
from amuro_study.plan import EvalUnit, FinetuneUnit, Plan, build_plan
from amuro_study.runner import BLOCKED, DONE, FAILED, run_study, store_of

DOCS = Path(__file__).resolve().parents[1] / "docs" / "study.md"
TALLY: dict[str, dict[str, int]] = {}
"""kind of fault -> {"injected": n, "survived": n}, as measured by this module."""
CASES_RUN: set[str] = set()


def _count(kind: str, what: str) -> None:
    TALLY.setdefault(kind, {"injected": 0, "survived": 0})[what] += 1


# ============================================================================ the machinery
def _for_writing(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(
        flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))


def fill(mount: Path, slack: int = 0) -> None:
    """Fill the file system at ``mount`` (a real ENOSPC for the next write), leaving about
    ``slack`` bytes free."""
    fd = os.open(mount / ".filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) == 0:
                        break
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
        if slack:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - slack))
    finally:
        os.close(fd)


def release(mount: Path) -> None:
    """Free what :func:`fill` took."""
    (mount / ".filler").unlink(missing_ok=True)


@dataclass
class Fault:
    """One fault at one write point: when ``pattern`` (fnmatch on the absolute path) is opened
    for writing the ``nth`` time, ``action`` happens: ``fill``/``fill_once`` (a real full disk
    at ``mount``, ``slack`` bytes left) or ``raise`` (that open fails with ENOSPC)."""

    name: str
    pattern: str
    action: str
    kind: str
    mount: Path | None = None
    nth: int = 1
    slack: int = 0
    seen: int = 0
    fired: bool = False
    full: bool = False

    def on_open(self, path: str) -> None:
        if self.full and self.action == "fill_once" and not fnmatch.fnmatch(path, self.pattern):
            self.release()
        if self.fired or not fnmatch.fnmatch(path, self.pattern):
            return
        self.seen += 1
        if self.seen < self.nth:
            return
        self.fired = True
        _count(self.kind, "injected")
        if self.action == "raise":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        assert self.mount is not None
        fill(self.mount, self.slack)
        self.full = True

    def release(self) -> None:
        if self.full and self.mount is not None:
            release(self.mount)
        self.full = False


class Injector:
    """The audit hook (installed once per process; idle unless a fault is armed)."""

    installed = False
    faults: list[Fault] = []
    busy = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not cls.faults or cls.busy:
            return
        path, mode, flags = args
        if isinstance(path, int) or not _for_writing(mode, flags):
            return
        cls.busy = True
        try:
            name = os.path.abspath(os.fsdecode(path))
            for fault in list(cls.faults):
                fault.on_open(name)
        finally:
            cls.busy = False


@contextlib.contextmanager
def armed(fault: Fault) -> Iterator[Fault]:
    """``fault`` is armed for the block; the disk is given back at its end."""
    if not Injector.installed:
        sys.addaudithook(Injector.hook)
        Injector.installed = True
    Injector.faults = [fault]
    try:
        yield fault
    finally:
        Injector.faults = []
        fault.release()


def _mount(*args: str) -> str:
    """Run ``mount``; ``""`` or why it failed."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """A 96 MB tmpfs for the study's output (a real full disk); ``None`` where mounting is not
    permitted (the reason is printed)."""
    where = tmp_path_factory.mktemp("tmpfs")
    why = ("AMURO_FAULTS_NO_MOUNT=1" if os.environ.get("AMURO_FAULTS_NO_MOUNT") == "1"
           else _mount("-t", "tmpfs", "-o", "size=96m", "tmpfs", str(where)))
    if why:
        print(f"\nfault injection without a tmpfs (mount failed: {why}): the real full-disk and "
              "read-only cases skip, runner cases use deterministic ENOSPC", file=sys.stderr)
        yield None
        return
    try:
        yield where
    finally:
        _umount(where)


def need(tmpfs: Path | None) -> Path:
    """The tmpfs, or a skip."""
    if tmpfs is None:
        pytest.skip("mount -t tmpfs is not permitted here (a real full disk needs it)")
    return tmpfs


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only (a read-only bind mount over it) for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    why = ("AMURO_FAULTS_NO_MOUNT=1" if os.environ.get("AMURO_FAULTS_NO_MOUNT") == "1"
           else _mount("--bind", str(folder), str(folder)))
    if not why:
        why = _mount("-o", "remount,bind,ro", str(folder))
        if why:
            _umount(folder)
    if why:
        pytest.skip(f"a read-only bind mount is not permitted here: {why}")
    try:
        yield
    finally:
        _umount(folder)


# ============================================================================ checks
def temp_files(root: Path) -> list[Path]:
    """amuro's temp files and the demo pre-training's temp checkpoint folders under ``root``."""
    return [p for p in root.rglob("*")
            if is_temp_file(p) or (p.name.startswith(".step_") and p.name.endswith(".tmp"))]


def check_nothing_torn_is_trusted(plan: Plan) -> None:
    """Every result that exists is whole JSON, and so is every file it points at."""
    store = store_of(plan)
    for uid, unit in plan.units().items():
        if not store.is_done(uid):
            continue
        result = store.read_result(uid)  # raises if torn
        folder = plan.unit_dir(uid)
        if isinstance(unit, EvalUnit):
            for rec in result["records"]:
                if rec.get("samples_path") and not rec["samples_path"].startswith("/fake"):
                    lines = (folder / rec["samples_path"]).read_text().splitlines()
                    assert lines and all(json.loads(line) for line in lines)
        if isinstance(unit, FinetuneUnit) and not result.get("fake"):
            json.loads((folder / result["model_dir"] / "amuro_run.json").read_text())


def fingerprint(plan: Plan) -> dict[str, Any]:
    """What must be identical between an uninterrupted run and a faulted one + rerun: every
    unit's result (no timings, no file names with dates) and what it made."""
    store = store_of(plan)
    out: dict[str, Any] = {}
    for uid, unit in plan.units().items():
        if not store.is_done(uid):
            out[uid] = None
            continue
        result = store.read_result(uid)
        keep: dict[str, Any] = {}
        if "records" in result:
            keep["records"] = [{k: v for k, v in r.items() if k != "samples_path"}
                               for r in result["records"]]
        if "checkpoints" in result:
            keep["checkpoints"] = [{k: c[k] for k in ("step", "commit", "train_loss")}
                                   for c in result["checkpoints"]]
        if isinstance(unit, FinetuneUnit) and not result.get("fake"):
            model = plan.unit_dir(uid) / result["model_dir"]
            run = json.loads((model / "amuro_run.json").read_text())
            # the weights (checkpoint_id would also hash training_args.bin, which holds paths)
            keep["model"] = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
            keep["steps"] = run["global_steps"]
            keep["losses"] = [e.get("loss") for e in run["losses"]["log_history"]]
            keep["mean_train_loss"] = run["losses"]["mean_train_loss"]  # over the whole run
        if result.get("fake"):
            keep["fake"] = result["fake"]
        out[uid] = keep
    return out


# ============================================================================ runner faults
FAKE = {
    "model": "allenai/OLMo-1B-hf",
    "revisions": ["step1000-tokens4B", "step2000-tokens8B"],
    "data": "fixtures",
    "finetune": {"tasks": ["mnli", "xsum"]},
    "eval": {"sets": ["mnli_matched", "rte"], "shots": [4]},
}


class FakeBodies:
    """Stand-in unit bodies: print and log like a library (into log.txt), return records."""

    fail: set[str] = set()

    def finetune(self, plan: Plan, unit: FinetuneUnit) -> dict[str, Any]:
        import logging

        print(f"training {unit.task}", flush=True)
        logging.getLogger("transformers.trainer").info("***** Running training *****")
        if unit.task in self.fail:
            raise RuntimeError(f"loss exploded on {unit.task}")
        return {"model_dir": "model", "fake": f"{unit.base.revision}+{unit.task}"}

    def evaluate(self, plan: Plan, unit: EvalUnit) -> dict[str, Any]:
        import logging

        print("Running loglikelihood requests", flush=True)
        logging.getLogger("lm_eval.evaluator").info("evaluating")
        value = 0.5 if unit.finetune is None else 0.75
        records = [{"model": unit.checkpoint.model, "revision": unit.checkpoint.revision,
                    "step": unit.checkpoint.step, "eval_set": t.eval_set, "format": t.format,
                    "shots": unit.shots, "metric": "acc", "value": value,
                    "finetune": unit.finetune.task if unit.finetune else None,
                    "learning_rate": unit.finetune.learning_rate if unit.finetune else None}
                   for t in unit.tasks]
        return {"records": records}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBodies:
    monkeypatch.setattr("amuro_study.cli.quiet_libraries", lambda: None)
    bodies = FakeBodies()
    bodies.fail = set()
    monkeypatch.setitem(runner._BODIES, "finetune", bodies.finetune)
    monkeypatch.setitem(runner._BODIES, "eval", bodies.evaluate)
    return bodies


def fake_plan(root: Path) -> Plan:
    return build_plan(parse_config({**FAKE, "output_dir": str(root)}))


@pytest.fixture(scope="module")
def fake_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stand-in study run without faults."""
    with pytest.MonkeyPatch.context() as mp:
        bodies = FakeBodies()
        bodies.fail = set()
        mp.setitem(runner._BODIES, "finetune", bodies.finetune)
        mp.setitem(runner._BODIES, "eval", bodies.evaluate)
        plan = fake_plan(tmp_path_factory.mktemp("fake-reference") / "study")
        assert run_study(plan, LocalExecutor()).ok
        return fingerprint(plan)


@dataclass(frozen=True)
class RunnerCase:
    """A fault at one of the runner's write points (stand-in unit bodies)."""

    name: str
    pattern: str
    """fnmatch pattern under the study folder."""
    failed: str | None
    """fnmatch pattern of the folder of the unit that must fail (None: no unit fails)."""
    nth: int = 1
    failing_body: str | None = None
    report: bool = False


RUNNER_CASES = [
    RunnerCase("unit identity (unit.json)", "units/finetune/step1000*mnli*/.unit.json.*.tmp",
               "finetune/step1000*mnli*"),
    RunnerCase("unit log (log.txt)", "units/base-eval/step2000*/log.txt", "base-eval/step2000*"),
    RunnerCase("result record (result.json)", "units/finetuned-eval/step1000*xsum*/"
               ".result.json.*.tmp", "finetuned-eval/step1000*xsum*"),
    RunnerCase("error record of a failing unit (error.json)",
               "units/finetune/step2000*xsum*/.error.json.*.tmp", "finetune/step2000*xsum*",
               failing_body="xsum"),
    RunnerCase("run summary, at the start (history/)", "history/.run-*.json.*.tmp", None),
    RunnerCase("run summary, at the end (history/)", "history/.run-*.json.*.tmp", None, nth=2),
    RunnerCase("report (report.md)", "report/.report.md.*.tmp", None, report=True),
]


@pytest.mark.parametrize("case", RUNNER_CASES, ids=[c.name for c in RUNNER_CASES])
def test_a_failing_write_in_the_runner_fails_one_unit_and_the_rerun_completes(
        case: RunnerCase, fake: FakeBodies, fake_reference: dict[str, Any], tmpfs: Path | None,
        tmp_path: Path) -> None:
    """One write of the runner meets ENOSPC (a real full disk that someone frees right after,
    or a failing open where no tmpfs can be mounted): that unit is failed and recorded, the
    study goes on and writes its summary; the rerun completes with the reference results."""
    root = (tmpfs / f"runner-{uuid.uuid4().hex[:8]}") if tmpfs else tmp_path
    plan = fake_plan(root / "study")
    fake.fail = {case.failing_body} if case.failing_body else set()
    action = "fill_once" if tmpfs else "raise"
    fault = Fault(case.name, str(plan.output_dir / case.pattern), action,
                  "full disk (tmpfs)" if tmpfs else "failing write", mount=tmpfs, nth=case.nth)
    with armed(fault):
        summary, report = cli.run(plan, report=case.report, show_progress=False)
    assert fault.fired, f"the fault at {case.pattern} never fired"
    failed = {o.uid for o in summary.by_status(FAILED) if o.uid != "report"}
    faulted = {uid for uid in plan.units()
               if case.failed and fnmatch.fnmatch(plan.unit_folders[uid], case.failed)}
    also = {u.uid for u in plan.finetunes if u.task == case.failing_body} - faulted
    assert failed == faulted | also, summary.to_dict()
    for uid in faulted:  # recorded where the disk allows it, in the outcome in any case
        outcome = next(o for o in summary.outcomes if o.uid == uid)
        error = store_of(plan).read_error(uid)
        if case.failing_body:
            assert "loss exploded" in outcome.error and "error.json not written" in outcome.error
            assert error is None
        else:
            assert "No space left on device" in outcome.error
            assert error is not None and "No space left on device" in error["error"]
    for uid in also:  # the other failure of the same body, recorded as usual
        assert "loss exploded" in store_of(plan).read_error(uid)["error"]
    blocked = {o.uid for o in summary.by_status(BLOCKED)}
    assert blocked == {u for u in plan.units() if set(plan.units()[u].deps) & failed}
    done = {o.uid for o in summary.by_status(DONE)}
    assert done == set(plan.units()) - failed - blocked  # the study went on
    if case.report:
        assert report is None and [o.uid for o in summary.by_status(FAILED)] == ["report"]
        assert "No space left on device" in summary.by_status(FAILED)[0].error
    history = sorted((plan.output_dir / "history").glob("run-*.json"))
    if case.nth == 2 and "history" in case.pattern:
        assert summary.problems and "could not write the run summary" in summary.problems[0]
        assert json.loads(history[0].read_text())["status"] == "running"  # the start's record
    else:
        record = json.loads(history[0].read_text())
        assert record["status"] == "finished"
        assert record["counts"]["failed"] == len(failed) + (1 if case.report else 0)
    check_nothing_torn_is_trusted(plan)
    assert temp_files(plan.output_dir) == []

    fake.fail = set()
    again, report = cli.run(plan, report=case.report, show_progress=False)
    assert again.ok and not again.problems, again.to_dict()
    assert fingerprint(plan) == fake_reference
    assert len(list((plan.output_dir / "history").glob("run-*.json"))) == 2  # a history
    if case.report:
        assert report is not None and report.is_file()
    _count(fault.kind, "survived")
    CASES_RUN.add(f"runner:{case.name}")


def test_a_read_only_unit_folder_fails_that_unit_only(fake: FakeBodies, tmpfs: Path | None,
                                                     fake_reference: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """A unit's folder is read-only (its lock cannot even be created): that unit fails with
    the reason on its outcome, its dependents are blocked, the rest is done and summarised."""
    plan = fake_plan(tmp_path / "study")
    target = next(u.uid for u in plan.finetunes if u.task == "mnli")
    _count("read-only folder", "injected")
    with read_only(plan.unit_dir(target)):
        summary, _ = cli.run(plan, report=False, show_progress=False)
    failed = summary.by_status(FAILED)
    assert [o.uid for o in failed] == [target]
    assert "Read-only file system" in failed[0].error and "nothing recorded" in failed[0].error
    assert [o.uid for o in summary.by_status(BLOCKED)] == [
        u.uid for u in plan.finetuned_evals if u.finetune.uid == target]
    assert len(summary.by_status(DONE)) == len(plan.units()) - 2
    assert json.loads(next((plan.output_dir / "history").glob("*.json")).read_text())[
        "counts"]["failed"] == 1
    again, _ = cli.run(plan, report=False, show_progress=False)
    assert again.ok and fingerprint(plan) == fake_reference
    _count("read-only folder", "survived")
    CASES_RUN.add("runner:read-only unit folder")


def test_a_read_only_report_folder_fails_the_report_not_the_run(
        fake: FakeBodies, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = fake_plan(tmp_path / "study")
    _count("read-only folder", "injected")
    with read_only(plan.report_dir()):
        summary, report = cli.run(plan, report=True, show_progress=False)
    assert report is None and len(summary.by_status(DONE)) == len(plan.units())
    assert [o.uid for o in summary.by_status(FAILED)] == ["report"]
    assert "Read-only file system" in summary.by_status(FAILED)[0].error
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({**FAKE, "output_dir": str(plan.output_dir)}))
    with read_only(plan.report_dir()):  # `amuro study report`: an error, not a traceback
        assert cli.main(["study", "report", str(config)]) == 1
    assert (f"amuro: error: cannot write the report to {plan.report_dir()}: Read-only file "
            "system") in capsys.readouterr().err
    again, report = cli.run(plan, report=True, show_progress=False)
    assert again.ok and report is not None and report.is_file()
    _count("read-only folder", "survived")
    CASES_RUN.add("runner:read-only report folder")


def test_a_read_only_output_folder_is_refused_before_anything_runs(
        fake: FakeBodies, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`amuro study run` into a read-only folder: a config error naming output_dir, exit 2."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({**FAKE, "output_dir": str(tmp_path / "out" / "study")}))
    _count("read-only folder", "injected")
    with read_only(tmp_path / "out"):
        assert cli.main(["study", "run", str(config)]) == 2
    assert (f"config error: output_dir: cannot write to {tmp_path / 'out' / 'study'}: "
            "Read-only file system") in capsys.readouterr().err
    assert cli.main(["study", "run", str(config), "--no-report"]) == 0
    _count("read-only folder", "survived")
    CASES_RUN.add("runner:read-only output folder")


def test_a_full_disk_from_the_start_fails_every_unit_and_the_run_still_ends(
        fake: FakeBodies, tmpfs: Path | None, fake_reference: dict[str, Any],
        capsys: pytest.CaptureFixture) -> None:
    """`amuro study run` on a disk that is full before it starts and stays full: every unit
    fails (or is blocked), the run prints its summary, says what it could not write, exits 1;
    once space is back the rerun completes."""
    mount = need(tmpfs)
    folder = mount / f"full-{uuid.uuid4().hex[:8]}"
    config = folder / "study.yaml"
    folder.mkdir()
    config.write_text(yaml.safe_dump({**FAKE, "output_dir": str(folder / "study")}))
    fill(mount)
    _count("full disk (tmpfs)", "injected")
    try:
        status = cli.main(["study", "run", str(config), "--no-report"])
    finally:
        release(mount)
    out = capsys.readouterr().out
    assert status == 1
    plan = fake_plan(folder / "study")
    assert "0 run now" in out and "No space left on device" in out
    assert "could not write the run summary" in out
    assert temp_files(folder) == []
    assert cli.main(["study", "run", str(config), "--no-report"]) == 0
    assert fingerprint(plan) == fake_reference
    _count("full disk (tmpfs)", "survived")
    CASES_RUN.add("runner:full disk from the start")


# ============================================================================ real units
REAL = {
    "name": "faults", "data": "fixtures", "offline": True,
    "pretrain": {"save_steps": [2, 4], "hidden_size": 32, "block_size": 64, "batch_size": 8,
                 "learning_rate": 0.003, "seed": 0},
    "finetune": {"tasks": ["mnli"], "learning_rates": [0.001], "num_train_examples": 16,
                 "max_steps": 2, "save_steps": 1, "max_length": 256},
    "eval": {"sets": ["rte", "xsum"], "shots": [2], "limit": 2},
    "backend": {"dtype": "float32", "cpu_threads": 1},
}


def real_plan(root: Path) -> Plan:
    return build_plan(parse_config({**REAL, "output_dir": str(root)}))


@pytest.fixture(scope="module")
def real_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The tiny real study, run once without faults: its folder and its results."""
    plan = real_plan(tmp_path_factory.mktemp("real-reference") / "study")
    summary = run_study(plan, LocalExecutor())
    assert summary.ok, [o.error for o in summary.outcomes if o.error]
    return plan.output_dir, fingerprint(plan)


@dataclass(frozen=True)
class UnitCase:
    """A real full disk at a write point inside one real unit."""

    name: str
    unit: str
    """fnmatch pattern of the unit's folder (the one redone)."""
    pattern: str
    """fnmatch pattern, under the unit's folder, of the file whose opening fills the disk."""
    slack: int = 0
    """Bytes left free: small files before the target still fit (a config.json, say)."""
    resumes_from: str | None = None
    """A fine-tune's rerun resumes from this checkpoint (the last whole one)."""


UNIT_CASES = [
    UnitCase("demo pre-training checkpoint (weights)", "pretrain/*", ".step_4.tmp/config.json",
             slack=8192),
    UnitCase("fine-tune recipe (recipe.yaml)", "finetune/step4_*", ".recipe.yaml.*.tmp"),
    UnitCase("amuro-sft run identity (amuro_run_args.json)", "finetune/step4_*",
             "model/.amuro_run_args.json.*.tmp"),
    UnitCase("training checkpoint (weights)", "finetune/step4_*",
             "model/checkpoints/checkpoint-1/config.json", slack=8192),
    UnitCase("training checkpoint (trainer_state.json)", "finetune/step2_*",
             "model/checkpoints/checkpoint-2/trainer_state.json", resumes_from="checkpoint-1"),
    UnitCase("fine-tuned model (weights)", "finetune/step2_*", "model/config.json", slack=8192,
             resumes_from="checkpoint-2"),
    UnitCase("amuro-sft run record (amuro_run.json)", "finetune/step2_*",
             "model/.amuro_run.json.*.tmp"),
    UnitCase("lm-eval results (results_*.json)", "base-eval/step4_*", "lm_eval/results_*.json"),
    UnitCase("lm-eval samples (samples_*.jsonl)", "finetuned-eval/step2_*",
             "lm_eval/samples_amuro_xsum_*.jsonl"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", UNIT_CASES, ids=[c.name for c in UNIT_CASES])
def test_a_full_disk_inside_a_real_unit(case: UnitCase, tmpfs: Path | None,
                                        real_reference: tuple[Path, dict[str, Any]]) -> None:
    """The disk fills up (for real) as a unit opens the named file, and stays full: the unit
    fails, nothing torn is trusted, no temp file is left; with space back the rerun gives the
    uninterrupted run's results (a fine-tune resumes from its last *whole* checkpoint)."""
    mount = need(tmpfs)
    reference_dir, reference = real_reference
    root = mount / f"unit-{uuid.uuid4().hex[:8]}"
    shutil.copytree(reference_dir, root / "study")
    plan = real_plan(root / "study")
    (target,) = [uid for uid, f in plan.unit_folders.items() if fnmatch.fnmatch(f, case.unit)]
    shutil.rmtree(plan.unit_dir(target))  # to do again, under the fault
    fault = Fault(case.name, str(plan.unit_dir(target) / case.pattern), "fill",
                  "full disk (tmpfs)", mount=mount, slack=case.slack)
    try:
        with armed(fault):
            summary, _ = cli.run(plan, report=False, show_progress=False)
        assert fault.fired, f"the fault at {case.pattern} never fired"
        failed = summary.by_status(FAILED)
        assert [o.uid for o in failed] == [target], summary.to_dict()
        print(f"\n{case.name}: {failed[0].error[:300]}")
        assert "No space left on device" in failed[0].error or "ENOSPC" in failed[0].error \
            or "lm-eval did not write" in failed[0].error, failed[0].error
        assert not store_of(plan).is_done(target)
        check_nothing_torn_is_trusted(plan)
        assert temp_files(plan.output_dir) == []

        again, _ = cli.run(plan, report=False, show_progress=False)
        assert again.ok, [o.error for o in again.outcomes if o.error]
        if case.resumes_from:
            run = json.loads((plan.finetuned_model_dir(plan.units()[target])
                              / "amuro_run.json").read_text())
            assert Path(run["resumed_from"]).name == case.resumes_from
        assert fingerprint(plan) == reference
        _count(fault.kind, "survived")
        CASES_RUN.add(f"unit:{case.name}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ============================================================================ SIGKILL
KILLS = 3


def _results(plan: Plan) -> int:
    return sum(1 for _ in (plan.output_dir / "units").rglob("result.json"))


def _working(plan: Plan) -> bool:
    return any((plan.output_dir / "units").rglob("log.txt"))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(real_reference: tuple[Path, dict[str, Any]],
                                              tmp_path: Path) -> None:
    """`amuro study run` killed with SIGKILL at seeded random moments (inside a random unit:
    once that many units are done, after a random delay), restarted each time, then run to the
    end: one result per unit, no temp file, the uninterrupted run's results."""
    _, reference = real_reference
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({**REAL, "output_dir": str(tmp_path / "study")}))
    command = [sys.executable, "-m", "amuro_study.cli", "study", "run", str(config),
               "--no-report"]
    plan = real_plan(tmp_path / "study")
    rng = random.Random(2024)
    targets = sorted(rng.sample(range(len(plan.units()) - 1), KILLS))
    killed = []
    for target in targets:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd=tmp_path)
        try:
            while proc.poll() is None and not (_working(plan) and _results(plan) >= target):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.8))
            if proc.poll() is None:
                done = _results(plan)
                os.kill(proc.pid, signal.SIGKILL)
                _count("SIGKILL", "injected")
                killed.append(done)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert len(killed) == KILLS, f"the run ended before it could be killed ({killed})"
    print(f"\nkilled with {killed} of {len(plan.units())} units done")
    final = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert "fatal:" not in final.stdout + final.stderr  # no git complaint outside a checkout
    per_unit: dict[str, int] = {}
    for path in (plan.output_dir / "units").rglob("result.json"):
        uid = json.loads(path.read_text())["uid"]
        per_unit[uid] = per_unit.get(uid, 0) + 1
    assert per_unit == {uid: 1 for uid in plan.units()}
    assert temp_files(plan.output_dir) == []
    assert fingerprint(plan) == reference
    for _ in killed:
        _count("SIGKILL", "survived")
    CASES_RUN.add("sigkill")


# ============================================================================ the count
ALL_CASES = ({f"runner:{c.name}" for c in RUNNER_CASES}
             | {"runner:read-only unit folder", "runner:read-only report folder",
                "runner:read-only output folder", "runner:full disk from the start"}
             | {f"unit:{c.name}" for c in UNIT_CASES} | {"sigkill"})


def tally_line() -> str:
    """The sentence docs/study.md must hold, from the measured counts."""
    injected = sum(v["injected"] for v in TALLY.values())
    survived = sum(v["survived"] for v in TALLY.values())
    kinds = ", ".join(f"{k}: {v['injected']}" for k, v in sorted(TALLY.items()))
    return f"Faults injected: {injected} ({kinds}); survived: {survived}."


def test_the_fault_count_in_the_docs_is_the_measured_one() -> None:
    """docs/study.md states the counts this module measured (run as root, mounts allowed)."""
    if CASES_RUN != ALL_CASES:
        pytest.skip(f"not every fault case ran here ({len(CASES_RUN)} of {len(ALL_CASES)})")
    line = tally_line()
    print(f"\n{line}")
    assert line in DOCS.read_text(), f"docs/study.md should say: {line}"

