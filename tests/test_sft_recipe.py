"""The amuro-sft recipe: TRL's dataclasses and parser, the paper's defaults, one declaration for
the CLI, Python and the study, and the shared pieces (batch rule, atomic writer, resolver).

Fast tests parse, validate and build trainer arguments without training; the ``slow`` ones train
a tiny model for a few steps on CPU.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from amuro_sft import atomic
from amuro_sft import cli as sft_cli
from amuro_sft.config import AmuroArguments, RecipeError, split_batch
from amuro_sft.hub import (
    branch_for_step,
    check_model_exists,
    checkpoint_fingerprint,
    checkpoint_id,
    resolve_revision,
    revision_step,
)
from amuro_sft.provenance import IDENTITY_NAME, RECORD_NAME, model_card
from amuro_sft.recipe import (
    NON_IDENTITY,
    OPTION_OWNER,
    SFTRecipe,
    make_parser,
    parse_cli,
    recipe_from_options,
)
from amuro_sft.train import build_sft_config, check_output_dir, mean_logged_loss
from amuro_tasks.errors import AmuroConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sft_mnli.yaml"


def _opts(model: Path | str, out: Path | str = "out", **kw) -> dict:
    return {"model_name_or_path": str(model), "task": kw.pop("task", "mnli"),
            "output_dir": str(out), **kw}


def _cli(argv: list[str]) -> SFTRecipe:
    args, _ = sft_cli.translate_legacy(argv)
    return parse_cli(args)[0]


# ----------------------------------------------------------------------------- paper defaults
def test_a_bare_recipe_is_the_papers_in_python_cli_and_study(tiny_model_dir: Path) -> None:
    """TRL's defaults differ (lr 2e-5, gradient checkpointing on, bf16 on, max length 1024):
    every entry point gets the paper's recipe instead."""
    import warnings

    from trl import SFTConfig

    with warnings.catch_warnings():  # TRL's own default trips transformers' rename warning
        warnings.simplefilter("ignore", FutureWarning)
        stock = SFTConfig(output_dir="x", use_cpu=True)
    assert (stock.learning_rate, stock.gradient_checkpointing, stock.max_length) == \
        (2e-5, True, 1024)

    python = recipe_from_options(_opts(tiny_model_dir))
    t = python.training
    assert python.learning_rate == 2e-6 and python.num_train_epochs == 3.0
    assert python.args.effective_batch_size == 8 and python.args.num_train_examples == 6000
    assert (t.lr_scheduler_type.value, t.warmup_steps, t.weight_decay) == ("linear", 0.03, 0.0)
    assert (t.max_length, t.seed, t.report_to) == (2048, 42, [])
    assert t.activation_checkpointing is False and t.gradient_checkpointing is False
    assert t.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert python.model.dtype == "float32"  # fp32 master weights
    assert recipe_from_options(_opts(tiny_model_dir, task="tulu")).num_train_epochs == 5.0
    assert recipe_from_options(_opts(tiny_model_dir, task="xsum")).learning_rate == 2e-7

    # what the trainer gets: the paper's values, accumulation from the batch rule
    args = build_sft_config(python, "ckpt", processes=1)
    assert (args.learning_rate, args.num_train_epochs, args.gradient_accumulation_steps,
            args.per_device_train_batch_size) == (2e-6, 3.0, 1, 8)
    assert args.get_warmup_steps(1000) == 30 and args.padding_free and args.max_length is None
    assert args.push_to_hub is False and not args.activation_checkpointing
    assert build_sft_config(python, "ckpt", processes=2).gradient_accumulation_steps == 1
    assert build_sft_config(python.with_options(per_device_train_batch_size=2), "c",
                            processes=2).gradient_accumulation_steps == 2

    cli = _cli(["--model_name_or_path", str(tiny_model_dir), "--task", "mnli",
                "--output_dir", "out"])
    assert cli.identity() == python.identity()
    assert cli.to_options() == python.to_options()

    from amuro_study.config import parse_config
    from amuro_study.plan import build_plan, recipe_identity

    study = parse_config({"output_dir": "s", "model": str(tiny_model_dir),
                          "revisions": [{"revision": "main", "step": 0}],
                          "finetune": {"tasks": ["mnli"]}, "eval": {"sets": ["rte"]},
                          "data": "fixtures"})
    unit = build_plan(study).finetunes[0]
    assert dict(unit.recipe) == recipe_identity(python.with_options(data_source="fixtures"))


