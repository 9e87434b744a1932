"""amuro_sft: data = evaluation templates, loss masks, errors, revisions, resume, CLI + lm_eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from amuro_sft import cli as sft_cli
from amuro_sft import hub as sft_hub
from amuro_sft import train as sft_train
from amuro_sft.checkpoints import last_good_checkpoint
from amuro_sft.config import AmuroSFTError, NonFiniteLossError
from amuro_sft.data import build_training_data
from amuro_sft.provenance import IDENTITY_NAME, RECORD_NAME
from amuro_sft.recipe import SFTRecipe, recipe_from_options
from amuro_sft.train import run_lr_sweep, run_sft
from amuro_tasks.errors import AmuroConfigError, AmuroDataError
from amuro_tasks.loading import load_training_docs
from amuro_tasks.specs import get_spec
from amuro_tasks.suite import FINETUNE_TASKS

FAST = dict(num_train_examples=16, max_steps=4, save_steps=2, logging_steps=1,
            disable_tqdm=True, use_cpu=True)


def _recipe(model: Path | str, out: Path | str = "x", **kw) -> SFTRecipe:
    """A recipe from options, as the Python API, a recipe file and a study build it."""
    return recipe_from_options({"model_name_or_path": str(model), "task": kw.pop("task", "mnli"),
                                "output_dir": str(out), **kw})


def _cfg(model: Path | str, out: Path, **kw) -> SFTRecipe:
    return _recipe(model, out, **{**FAST, **kw})


def _tokenizer(model_dir: Path, tulu: bool = False):
    from amuro_sft.train import load_tokenizer

    cfg = _recipe(model_dir, task="tulu" if tulu else "mnli")
    return load_tokenizer(cfg, sft_hub.resolve_revision(str(model_dir), None))


def _trainer(cfg: SFTRecipe, model_dir: Path):
    """A trainer on the run's data (TRL has tokenized it and built labels); nothing trained."""
    tok = _tokenizer(model_dir, cfg.is_tulu)
    data = build_training_data(cfg, tok)
    resolved = sft_hub.resolve_revision(str(model_dir), None)
    model = sft_train.load_model(cfg, resolved)
    args = sft_train.build_sft_config(cfg, cfg.output_dir / "checkpoints")
    return sft_train._make_trainer_class()(model=model, args=args, train_dataset=data.train,
                                           processing_class=tok), data, tok


def _trl_tokenize(cfg: SFTRecipe, tok, example: dict[str, str]) -> list[int]:
    """The token ids TRL's SFTTrainer trains on for one prompt-completion example."""
    import datasets

    model = sft_train.load_model(cfg, sft_hub.resolve_revision(cfg.model_name, None))
    trainer = sft_train._make_trainer_class()(
        model=model, args=sft_train.build_sft_config(cfg, cfg.output_dir / "checkpoints"),
        train_dataset=datasets.Dataset.from_list([example]), processing_class=tok)
    return trainer.train_dataset[0]["input_ids"]


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("task", sorted(FINETUNE_TASKS))
def test_training_prompt_is_the_lm_eval_prompt(task: str, tiny_model_dir: Path) -> None:
    """The prompt a row trains on is what the lm-eval task renders for that same row."""
    from lm_eval.tasks import TaskManager

    from amuro_tasks import include_path

    cfg = _recipe(tiny_model_dir, task=task, num_train_examples=5)
    data = build_training_data(cfg, _tokenizer(tiny_model_dir))
    docs = load_training_docs(cfg.train_set, n=5, seed=42)
    name = f"amuro_{cfg.train_set}_default"
    lm_task = TaskManager(include_path=include_path()).load([name])["tasks"][name]
    assert len(data.train) == 5
    for doc, example in zip(docs, data.train, strict=True):
        assert example["prompt"] == lm_task.doc_to_text(doc)
        assert example["completion"] == " " + str(doc["target"])
        if get_spec(cfg.train_set).is_classification:
            assert doc["target"] in doc["choices"]
    assert data.row_ids == [d["row_index"] for d in docs]


