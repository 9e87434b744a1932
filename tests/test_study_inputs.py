"""The study's bad inputs get clear errors; its outputs are what users can open.

Bad inputs (what, where, exit 2 for a config or command-line error, nothing run): a local model
path that does not exist, an output folder that is a file, ``--workers`` below 1, a report with
no results. Outputs: unit folders a person can read (stage, checkpoint, fine-tune, shots, and the
hash), folders of an older amuro moved to them, a run history, file modes from the umask, and a
unit's ``log.txt`` holding the libraries' log lines and warnings without progress-bar redraws.
Stand-in unit bodies (no model is trained); the real ones are in test_study_e2e / test_faults.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from amuro_study import runner
from amuro_study.cli import main
from amuro_study.config import StudyConfigError, parse_config
from amuro_study.executors import make_executor
from amuro_study.plan import EvalUnit, FinetuneUnit, Plan, build_plan
from amuro_study.runner import DONE, LOG, run_study, store_of

CONFIG = {
    "model": "allenai/OLMo-1B-hf",
    "revisions": ["step1000-tokens4B", "step2000-tokens8B"],
    "data": "fixtures",
    "finetune": {"tasks": ["mnli"]},
    "eval": {"sets": ["mnli_matched", "rte"], "shots": [4]},
}


def finetune_body(plan: Plan, unit: FinetuneUnit) -> dict[str, Any]:
    """Prints, logs and warns like the libraries do, and draws a progress bar."""
    print("training starts")
    sys.stderr.write("\rMap:   0%|     | 0/8 [00:00<?, ? examples/s]"
                     "\rMap: 100%|#####| 8/8 [00:00<00:00, 900 examples/s]\n")
    logging.getLogger("transformers.trainer").info("***** Running training *****")
    logging.getLogger("trl.trainer").warning("padding-free training on CPU is slow")
    logging.getLogger("datasets.builder").debug("a debug line nobody needs")
    logging.getLogger("amuro").warning("sample smaller than asked: 8 of 16 rows")
    warnings.warn("torch.cuda.amp.autocast is deprecated", FutureWarning, stacklevel=1)
    return {"model_dir": "model"}


def eval_body(plan: Plan, unit: EvalUnit) -> dict[str, Any]:
    logging.getLogger("lm_eval.evaluator").info("Running loglikelihood requests")
    return {"records": [{"model": unit.checkpoint.model, "revision": unit.checkpoint.revision,
                         "step": unit.checkpoint.step, "eval_set": t.eval_set,
                         "format": t.format, "shots": unit.shots, "metric": "acc",
                         "value": 0.5, "finetune": unit.finetune.task if unit.finetune else None}
                        for t in unit.tasks]}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("amuro_study.cli.quiet_libraries", lambda: None)
    monkeypatch.setitem(runner._BODIES, "finetune", finetune_body)
    monkeypatch.setitem(runner._BODIES, "eval", eval_body)


def write_config(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / "study"),
                                    **changes}))
    return path


# ============================================================================ bad inputs
def test_a_local_model_path_that_does_not_exist_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, model=str(tmp_path / "no-such-model"))
    assert main(["study", "plan", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"model: no such model directory '{tmp_path / 'no-such-model'}'" in err
    assert "not a Hub repo id" in err
    with pytest.raises(StudyConfigError, match="model: no such model directory './runs/x'"):
        parse_config({**CONFIG, "output_dir": "o", "model": "./runs/x"})
    with pytest.raises(StudyConfigError, match="is a file, not a model directory"):
        parse_config({**CONFIG, "output_dir": "o", "model": str(config)})


def test_an_output_folder_that_is_a_file_is_refused(tmp_path: Path, fake: None,
                                                    capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    (tmp_path / "study").write_text("not a folder")
    assert main(["study", "run", str(config)]) == 2
    assert f"config error: output_dir: {tmp_path / 'study'} is a file, not a folder" in \
        capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["study", "run", str(config), "--output-dir", str(tmp_path / "file")]) == 2
    assert "--output-dir: " in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["-1", "0", "two"])
def test_workers_below_one_are_refused(tmp_path: Path, workers: str,
                                       capsys: pytest.CaptureFixture) -> None:
    """`--workers 0` used to be ignored silently, `--workers -1` a traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(["study", "run", str(write_config(tmp_path)), "--workers", workers])
    assert exit_.value.code == 2
    assert "argument --workers: must be" in capsys.readouterr().err
    plan = build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "o")}))
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        make_executor(plan, workers=0)