def test_recipe_options_round_trip_and_identity_ignores_where_things_go(
        tiny_model_dir: Path) -> None:
    recipe = recipe_from_options(_opts(tiny_model_dir, sample_fraction=0.5, val_examples=3,
                                       lr_sweep=None, learning_rate=1e-5, warmup_steps=0.1,
                                       report_to="none"))
    again = recipe_from_options(recipe.to_options())
    assert again.identity() == recipe.identity() and again.to_options() == recipe.to_options()
    moved = recipe.with_options(output_dir="elsewhere", logging_steps=3, save_steps=7,
                                per_device_train_batch_size=2, use_cpu=True,
                                disable_tqdm=True)
    assert moved.identity() == recipe.identity()
    assert recipe.with_options(warmup_steps=0.2).identity() != recipe.identity()
    assert recipe.with_options(sample_seed=1).identity() != recipe.identity()
    assert {"output_dir", "logging_steps", "per_device_train_batch_size"} <= NON_IDENTITY
    assert "hub_token" not in recipe.with_options(hub_token="hf_x").to_options()


def test_help_shows_every_options_help_from_the_dataclasses(
        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        sft_cli.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in OPTION_OWNER:
        assert f"--{name}" in out, name
    from dataclasses import fields

    for f in fields(AmuroArguments):  # amuro's own help text, and the paper-default overrides
        assert " ".join(f.metadata["help"].split())[:60] in out, f.name
    assert "the paper's pick for the task" in out and "--config" in out
    parser = make_parser()
    undocumented = [a.dest for a in parser._actions if not a.help and a.dest != "help"]
    assert undocumented == []


# ----------------------------------------------------------------------------- one declaration
def test_config_file_and_flags_give_the_same_recipe(tmp_path: Path,
                                                    tiny_model_dir: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    from_file = _cli(["--config", str(EXAMPLE), "--output_dir", "o",
                      "--model_name_or_path", str(tiny_model_dir)])
    flags = []
    for key, value in data.items():
        if key != "model_name_or_path":
            flags += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    from_flags = _cli([*flags, "--output_dir", "o", "--model_name_or_path", str(tiny_model_dir)])
    assert from_file.identity() == from_flags.identity()
    assert from_file.to_options() == from_flags.to_options()
    # flags override the file, as with `trl sft`
    assert _cli(["--config", str(EXAMPLE), "--output_dir", "o", "--model_name_or_path",
                 str(tiny_model_dir), "--seed", "7"]).training.seed == 7


def test_old_flag_spellings_still_work_with_a_deprecation_message(
        tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    old = ["--model", str(tiny_model_dir), "--revision", "main", "--task", "paws",
           "--output-dir", "o", "--lr", "1e-5", "--epochs", "2", "--cpu", "--no-progress",
           "--per-device-batch-size", "4", "--data-seed", "7", "--num-train-examples", "all",
           "--push-to-hub", "me/repo", "--hub-branch", "b", "--plain", "--no-bf16"]
    new = ["--model_name_or_path", str(tiny_model_dir), "--model_revision", "main", "--task",
           "paws", "--output_dir", "o", "--learning_rate", "1e-5", "--num_train_epochs", "2",
           "--use_cpu", "--disable_tqdm", "true", "--per_device_train_batch_size", "4",
           "--sample_seed", "7", "--num_train_examples", "none", "--push_to_hub",
           "--hub_model_id", "me/repo", "--hub_revision", "b", "--padding_free", "false",
           "--optim", "adamw_torch", "--bf16", "false"]
    translated, notes = sft_cli.translate_legacy(old)
    a, b = parse_cli(translated)[0], parse_cli(new)[0]
    assert a.to_options() == b.to_options()
    assert a.args.sample_seed == 7 and a.training.data_seed is None  # amuro's seed, not TRL's
    assert a.training.hub_model_id == "me/repo" and a.training.push_to_hub
    assert len(notes) == 13 and all("deprecated" in n and "amuro 0.3" in n for n in notes)
    sweep, notes = sft_cli.translate_legacy(["--lr", "1e-3", "1e-5", "--task", "mnli"])
    assert sweep[:3] == ["--lr_sweep", "1e-3", "1e-5"] and "--lr_sweep" in notes[0]
    # the CLI prints them
    assert sft_cli.main(["--model", "/no/such/model", "--task", "mnli", "--output-dir", "o"]) \
        == 2
    err = capsys.readouterr().err
    assert "warning: --model is deprecated, use --model_name_or_path" in err


# ----------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize(("flags", "message"), [
    (["--seed", "-1"], "--seed: must be an integer >= 0"),
    (["--num_train_epochs", "inf"], "--num_train_epochs: must be a finite number > 0"),
    (["--max_steps", "0"], "--max_steps: must be -1 (train num_train_epochs) or >= 1"),
    (["--sample_fraction", "1.5"], "--sample_fraction: must be in (0, 1]"),
    (["--model_name_or_path", "/no/such/model"],
     "--model_name_or_path: no such model directory '/no/such/model'"),
    (["--task", "rte"], "--learning_rate: task 'rte' is not one of the paper's"),
    (["--learning_rate", "1e-5", "--lr_sweep", "1e-5", "1e-6"], "--lr_sweep: give either"),
    (["--use_peft"], "--use_peft: amuro-sft fine-tunes every weight"),
    (["--packing"], "--packing: packing would make a batch count packed rows"),
    (["--push_to_hub"], "--hub_model_id: --push_to_hub needs the repo"),
    (["--report_to", "comet_ml"], "--report_to: comet_ml is not installed"),
    (["--effective_batch_size", "8", "--gradient_accumulation_steps", "3"],
     "--gradient_accumulation_steps: 3 disagrees with effective_batch_size 8"),
    (["--task", "tulu", "--format", "io"], "--format: task 'tulu' is conversational"),
    (["--task", "squad"], "--task: unknown task 'squad'"),
    (["--data_source", "/no/such/mirror"],
     "--data_source: '/no/such/mirror' is neither hub, fixtures nor"),
    (["--learnin_rate", "1e-5"], "did you mean --learning_rate"),
])
def test_bad_options_are_usage_errors_naming_the_option(
        flags: list[str], message: str, tiny_model_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from amuro_sft import train

    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("a model loaded"))
    base = ["--model_name_or_path", str(tiny_model_dir), "--task", "mnli",
            "--output_dir", str(tmp_path / "o")]
    assert sft_cli.main([*base, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert message in err, err
    assert not (tmp_path / "o").exists()


def test_output_dir_that_is_a_file_or_unwritable_is_a_usage_error(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--model_name_or_path", str(tiny_model_dir), "--task", "mnli", "--use_cpu"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert sft_cli.main([*base, "--output_dir", str(a_file)]) == 2
    assert f"--output_dir: {a_file} is a file, not a folder" in capsys.readouterr().err
    assert sft_cli.main([*base, "--output_dir", str(a_file / "sub")]) == 2
    assert f"--output_dir: cannot write to {a_file / 'sub'}: Not a directory" \
        in capsys.readouterr().err
    # a read-only file system (root ignores permission bits, so the error is injected at the
    # one write a run starts with: the probe)
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:
        if self.parent.name == "ro":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    assert sft_cli.main([*base, "--output_dir", str(tmp_path / "ro")]) == 2
    assert "--output_dir: cannot write to" in capsys.readouterr().err
    assert not (tmp_path / "ro").exists()  # nothing left behind


def test_recipe_file_errors_name_the_key(tmp_path: Path, tiny_model_dir: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "r.yaml"
    for body, message in (("num_train_examples: lots\n", "--num_train_examples: must be an "
                                                          "integer, got 'lots'"),
                          ("learning_rat: 1.0e-5\n", "--learning_rat: unknown option; did you "
                                                     "mean learning_rate?"),
                          ("revision: main\n", "--revision: unknown option; it is called "
                                               "model_revision now"),
                          ("- a list\n", "must be a mapping")):
        path.write_text(f"task: mnli\nmodel_name_or_path: {tiny_model_dir}\n" + body
                        if not body.startswith("-") else body)
        assert sft_cli.main(["--config", str(path), "--output_dir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_split_batch_is_the_one_effective_batch_rule() -> None:
    assert split_batch(8, 8, 1) == (8, 1)
    assert split_batch(8, 2, 1) == (2, 4)
    assert split_batch(8, 8, 2) == (4, 1)  # the per-device batch is a cap
    assert split_batch(8, 3, 1) == (2, 4)  # largest size <= 3 that divides 8
    assert split_batch(8, 2, 2) == (2, 2)
    for bad in ((8, 8, 3), (0, 1, 1), (8, 0, 1)):
        with pytest.raises(RecipeError):
            split_batch(*bad)


# ----------------------------------------------------------------------------- shared pieces
def test_the_atomic_writer_never_leaves_half_files_or_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    atomic.write_json_atomic(target, {"a": 1})
    old = os.umask(0o022)
    try:
        atomic.write_json_atomic(tmp_path / "mode.json", {})
        assert (tmp_path / "mode.json").stat().st_mode & 0o777 == 0o644  # like open()
    finally:
        os.umask(old)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mode.json", "record.json"]
    assert atomic.is_temp_file(atomic.temp_path(target))
    assert not atomic.is_temp_file(target) and not atomic.is_temp_file(tmp_path / ".hidden")


def test_output_dir_check_ignores_leftover_temp_files(tmp_path: Path) -> None:
    """A hard kill while writing the identity leaves a temp file: the rerun starts the run
    instead of refusing a 'not empty' folder forever; other content is still refused."""
    out = tmp_path / "run"
    out.mkdir()
    dead = out / f".{IDENTITY_NAME}.999999999-0123abcd.tmp"  # its writer is gone
    dead.write_text('{"half": ')
    live = atomic.temp_path(out / "x.json")  # this process: a write under way
    live.write_text("{")
    assert atomic.is_temp_file(dead) and atomic.is_temp_file(live)
    assert check_output_dir(out, {"task": "mnli"}) == "new"
    assert atomic.remove_stale_temp_files(out) == [dead] and live.exists()
    live.unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AmuroConfigError, match="not empty"):
        check_output_dir(out, {"task": "mnli"})


def test_mean_training_loss_covers_the_whole_run_after_a_resume() -> None:
    """Each logged loss is the mean over the steps since the previous log; weighted by those
    windows they give the mean over every step, whichever session logged them."""
    history = [{"step": 1, "loss": 4.0}, {"step": 10, "loss": 3.0},  # before the kill
               {"step": 20, "loss": 2.0}, {"eval_loss": 9.0, "step": 20},  # after the resume
               {"step": 25, "loss": 1.0}]
    assert mean_logged_loss(history) == pytest.approx((4 + 9 * 3 + 10 * 2 + 5 * 1) / 25)
    assert mean_logged_loss([]) is None


def test_model_card_names_the_real_data_source() -> None:
    record = json.loads(json.dumps({
        "base_model": "/m", "base_is_local": True, "task": "mnli", "format": "default",
        "data": {"dataset": "nyu-mll/glue", "source": "fixtures", "num_train_examples": 8,
                 "sample_hash": "0" * 64},
        "hyperparameters": {"learning_rate": 1e-4, "num_train_epochs": 3,
                            "effective_batch_size": 8, "lr_scheduler_type": "linear",
                            "warmup_ratio": 0.03, "weight_decay": 0.0},
        "seed": 42, "losses": {}, "train_tokens": 1, "wall_time_s": 1.0, "tokens_per_s": 1.0,
    }))
    card = model_card(record)
    assert "datasets:" not in card and "synthetic test fixtures in the schema of" in card
    record["data"]["source"] = "hub"
    assert "datasets: [nyu-mll/glue]" in model_card(record)
    record["data"]["source"] = "/mirror"
    assert "a local mirror `/mirror` of `nyu-mll/glue`" in model_card(record)


def test_one_resolver_and_one_fingerprint(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert [revision_step(r) for r in ("step0", "step1000-tokens4B", "main", "step1x")] == \
        [0, 1000, None, None]
    branches = ["main", "step0", "step1000-tokens4B", "step2000-tokens8B"]
    assert branch_for_step("m", 1000, branches) == "step1000-tokens4B"
    with pytest.raises(AmuroConfigError, match=r"no branch for step 1500; closest branches: "
                                               r"step1000-tokens4B, step2000-tokens8B"):
        branch_for_step("m", 1500, branches)
    local = resolve_revision(str(tiny_model_dir), "main")  # main: no revision, as for a Hub id
    fingerprint = checkpoint_fingerprint(tiny_model_dir)
    assert local.is_local and local.checkpoint_id == fingerprint.__str__()
    assert fingerprint.startswith("sha256:") and checkpoint_id(str(tiny_model_dir)) == fingerprint
    import shutil

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert checkpoint_fingerprint(copy) == fingerprint  # content, not path
    weights = next(p for p in Path(copy).iterdir() if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert checkpoint_fingerprint(copy) != fingerprint
    assert checkpoint_fingerprint(tmp_path) is None  # no weights
    # offline, not in the cache: the evaluation records say "unknown", they do not crash
    assert checkpoint_id("org/not-cached", "step1") is None
    with pytest.raises(AmuroConfigError, match="offline"):
        resolve_revision("org/not-cached", "step1")
    with pytest.raises(AmuroConfigError, match="no such model directory"):
        check_model_exists(str(tmp_path / "missing"))


# ----------------------------------------------------------------------------- any task
def test_any_set_with_a_labelled_train_split_is_a_task(tiny_model_dir: Path) -> None:
    from amuro_sft.data import build_training_data
    from amuro_sft.hub import resolve_revision as resolve
    from amuro_sft.tasks import eval_sets, trainable_tasks
    from amuro_sft.train import load_tokenizer
    from amuro_tasks.loading import load_training_docs
    from amuro_tasks.prompts import render_example

    tasks = trainable_tasks()
    assert tasks[:5] == ("mnli", "paws", "xsum", "socialiqa", "tulu")
    assert {"rte", "qqp", "boolq", "arc_easy", "cnn"} <= set(tasks)
    assert "gpt3nli" not in tasks  # scored on its train split: nothing left to train on
    assert "mnli_mismatched" not in tasks  # that is the paper's mnli
    assert eval_sets("rte") == (("rte",), ()) and eval_sets("mnli")[1] == ("rte", "gpt3nli")
    recipe = recipe_from_options(_opts(tiny_model_dir, task="boolq", learning_rate=1e-5,
                                       num_train_examples=6))
    tok = load_tokenizer(recipe, resolve(str(tiny_model_dir)))
    data = build_training_data(recipe, tok)
    docs = load_training_docs("boolq", n=6, seed=42)
    assert [dict(e) for e in data.train] == [render_example("boolq", "default", d) for d in docs]


# ----------------------------------------------------------------------------- study
def test_a_study_can_set_every_recipe_option(tiny_model_dir: Path) -> None:
    from amuro_study.config import _SET_BY_STUDY, parse_config
    from amuro_study.plan import build_plan
    from amuro_study.runner import finetune_recipe

    base = {"output_dir": "s", "model": str(tiny_model_dir),
            "revisions": [{"revision": "main", "step": 0}], "eval": {"sets": ["rte"]},
            "data": "fixtures"}
    accepted = []
    for name in OPTION_OWNER:
        if name in _SET_BY_STUDY or name == "learning_rate":
            continue
        from amuro_sft.recipe import option_default

        value = option_default(name)
        if name == "hub_token":
            continue  # a secret: never in a config file
        parse_config({**base, "finetune": {"tasks": ["mnli"], name: value}})
        accepted.append(name)
    assert len(accepted) > 150
    # options a study could not set before reach the unit's identity and the run's recipe
    plain = build_plan(parse_config({**base, "finetune": {"tasks": ["tulu"]}}))
    plan = build_plan(parse_config({**base, "finetune": {
        "tasks": ["tulu"], "sample_fraction": 0.05, "val_examples": 3, "sample_seed": 7,
        "report_to": "tensorboard", "logging_steps": 5}}))
    unit = plan.finetunes[0]
    assert (unit.recipe["sample_fraction"], unit.recipe["val_examples"],
            unit.recipe["sample_seed"]) == (0.05, 3, 7)
    assert unit.uid != plain.finetunes[0].uid
    recipe = finetune_recipe(plan, unit)
    assert recipe.args.sample_fraction == 0.05 and recipe.training.report_to == ["tensorboard"]
    assert recipe.output_dir == plan.finetuned_model_dir(unit)
    # logging is not identity: same unit with or without it
    quiet = build_plan(parse_config({**base, "finetune": {
        "tasks": ["tulu"], "sample_fraction": 0.05, "val_examples": 3, "sample_seed": 7}}))
    assert quiet.finetunes[0].uid == unit.uid


@pytest.mark.parametrize(("finetune", "message"), [
    ({"sample_fraction": 1.5}, r"^finetune.sample_fraction: must be in \(0, 1\]"),
    ({"seed": -1}, r"^finetune.seed: must be an integer >= 0"),
    ({"num_train_epochs": float("inf")}, r"^finetune.num_train_epochs: must be a finite"),
    ({"learning_rat": 1e-5}, r"^finetune.learning_rat: unknown key; did you mean learning_rate"),
    ({"model_name_or_path": "x"}, r"^finetune.model_name_or_path: set by the study"),
    ({"report_to": "nosuchtracker"}, r"^finetune.report_to: nosuchtracker is not installed"),
    ({"num_train_examples": "lots"}, r"^finetune.num_train_examples: must be an integer"),
    ({"tasks": ["rte"]}, r"^finetune.learning_rates: task 'rte' is not one of the paper's"),
    ({"epochs": 2, "num_train_epochs": 2}, r"^finetune.epochs: renamed num_train_epochs"),
])
def test_study_recipe_errors_name_the_dotted_key(finetune: dict, message: str) -> None:
    from amuro_study.config import StudyConfigError, parse_config

    cfg = {"output_dir": "s", "model": "allenai/OLMo-1B-hf",
           "revisions": ["step1000-tokens4B"], "eval": {"sets": ["rte"]},
           "finetune": {"tasks": ["mnli"], **finetune}}
    with pytest.raises(StudyConfigError, match=message):
        parse_config(cfg)


def test_study_tasks_beyond_the_papers_four() -> None:
    from amuro_study.config import parse_config
    from amuro_study.plan import build_plan

    cfg = {"output_dir": "s", "model": "allenai/OLMo-1B-hf", "revisions": ["step1000-tokens4B"],
           "finetune": {"tasks": ["rte", "mnli"], "learning_rates": {"rte": [1e-5]},
                        "epochs": 2},  # the old key still works, with a warning
           "eval": {"sets": "auto"}}
    plan = build_plan(parse_config(cfg))
    assert {(f.task, f.learning_rate, f.epochs) for f in plan.finetunes} == {
        ("rte", 1e-5, 2.0), ("mnli", 2e-6, 2.0)}
    # auto sets: the paper's ID/OOD pairs for mnli, the set itself for rte
    assert [t.eval_set for t in plan.base_evals[0].tasks] == [
        "rte", "mnli_matched", "mnli_mismatched", "gpt3nli"]


# ----------------------------------------------------------------------------- training
@pytest.mark.slow
def test_recipe_file_and_flags_train_runs_with_the_same_identity(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The done-when of issue 12: `amuro-sft --config examples/sft_mnli.yaml --output_dir X`
    and the same recipe as flags write amuro_run.json files with identical identities."""
    small = ["--model_name_or_path", str(tiny_model_dir), "--model_revision", "main",
             "--num_train_examples", "8",
             "--max_steps", "1", "--use_cpu", "--disable_tqdm", "true", "--data_source",
             "fixtures"]
    assert sft_cli.main(["--config", str(EXAMPLE), "--output_dir", str(tmp_path / "a"),
                         *small]) == 0
    flags = []
    for key, value in yaml.safe_load(EXAMPLE.read_text()).items():
        flags += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    assert sft_cli.main([*flags, "--output_dir", str(tmp_path / "b"), *small]) == 0
    a, b = (json.loads((tmp_path / d / RECORD_NAME).read_text()) for d in ("a", "b"))
    assert a["identity"] == b["identity"] and a["identity"]["task"] == "mnli"
    assert a["data"]["sample_hash"] == b["data"]["sample_hash"]
    # the run's own recipe file reruns it: the finished run is recognised and skipped
    capsys.readouterr()
    assert sft_cli.main(["--config", str(tmp_path / "a" / "amuro_recipe.yaml")]) == 0
    assert "skipped (already finished)" in capsys.readouterr().out


@pytest.mark.slow
def test_report_to_tensorboard_writes_events_with_the_provenance(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """A non-paper task (boolq, a set with a labelled train split) trained with
    --report_to tensorboard: event files next to the model, with amuro's provenance."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert sft_cli.main(["--model_name_or_path", str(tiny_model_dir), "--task", "boolq",
                         "--learning_rate", "1e-4", "--output_dir", str(out),
                         "--num_train_examples", "8", "--max_steps", "2", "--logging_steps",
                         "1", "--use_cpu", "--disable_tqdm", "true",
                         "--report_to", "tensorboard"]) == 0
    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events, sorted(p.relative_to(out) for p in out.rglob("*"))
    acc = EventAccumulator(str(events[0].parent), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "train/loss" in tags["scalars"]
    assert "amuro_provenance/text_summary" in tags["tensors"]
    text = acc.Tensors("amuro_provenance/text_summary")[0].tensor_proto.string_val[0].decode()
    record = json.loads((out / RECORD_NAME).read_text())
    assert '"task": "boolq"' in text and record["data"]["sample_hash"] in text
    assert record["task"] == "boolq" and record["train_set"] == "boolq"


@pytest.mark.slow
def test_a_failed_identity_write_does_not_wedge_the_rerun(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full while amuro_run_args.json is written: no temp file is left, and once space
    is back the same command runs to the end."""
    from amuro_sft.train import run_sft

    out = tmp_path / "full"
    recipe = recipe_from_options(_opts(tiny_model_dir, out, num_train_examples=8, max_steps=1,
                                       use_cpu=True, disable_tqdm=True))

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_sft(recipe)
    assert [p.name for p in out.iterdir()] == []  # no identity, no temp file
    monkeypatch.undo()
    run_sft(recipe)
    assert (out / RECORD_NAME).is_file()