def test_sample_is_seeded_and_validation_is_held_out(tiny_model_dir: Path) -> None:
    tok = _tokenizer(tiny_model_dir)
    cfg = _recipe(tiny_model_dir, task="paws", num_train_examples=20, val_examples=8)
    a, b = build_training_data(cfg, tok), build_training_data(cfg, tok)
    assert a.sample_hash == b.sample_hash and len(a.train) == 20 and len(a.validation) == 8
    other = build_training_data(cfg.with_options(sample_seed=7), tok)
    assert other.sample_hash != a.sample_hash
    assert len(a.val_row_ids) == 8 and not set(a.row_ids) & set(a.val_row_ids)
    # the training sample does not depend on whether a validation slice is held out
    no_val = build_training_data(cfg.with_options(val_examples=0), tok)
    assert no_val.sample_hash == a.sample_hash and no_val.validation is None
    too_many = cfg.with_options(num_train_examples=38, val_examples=8)
    with pytest.raises(AmuroDataError, match="too few"):
        build_training_data(too_many, tok)


def test_skipped_invalid_rows_are_counted_for_the_record(tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / get_spec("paws").fixture_key
    folder.mkdir(parents=True)
    good = [{"id": i, "sentence1": f"A cat {i}.", "sentence2": f"A dog {i}.", "label": i % 2}
            for i in range(12)]
    bad = [{"id": 100 + i, "sentence1": "x", "sentence2": "y", "label": -1} for i in range(5)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good + bad))
    cfg = _recipe(tiny_model_dir, task="paws", data_source=str(tmp_path),
                  num_train_examples=None, val_examples=2)
    with pytest.raises(AmuroDataError, match=r"paws/train row 1[2-6]: gold label 'label' is hidden"
                       r".*amuro-sft --on-invalid skip"):
        build_training_data(cfg, _tokenizer(tiny_model_dir))
    data = build_training_data(cfg.with_options(on_invalid="skip"), _tokenizer(tiny_model_dir))
    assert data.stats["invalid_rows"] == 5 and len(data.train) + len(data.validation) == 12


def _write_checkpoint(folder: Path, step: int, files: list[str]) -> None:
    """A checkpoint whose files parse: real safetensors / torch.save files, real JSON state."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for name in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".safetensors"):
            save_file({"w": torch.ones(4)}, str(path))
        elif name.endswith((".pt", ".pth")):
            torch.save({"step": step}, path)
        else:
            path.write_text("x")


def test_last_good_checkpoint_knows_every_trainer_layout(tmp_path: Path) -> None:
    """One process, FSDP sharded state and DeepSpeed ZeRO; a checkpoint is complete iff its
    files parse (not iff they exist): a missing, empty or cut-short trainer state, weight file
    or optimizer file makes it incomplete, and the previous complete one is used."""
    layouts = {
        1: ["model.safetensors", "optimizer.pt"],
        2: ["pytorch_model_fsdp_0/__0_0.distcp", "optimizer_0/__0_0.distcp"],
        3: ["latest", "global_step3/mp_rank_00_model_states.pt"],
    }
    root = tmp_path / "checkpoints"
    for step, files in layouts.items():
        _write_checkpoint(root / f"checkpoint-{step}", step, files)
        assert last_good_checkpoint(root) == root / f"checkpoint-{step}"
    torn = root / "checkpoint-4"
    _write_checkpoint(torn, 4, ["model.safetensors", "optimizer.pt"])
    assert last_good_checkpoint(root) == torn
    state = (torn / "trainer_state.json").read_text()
    for broken in ("", state[: len(state) // 2], "[]"):  # disk full: empty or cut short
        (torn / "trainer_state.json").write_text(broken)
        assert last_good_checkpoint(root) == root / "checkpoint-3"
    (torn / "trainer_state.json").write_text(state)
    weights = (torn / "model.safetensors").read_bytes()
    (torn / "model.safetensors").write_bytes(weights[:-3])
    assert last_good_checkpoint(root) == root / "checkpoint-3"
    (torn / "model.safetensors").write_bytes(weights)
    optimizer = (torn / "optimizer.pt").read_bytes()
    (torn / "optimizer.pt").write_bytes(optimizer[: len(optimizer) // 2])
    assert last_good_checkpoint(root) == root / "checkpoint-3"
    (torn / "optimizer.pt").write_bytes(optimizer)
    assert last_good_checkpoint(root) == torn
    _write_checkpoint(root / "checkpoint-9", 9, [])  # no weights
    assert last_good_checkpoint(root) == torn


def test_long_documents_are_truncated_not_their_summary(tiny_model_dir: Path) -> None:
    from amuro_sft.data import fit_example

    tok = _tokenizer(tiny_model_dir)
    doc = {"document": "The council met on Monday. " * 200, "target": "The council met."}
    example, cut = fit_example("summarization", "default", doc, tok, max_length=64)
    assert cut and example["completion"] == " The council met."
    n = len(tok(example["prompt"] + example["completion"])["input_ids"]) + 1
    assert n <= 64 and example["prompt"].endswith("### Summary:")


def test_truncation_leaves_room_for_a_bos_token(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A Llama-style tokenizer adds BOS when TRL tokenizes: the fitted example, as TRL tokenizes
    it (BOS + prompt + completion + EOS), still fits max_length, so no summary token is cut."""
    from transformers import AutoTokenizer

    from amuro_sft.data import fit_example

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, add_bos_token=True)
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    doc = {"document": "The council met on Monday. " * 200, "target": "The council met."}
    for max_length in (48, 64, 96):
        example, cut = fit_example("summarization", "default", doc, tok, max_length=max_length)
        cfg = _recipe(tiny_model_dir, tmp_path / "x", task="xsum", max_length=max_length,
                      use_cpu=True, disable_tqdm=True)
        trl_ids = _trl_tokenize(cfg, tok, example)
        assert cut and len(trl_ids) <= max_length
        assert tok.decode(trl_ids).endswith("The council met." + tok.eos_token)


