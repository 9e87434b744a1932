"""TULU's empty messages, as the paper's pipeline treated them (open-instruct's TULU-2-era
``finetune.py``, copied in the authors' release): kept; an empty assistant turn trains on its EOS
only; a conversation with no trainable token is dropped; an empty message list is an error."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from amuro_sft import hub as sft_hub
from amuro_sft import train as sft_train
from amuro_sft.data import TULU_FIXTURE_KEY, build_training_data, empty_turns
from amuro_sft.recipe import recipe_from_options
from amuro_tasks.errors import AmuroDataError
from amuro_tasks.loading import FIXTURE_DIR, shuffled_order

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_fixtures_tulu  # noqa: E402


def _fixture_rows() -> list[dict]:
    path = FIXTURE_DIR / TULU_FIXTURE_KEY / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _recipe(model: Path, **kw):
    return recipe_from_options({"model_name_or_path": str(model), "task": "tulu",
                                "output_dir": str(kw.pop("out", "x")), "use_cpu": True, **kw})


def _tokenizer(model: Path):
    return sft_train.load_tokenizer(_recipe(model), sft_hub.resolve_revision(str(model), None))


def _mirror(root: Path, rows: list[dict]) -> str:
    path = root / TULU_FIXTURE_KEY / "train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(root)


def test_the_fixture_carries_the_real_empty_turns() -> None:
    roles = [r for row in _fixture_rows() for r in empty_turns(row["messages"])]
    assert {"system", "user", "assistant"} <= set(roles)


def test_empty_turns_are_kept_and_counted(tiny_model_dir: Path) -> None:
    """Before: the first empty message aborted the fine-tune (``on_invalid: error``)."""
    rows = _fixture_rows()
    recipe = _recipe(tiny_model_dir, num_train_examples=None, val_examples=0)
    data = build_training_data(recipe, _tokenizer(tiny_model_dir))
    assert len(data.train) == len(rows)  # nothing dropped
    want = {r: sum(empty_turns(row["messages"]).count(r) for row in rows)
            for r in ("system", "user", "assistant")}
    assert data.stats["empty_turns_by_role"] == want and min(want.values()) > 0
    assert data.stats["conversations_with_empty_turns"] == sum(
        bool(empty_turns(row["messages"])) for row in rows)
    assert data.stats["invalid_rows"] == data.stats["dropped_no_trainable_token"] == 0
    kept = [m for ex in data.train for m in ex["messages"] if not m["content"]]
    assert len(kept) == sum(want.values())  # in the training examples, unchanged


def test_an_empty_assistant_turn_trains_on_its_eos_only(tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    row = next(r for r in _fixture_rows() if "assistant" in empty_turns(r["messages"]))
    source = _mirror(tmp_path / "m", [row] * 8)
    recipe = _recipe(tiny_model_dir, out=tmp_path / "out", data_source=source,
                     num_train_examples=8, val_examples=0)
    tok = _tokenizer(tiny_model_dir)
    data = build_training_data(recipe, tok)
    trainer = sft_train._make_trainer_class()(
        model=sft_train.load_model(recipe, sft_hub.resolve_revision(str(tiny_model_dir), None)),
        args=sft_train.build_sft_config(recipe, tmp_path / "ckpt"), train_dataset=data.train,
        processing_class=tok)
    example = trainer.train_dataset[0]
    trained = [t for t, lab in zip(example["input_ids"], example["labels"], strict=True)
               if lab != -100]
    replies = [m["content"] + tok.eos_token for m in row["messages"] if m["role"] == "assistant"]
    assert tok.decode(trained) == "".join(replies)
    assert replies[-1] == tok.eos_token  # the empty reply: its EOS is trained on


def test_an_empty_message_list_is_an_error_and_an_untrainable_conversation_is_dropped(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = _fixture_rows()[:20]
    rows[3] = {**rows[3], "messages": []}
    rows[5] = {**rows[5], "messages": [m for m in rows[5]["messages"] if m["role"] != "assistant"]}
    source = _mirror(tmp_path, rows)
    tok = _tokenizer(tiny_model_dir)
    recipe = _recipe(tiny_model_dir, data_source=source, num_train_examples=None, val_examples=0)
    with pytest.raises(AmuroDataError, match=r"tulu/train row 3 \(id '\w+_3'\): 'messages' is an "
                                             r"empty list .*pass --on_invalid skip"):
        build_training_data(recipe, tok)
    data = build_training_data(recipe.with_options(on_invalid="skip"), tok)
    assert len(data.train) == 18
    assert data.stats["invalid_rows_by_kind"] == {"empty conversation": 1}
    assert data.stats["dropped_no_trainable_token"] == 1
    assert data.stats["data_read"]["source"] == "mirror"


@pytest.mark.slow
def test_a_6000_conversation_sample_with_empty_turns_trains_from_a_study(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """The paper's sample size from a 6,400-conversation mixture with the real data's empty
    turns planted in it (and two empty message lists, dropped with ``on_invalid: skip``), through
    the study: the fine-tune trains, and ``amuro_run.json`` counts what it met."""
    from amuro_study.config import parse_config
    from amuro_study.plan import build_plan
    from amuro_study.runner import DONE, execute_unit

    rng = random.Random(7)
    rows = [{"dataset": "sharegpt", "id": f"sharegpt_{i}",
             "messages": make_fixtures_tulu.conversation(rng)} for i in range(6400)]
    sample = shuffled_order(len(rows), 11)[:6000]
    planted = {"system": sample[10:14], "user": sample[20:26], "assistant": sample[30:35]}
    for role, where in planted.items():
        for i in where:
            messages = rows[i]["messages"]
            if role == "system":
                messages.insert(0, {"role": "system", "content": ""})
            else:
                next(m for m in messages if m["role"] == role)["content"] = ""
    for i in sample[40:42]:
        rows[i]["messages"] = []
    source = _mirror(tmp_path / "mirror", rows)
    config = {
        "output_dir": str(tmp_path / "study"), "model": str(tiny_model_dir), "revisions": ["main"],
        "data": source, "eval": {"sets": ["boolq"], "limit": 1},
        "finetune": {"tasks": ["tulu"], "learning_rate": 1e-4, "num_train_examples": 6000,
                     "on_invalid": "skip", "sample_seed": 11, "val_examples": 0,
                     "max_steps": 1, "effective_batch_size": 8, "max_length": 256},
    }
    plan = build_plan(parse_config(config))
    (unit,) = plan.finetunes
    outcome = execute_unit(plan, unit.uid)
    assert outcome.status == DONE, outcome.error
    record = json.loads((plan.finetuned_model_dir(unit) / "amuro_run.json").read_text())
    data = record["data"]
    assert data["num_train_examples"] == 6000
    assert data["invalid_rows_by_kind"] == {"empty conversation": 2}
    assert data["empty_turns_by_role"] == {r: len(w) for r, w in planted.items()}
    assert data["conversations_with_empty_turns"] == 15
    assert data["data_read"]["source"] == "mirror"