def test_report_with_no_results_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    assert main(["study", "report", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"amuro: error: no evaluation has finished in {tmp_path / 'study' / 'units'} yet" \
        in err and f"amuro study run {config}" in err


def test_paper_report_from_a_clone_needs_no_results_path(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    """`amuro study report --paper OUT`, as docs/study.md shows it: the committed copy of the
    release (tests/data/paper_results) is the default in a source checkout."""
    from amuro_study.paper_results import default_results_dir

    monkeypatch.delenv("AMURO_PAPER_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_results_dir() == Path(__file__).resolve().parent / "data" / "paper_results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["study", "report", "--paper", "paper"]) == 0
    assert "report: paper/report.md" in capsys.readouterr().out
    assert (tmp_path / "paper" / "tables" / "table5.csv").is_file()


# ============================================================================ outputs
def test_unit_folders_are_readable_and_ids_come_from_the_files(tmp_path: Path,
                                                               fake: None) -> None:
    plan = build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "study")}))
    assert run_study(plan, runner_executor()).ok
    folders = sorted(str(p.parent.relative_to(plan.output_dir / "units"))
                     for p in (plan.output_dir / "units").rglob("result.json"))
    digest = {uid: uid.rsplit("-", 1)[1] for uid in plan.units()}
    expected = sorted(
        [f"base-eval/{rev}_4shot_{digest[u.uid]}" for u in plan.base_evals
         for rev in [u.checkpoint.revision]]
        + [f"finetune/{u.base.revision}_mnli-lr2e-06_{digest[u.uid]}" for u in plan.finetunes]
        + [f"finetuned-eval/{u.checkpoint.revision}_mnli-lr2e-06_4shot_{digest[u.uid]}"
           for u in plan.finetuned_evals])
    assert folders == expected
    for uid in plan.units():  # the identity is in the files, the folder name only shows it
        folder = plan.unit_dir(uid)
        assert json.loads((folder / "result.json").read_text())["uid"] == uid
        assert json.loads((folder / "unit.json").read_text())["uid"] == uid
    assert store_of(plan).done_ids() == set(plan.units())


def test_unit_folders_name_the_shot_set(tmp_path: Path) -> None:
    """Shot sets other than the default (seed 1234, fixed shots) show in the folder name; the
    default set's folders keep the names they had before shot sets were an axis."""
    eval_ = {"sets": ["rte"], "shots": [0, 4], "fewshot_seeds": [1234, 7],
             "shot_sampling": ["fixed", "per_document"]}
    plan = build_plan(parse_config({**CONFIG, "eval": eval_, "finetune": {"tasks": []},
                                    "output_dir": str(tmp_path / "study")}))
    names = {(u.checkpoint.revision, u.shots, u.fewshot_seed, u.shot_sampling):
             plan.unit_dir(u.uid).name.rsplit("_", 1)[0] for u in plan.base_evals}
    rev = "step1000-tokens4B"
    assert names[(rev, 0, None, None)] == f"{rev}_0shot"
    assert names[(rev, 4, 1234, "fixed")] == f"{rev}_4shot"
    assert names[(rev, 4, 7, "fixed")] == f"{rev}_4shot-seed7"
    assert names[(rev, 4, 1234, "per_document")] == f"{rev}_4shot-perdoc"
    assert names[(rev, 4, 7, "per_document")] == f"{rev}_4shot-seed7-perdoc"
    assert len(set(names.values())) == len(names) == 2 * 5


def runner_executor() -> Any:
    from amuro_study.executors import LocalExecutor

    return LocalExecutor()