def test_loss_mask_covers_only_completion_tokens(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, tmp_path / "c", task="socialiqa", num_train_examples=8)
    trainer, data, tok = _trainer(cfg, tiny_model_dir)
    ds = trainer.train_dataset
    for row, example in zip(ds, data.train, strict=True):
        ids, labels = row["input_ids"], row["labels"]
        n_prompt = len(tok(example["prompt"], add_special_tokens=False)["input_ids"])
        assert ids[:n_prompt] == tok(example["prompt"], add_special_tokens=False)["input_ids"]
        assert all(lab == -100 for lab in labels[:n_prompt])
        trained = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
        assert trained == ids[n_prompt:]
        assert tok.decode(trained) == example["completion"] + tok.eos_token
    # and after the padding-free collator: exactly those tokens, no boundary token
    batch = trainer.data_collator([ds[i] for i in range(len(ds))])
    expected = sum(sum(lab != -100 for lab in r["labels"]) for r in ds)
    assert int((batch["labels"] != -100).sum()) == expected


def test_tulu_loss_is_on_assistant_turns_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, tmp_path / "t", task="tulu", num_train_examples=12)
    trainer, data, tok = _trainer(cfg, tiny_model_dir)
    for row, example in zip(trainer.train_dataset, data.train, strict=True):
        trained = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True)
                   if lab != -100]
        replies = [m["content"] + tok.eos_token for m in example["messages"]
                   if m["role"] == "assistant"]
        assert tok.decode(trained) == "".join(replies)
    assert "{% generation %}" in tok.chat_template


def test_tulu_sample_fraction_reads_only_the_rows_it_needs(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from amuro_sft import data as sft_data

    seen: list[int] = []
    real = sft_data.fit_conversation
    monkeypatch.setattr(sft_data, "fit_conversation",
                        lambda *a, **kw: seen.append(1) or real(*a, **kw))
    n_rows = len(sft_data.load_tulu_rows("fixtures"))  # 48 synthetic conversations
    cfg = _recipe(tiny_model_dir, task="tulu", sample_fraction=0.25, num_train_examples=None,
                  val_examples=2)
    data = build_training_data(cfg, _tokenizer(tiny_model_dir, tulu=True))
    assert len(data.train) == round(0.25 * n_rows) == 12 and len(data.validation) == 2
    assert len(seen) == 14  # every row fits: nothing past the sample was tokenized
    again = build_training_data(cfg, _tokenizer(tiny_model_dir, tulu=True))
    assert again.sample_hash == data.sample_hash


def test_tuned_and_plain_paths_compute_the_same_loss(tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    """Padding-free batches (amuro's tuned path) vs TRL's padded batches: one loss."""
    losses = {}
    for tuned in (True, False):  # TRL's plain path: --padding_free false --optim adamw_torch
        cfg = _cfg(tiny_model_dir, tmp_path / str(tuned), task="xsum", num_train_examples=8,
                   padding_free=tuned, optim="adamw_torch_fused" if tuned else "adamw_torch")
        trainer, _, _ = _trainer(cfg, tiny_model_dir)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
        assert ("attention_mask" in batch) != tuned
        n_items = int((batch["labels"][..., 1:] != -100).sum())
        trainer.model.eval()
        with torch.no_grad():
            losses[tuned] = float(trainer.compute_loss(trainer.model, batch,
                                                       num_items_in_batch=n_items))
    assert losses[True] == pytest.approx(losses[False], rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------------------- errors first
def test_invalid_options_fail_before_anything_loads(tiny_model_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise AssertionError("loaded a model although the run was invalid")

    monkeypatch.setattr(sft_train, "load_model", boom)
    out = tmp_path / "o"
    with pytest.raises(AmuroConfigError, match="unknown task"):
        run_sft(_cfg(tiny_model_dir, out, task="squad"))
    with pytest.raises(AmuroConfigError, match="format: must be one of default, instruct, io"):
        run_sft(_cfg(tiny_model_dir, out, format="fancy"))
    with pytest.raises(AmuroConfigError, match="must be a number"):
        run_sft(_cfg(tiny_model_dir, out, learning_rate="fast"))
    with pytest.raises(AmuroConfigError, match="local model directory"):
        run_sft(_cfg(tiny_model_dir, out, model_revision="step1000-tokens4B"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(AmuroConfigError, match="output_dir: .*busy is not empty"):
        run_sft(_cfg(tiny_model_dir, tmp_path / "busy"))
    # a row that fails validation, in a local mirror
    mirror = tmp_path / "mirror" / "nyu-mll__glue" / "mnli"
    mirror.mkdir(parents=True)
    rows = [{"premise": "A b.", "hypothesis": "C d.", "label": i % 3, "idx": i}
            for i in range(20)]
    rows[3]["label"] = 7
    (mirror / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AmuroDataError, match="row 3"):
        run_sft(_cfg(tiny_model_dir, out, data_source=str(tmp_path / "mirror"),
                     num_train_examples=None))
    assert not out.exists()
    # the CLI: a learning rate that is not a number is an argparse error (exit 2)
    with pytest.raises(SystemExit) as exc:
        sft_cli.main(["--model_name_or_path", str(tiny_model_dir), "--task", "mnli",
                      "--output_dir", str(out), "--lr_sweep", "2e-6", "abc"])
    assert exc.value.code == 2
    assert sft_cli.main(["--model_name_or_path", str(tiny_model_dir), "--task", "squad",
                         "--output_dir", str(out)]) == 2
    assert not out.exists()


# ----------------------------------------------------------------------------- revisions
class _FakeApi:
    refs = {"main": "a" * 40, "step1000-tokens4B": "b" * 40, "step2000-tokens8B": "c" * 40}

    def model_info(self, repo: str, revision: str = "main"):
        from huggingface_hub.errors import RevisionNotFoundError

        if revision not in self.refs:
            raise RevisionNotFoundError(f"{revision} not found", response=SimpleNamespace(
                headers={}, status_code=404, request=None, url="x"))
        return SimpleNamespace(sha=self.refs[revision])

    def list_repo_refs(self, repo: str):
        return SimpleNamespace(branches=[SimpleNamespace(name=n) for n in self.refs])


def test_revision_resolution_without_a_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    got = sft_hub.resolve_revision("org/model", "step1000-tokens4B")
    assert (got.commit_sha, got.load_revision, got.is_local) == ("b" * 40, "b" * 40, False)
    assert sft_hub.resolve_revision("org/model", None).commit_sha == "a" * 40
    # a bare step resolves to its one branch
    step = sft_hub.resolve_revision("org/model", "step2000")
    assert (step.revision, step.commit_sha) == ("step2000-tokens8B", "c" * 40)
    with pytest.raises(AmuroConfigError, match="step18000.*closest branches: step2000"):
        sft_hub.resolve_revision("org/model", "step18000")
    assert sft_hub.default_branch_name("step1000-tokens4B", "mnli", 2e-6, 42) == \
        "step1000-tokens4B_mnli_lr2e-06_seed42"


def test_dataset_commit_is_resolved_for_the_record_without_a_hub(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit a Hub dataset's ``main`` points to is asked once and recorded (the data is then
    read at it: ``tests/test_sources.py``); when it cannot be asked, the error says so."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    from amuro_tasks.sources import hub_commit

    asked = []

    def info(self, repo_id, revision=None, **kw):
        asked.append((repo_id, revision))
        return SimpleNamespace(sha="c0ffee" * 6 + "abcd")

    monkeypatch.setattr(HfApi, "dataset_info", info)
    hub_commit.cache_clear()
    assert hub_commit("nyu-mll/glue", None) == "c0ffee" * 6 + "abcd"
    assert hub_commit("nyu-mll/glue", None) and asked == [("nyu-mll/glue", "main")]  # memoised

    def offline(self, *a, **kw):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(HfApi, "dataset_info", offline)
    hub_commit.cache_clear()
    with pytest.raises(AmuroDataError, match=r"nyu-mll/glue: cannot resolve revision 'main' on "
                                             r"the Hub \(OfflineModeIsEnabled"):
        hub_commit("nyu-mll/glue", None)
    hub_commit.cache_clear()


def test_hub_model_is_loaded_at_the_resolved_commit(tiny_model_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    import transformers

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    seen = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = cls.from_pretrained.__func__

        def fake(klass, name, *a, _real=real, **kw):
            seen.append((name, kw.get("revision")))
            return _real(klass, str(tiny_model_dir) if name == "org/model" else name, *a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(fake))
    out = run_sft(_cfg("org/model", tmp_path / "hub", model_revision="step1000-tokens4B",
                       max_steps=1))
    assert seen and all(rev == "b" * 40 for name, rev in seen if name == "org/model")
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["revision"] == "step1000-tokens4B"
    assert record["base_commit_sha"] == "b" * 40 and record["base_model"] == "org/model"


# ----------------------------------------------------------------------------- end to end
class _Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Interrupt(f"simulated kill at step {step}")

    return Stop()


@pytest.mark.slow
def test_cli_trains_and_lm_eval_scores_the_output(tiny_model_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from amuro_tasks import include_path

    out = tmp_path / "run"
    assert sft_cli.main(["--model_name_or_path", str(tiny_model_dir), "--task", "mnli",
                         "--output_dir", str(out), "--num_train_examples", "16",
                         "--max_steps", "3", "--learning_rate", "1e-4", "--use_cpu",
                         "--disable_tqdm", "true"]) == 0
    captured = capsys.readouterr()
    assert "amuro-sft finished: mnli/default" in captured.out
    # no progress bar at all (--no-progress): not the Trainer's, datasets' or the weights'
    for bar in ("it/s]", "examples/s]", "Loading weights", "Writing model shards"):
        assert bar not in captured.err, captured.err[-2000:]
    record = json.loads((out / RECORD_NAME).read_text())
    for key in ("base_model", "revision", "base_commit_sha", "task", "format", "seed",
                "libraries", "wall_time_s", "tokens_per_s", "hyperparameters", "losses",
                "sft_config"):
        assert key in record, key
    assert record["data"]["num_train_examples"] == 16 and len(record["data"]["sample_hash"]) == 64
    assert record["data"]["invalid_rows"] == 0 and record["data"]["source"] == "fixtures"
    assert record["data"]["dataset_commit"] is None  # local data: no Hub commit to pin
    hp = record["hyperparameters"]
    assert (hp["learning_rate"], hp["effective_batch_size"], hp["warmup_ratio"]) == \
        (1e-4, 8, 0.03)
    assert hp["lr_scheduler_type"] == "linear" and hp["master_weights_dtype"] == "torch.float32"
    assert record["global_steps"] == 3 and record["train_tokens"] > 0
    assert record["tokens_per_s"] > 0 and record["losses"]["final_train_loss"] > 0
    assert record["libraries"]["trl"] and record["libraries"]["torch"]
    assert (out / "README.md").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "checkpoints").exists() and not (out / IDENTITY_NAME).exists()
    env = {**os.environ, "AMURO_DATA": "fixtures", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
         f"pretrained={out},dtype=float32", "--tasks", "amuro_mnli_matched_default",
         "--include_path", include_path(), "--device", "cpu", "--limit", "4",
         "--output_path", str(tmp_path / "eval")],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (res,) = (tmp_path / "eval").rglob("results_*.json")
    acc = json.loads(res.read_text())["results"]["amuro_mnli_matched_default"]["acc,none"]
    assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_interrupted_run_resumes_then_is_skipped(tiny_model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "resume"
    cfg = _cfg(tiny_model_dir, out, learning_rate=1e-4, save_steps=1)
    with pytest.raises(_Interrupt):
        run_sft(cfg, callbacks=[_interrupt_at(3)])
    assert not (out / RECORD_NAME).exists() and (out / IDENTITY_NAME).exists()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    # the disk filled up while checkpoint-2 was written: its trainer state is empty. It is not
    # trusted (it would fail every rerun with a JSONDecodeError): checkpoint-1 is resumed from
    (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("")
    # a different run may not take over the directory
    with pytest.raises(AmuroConfigError, match="learning_rate"):
        run_sft(_cfg(tiny_model_dir, out, learning_rate=2e-4))
    run_sft(cfg)
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["resumed_from"].endswith("checkpoint-1") and record["global_steps"] == 4
    assert 0 < record["train_tokens_this_session"] < record["train_tokens"]
    # uninterrupted reference: same final weights, and the same losses over the whole run
    ref = run_sft(_cfg(tiny_model_dir, tmp_path / "ref", learning_rate=1e-4))
    from safetensors.torch import load_file

    a, b = load_file(out / "model.safetensors"), load_file(ref / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    ref_losses = json.loads((ref / RECORD_NAME).read_text())["losses"]
    for key in ("mean_train_loss", "first_train_loss", "final_train_loss"):
        assert record["losses"][key] == pytest.approx(ref_losses[key], rel=1e-5), key
    # finished: skipped, nothing rewritten
    stamp = (out / RECORD_NAME).stat().st_mtime_ns
    capsys.readouterr()
    assert run_sft(cfg) == out
    assert "skipped" in capsys.readouterr().out
    assert (out / RECORD_NAME).stat().st_mtime_ns == stamp
    with pytest.raises(AmuroConfigError, match="different finished run"):
        run_sft(_cfg(tiny_model_dir, out, learning_rate=3e-4))

    # pushing a finished run: branch created before upload, token never printed
    import huggingface_hub

    calls = []

    class Api:
        def create_repo(self, repo, **kw):
            calls.append(("create_repo", repo))

        def create_branch(self, repo, branch, **kw):
            calls.append(("create_branch", branch))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw["revision"]))
            if Api.fail:
                raise ConnectionError("the Hub is unreachable")
            return SimpleNamespace(commit_url="https://hub/commit/1")

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_secret_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    push = _cfg(tiny_model_dir, out, learning_rate=1e-4, push_to_hub=True,
                hub_model_id="me/amuro")
    # a push that fails after training: the run is saved, the message says how to retry
    Api.fail = True
    with pytest.raises(AmuroSFTError, match=rf"finished and saved in {out}.*ConnectionError.*"
                                            r"Run the same command again to retry the push"):
        run_sft(push)
    assert "hub" not in json.loads((out / RECORD_NAME).read_text())
    Api.fail, calls[:] = False, []
    run_sft(push)
    branch = "main_mnli_lr0.0001_seed42"
    assert calls == [("create_repo", "me/amuro"), ("create_branch", branch),
                     ("upload_folder", branch)]
    assert json.loads((out / RECORD_NAME).read_text())["hub"]["branch"] == branch
    assert "hf_secret_token" not in capsys.readouterr().out + (out / RECORD_NAME).read_text()


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import SFTTrainer

    real = SFTTrainer.compute_loss

    def poisoned(self, model, inputs, *a, **kw):
        loss = real(self, model, inputs, *a, **kw)
        if self.state.global_step >= 2:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(SFTTrainer, "compute_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="checkpoint-2"):
        run_sft(_cfg(tiny_model_dir, out, learning_rate=1e-4))
    assert not (out / RECORD_NAME).exists()
    ckpt = out / "checkpoints" / "checkpoint-2"
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(ckpt / "model.safetensors").values())
    assert last_good_checkpoint(out / "checkpoints") == ckpt


def test_training_stopped_early_by_a_callback_is_not_recorded_finished(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """A callback that stops the loop (transformers' own on SIGTERM, with enable_jit_checkpoint)
    makes Trainer.train return normally: the run must not be saved as finished."""
    from transformers import TrainerCallback

    class StopAtTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 2
            return control

    out = tmp_path / "stopped"
    with pytest.raises(AmuroSFTError, match="stopped at step 2 of"):
        run_sft(_cfg(tiny_model_dir, out, learning_rate=1e-4), callbacks=[StopAtTwo()])
    assert not (out / RECORD_NAME).exists()


@pytest.mark.slow
def test_lr_sweep_picks_lowest_validation_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, tmp_path / "sweep", task="paws", max_steps=3,
               lr_sweep=[1e-3, 1e-7], val_examples=8)
    best = run_lr_sweep(cfg)
    sweep = json.loads((tmp_path / "sweep" / "amuro_sweep.json").read_text())
    assert [r["learning_rate"] for r in sweep["runs"]] == [1e-3, 1e-7]
    losses = {r["learning_rate"]: r["eval_loss"] for r in sweep["runs"]}
    assert all(v is not None for v in losses.values())
    assert best == Path(sweep["best"]["output_dir"])
    assert sweep["best"]["eval_loss"] == min(losses.values())
    assert best.name == f"lr{min(losses, key=losses.get):g}"
    rec = json.loads((best / RECORD_NAME).read_text())
    assert rec["data"]["num_validation_examples"] == 8


@pytest.mark.slow
def test_lr_sweep_under_two_process_ddp_matches_one_process(tiny_model_dir: Path,
                                                            tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2` (gloo DDP on CPU): every rank finishes the sweep (no rank
    reads a record before rank 0 has written it), the effective batch stays 8 (2 x 2 x 2), and
    the losses are those of one process on the same data."""
    args = ["--model_name_or_path", str(tiny_model_dir), "--task", "paws",
            "--lr_sweep", "1e-3", "1e-5", "--num_train_examples", "16", "--val_examples", "4",
            "--max_steps", "3", "--save_steps", "2", "--per_device_train_batch_size", "2",
            "--use_cpu", "--disable_tqdm", "true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", "-m", "amuro_sft.cli", *args, "--output_dir",
         str(tmp_path / "ddp")],
        capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert sft_cli.main([*args, "--output_dir", str(tmp_path / "one")]) == 0
    for lr in ("0.001", "1e-05"):
        rec = {k: json.loads((tmp_path / k / f"lr{lr}" / RECORD_NAME).read_text())
               for k in ("ddp", "one")}
        hp = rec["ddp"]["hyperparameters"]
        assert (hp["world_size"], hp["gradient_accumulation_steps"]) == (2, 2)
        assert rec["one"]["hyperparameters"]["gradient_accumulation_steps"] == 4
        assert rec["ddp"]["data"]["sample_hash"] == rec["one"]["data"]["sample_hash"]
        for loss in ("final_train_loss", "eval_loss"):
            assert rec["ddp"]["losses"][loss] == pytest.approx(rec["one"]["losses"][loss],
                                                               rel=1e-4)
    sweeps = [json.loads((tmp_path / k / "amuro_sweep.json").read_text()) for k in ("ddp", "one")]
    assert sweeps[0]["best"]["learning_rate"] == sweeps[1]["best"]["learning_rate"] == 1e-3