def test_a_study_made_by_an_older_amuro_is_moved_to_the_new_folders(
        tmp_path: Path, fake: None, capsys: pytest.CaptureFixture,
        caplog: pytest.LogCaptureFixture) -> None:
    """The older layout kept units in units/<uid>/: a run (or a report) moves the finished ones
    to their folders, removes the unfinished ones (they are redone), and says so."""
    config = write_config(tmp_path)
    plan = build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "study")}))
    assert main(["study", "run", str(config), "--no-report"]) == 0
    unfinished = plan.finetunes[0].uid
    for uid in plan.units():  # the old layout
        shutil.move(plan.unit_dir(uid), plan.output_dir / "units" / uid)
    (plan.output_dir / "units" / unfinished / "result.json").unlink()
    for stage in ("base-eval", "finetune", "finetuned-eval"):
        (plan.output_dir / "units" / stage).rmdir()
    capsys.readouterr()
    assert main(["study", "run", str(config), "--no-report"]) == 0
    said = caplog.text  # (the amuro logger's warning; `amuro` prints it on stderr)
    assert "made by an older amuro" in said
    assert "moved 5 finished units" in said and "removed 1 unfinished" in said
    assert "1 run now, 5 already done" in capsys.readouterr().out
    assert sorted(p.name for p in (plan.output_dir / "units").iterdir()) == [
        "base-eval", "finetune", "finetuned-eval"]
    assert store_of(plan).done_ids() == set(plan.units())


def test_each_run_leaves_its_record_in_the_history(tmp_path: Path, fake: None) -> None:
    config = write_config(tmp_path)
    assert main(["study", "run", str(config), "--no-report"]) == 0
    assert main(["study", "run", str(config), "--no-report"]) == 0
    runs = sorted((tmp_path / "study" / "history").glob("run-*.json"))
    assert len(runs) == 2
    first, second = (json.loads(p.read_text()) for p in runs)
    assert first["status"] == second["status"] == "finished"
    assert first["counts"]["done"] == 6 and second["counts"]["skipped"] == 6
    assert not (tmp_path / "study" / "last_run.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_file_modes_follow_the_umask(tmp_path: Path, fake: None, umask: int) -> None:
    """result.json and unit.json used to be created 0600 whatever the umask."""
    old = os.umask(umask)
    try:
        assert main(["study", "run", str(write_config(tmp_path)), "--no-report"]) == 0
    finally:
        os.umask(old)
    files = [*(tmp_path / "study" / "units").rglob("*.json"),
             *(tmp_path / "study" / "history").glob("*.json")]
    assert {p.name for p in files} >= {"result.json", "unit.json"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~umask)}


def test_a_units_log_holds_the_libraries_lines_and_no_progress_bars(
        tmp_path: Path, fake: None) -> None:
    plan = build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "study")}))
    names = ("", "transformers", "lm_eval", "amuro", "py.warnings")
    before = [(lg.level, lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, names)]
    summary = run_study(plan, runner_executor())
    after = [(lg.level, lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, names)]
    assert after == before  # every logger is put back as it was
    unit = plan.finetunes[0]
    log = (plan.unit_dir(unit.uid) / LOG).read_text()
    assert "training starts" in log  # what the body printed
    assert "INFO transformers.trainer: ***** Running training *****" in log
    assert "WARNING trl.trainer: padding-free training on CPU is slow" in log
    assert "WARNING amuro: sample smaller than asked" in log
    assert "FutureWarning: torch.cuda.amp.autocast is deprecated" in log
    assert "\r" not in log and "examples/s" not in log and "debug line" not in log
    outcome = next(o for o in summary.outcomes if o.uid == unit.uid)
    assert outcome.status == DONE
    # the terminal gets amuro's warnings, not every library's
    assert outcome.warnings == ("warning: sample smaller than asked: 8 of 16 rows",)
    eval_log = (plan.unit_dir(plan.base_evals[0].uid) / LOG).read_text()
    assert "INFO lm_eval.evaluator: Running loglikelihood requests" in eval_log


def test_cpu_threads_hold_while_a_unit_runs_and_are_given_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    seen: list[tuple[int, str | None]] = []

    def body(plan: Plan, unit: EvalUnit) -> dict[str, Any]:
        seen.append((torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")))
        return eval_body(plan, unit)

    monkeypatch.setitem(runner._BODIES, "eval", body)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    plan = build_plan(parse_config({**CONFIG, "output_dir": str(tmp_path / "s"),
                                    "finetune": {}, "backend": {"cpu_threads": 1}}))
    assert run_study(plan, runner_executor()).ok
    assert seen == [(1, "1")] * len(plan.base_evals)
    assert torch.get_num_threads() == before and "OMP_NUM_THREADS" not in os.environ
