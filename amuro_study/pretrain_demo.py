"""Demo pre-training: a tiny OLMo-architecture model trained briefly on the fixture texts.

The offline demo needs intermediate pre-training checkpoints that are real (made by real
training), so it builds a random tiny model with :func:`amuro_tasks.tiny_model.build_tiny_model`,
trains it as a causal LM with ``transformers.Trainer`` on CPU, and saves a full model directory
``step_<k>`` (weights + tokenizer + ``amuro_checkpoint.json``) after each step in
``spec.save_steps``. The step lives in the typed identity (:class:`~amuro_study.plan.Checkpoint`)
and in ``amuro_checkpoint.json``; the directory name is only a location.

Each checkpoint directory is written to a temporary name and renamed into place, so a killed run
never leaves a half-written ``step_<k>``. Training is seeded and deterministic on CPU: a redo
after a kill produces the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from amuro_study.config import PretrainSpec

MARKER = "amuro_checkpoint.json"


def _blocks(tokenizer: Any, texts: list[str], block_size: int) -> list[list[int]]:
    """Concatenate ``texts`` (EOS-separated) and cut them into ``block_size`` token blocks."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    usable = len(ids) - len(ids) % block_size
    return [ids[i:i + block_size] for i in range(0, usable, block_size)]


def _save_checkpoint(model: Any, tokenizer: Any, out: Path, step: int, spec: PretrainSpec,
                     loss: float | None) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(
            {"model": spec.name, "step": step, "train_loss": loss, "spec": asdict(spec)},
            indent=1, default=list) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:  # a full disk, a kill signal raised as an exception: no torn copy
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def pretrain_tiny(spec: PretrainSpec, out_dir: str | Path, data: str | None = None
                  ) -> list[dict[str, Any]]:
    """Pre-train a tiny model per ``spec`` into ``out_dir/step_<k>``; return one dict per
    checkpoint (``step``, ``path``, ``train_loss``). Redoes everything if called again.

    The corpus (and the tokenizer's) is the fixture texts, or with ``spec.world`` the world's
    corpus (:func:`amuro_study.demo_world.corpus`) read from ``data``, where it was written."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        OlmoForCausalLM,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from amuro_tasks.tiny_model import build_tiny_model, fixture_corpus

    out = Path(out_dir)
    init = out / ".init"
    if init.exists():
        shutil.rmtree(init)
    if spec.world is not None:
        from amuro_study.demo_world import corpus

        if data is None:
            raise ValueError("pretrain.world: the world's folder (data) is needed")
        texts = list(corpus(spec.world, data))
    else:
        texts = list(fixture_corpus())
    build_tiny_model(init, corpus=texts, vocab_size=spec.vocab_size,
                     hidden_size=spec.hidden_size, num_layers=spec.num_layers,
                     num_heads=spec.num_heads, seed=spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(init)
    model = OlmoForCausalLM.from_pretrained(init, dtype=torch.float32)
    blocks = _blocks(tokenizer, texts, spec.block_size)
    dataset = Dataset.from_dict({"input_ids": blocks})
    saved: list[dict[str, Any]] = []
    last_loss: dict[str, float | None] = {"loss": None}

    def save(step: int) -> None:
        path = out / f"step_{step}"
        _save_checkpoint(model, tokenizer, path, step, spec, last_loss["loss"])
        saved.append({"step": step, "path": path.name, "train_loss": last_loss["loss"]})

    class SaveAtSteps(TrainerCallback):
        """Save a full model directory at each of ``spec.save_steps``."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                last_loss["loss"] = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step in spec.save_steps:
                save(state.global_step)

    if 0 in spec.save_steps:
        save(0)
    if spec.max_steps > 0:
        args = TrainingArguments(
            output_dir=str(out / ".trainer"), max_steps=spec.max_steps,
            per_device_train_batch_size=spec.batch_size, learning_rate=spec.learning_rate,
            lr_scheduler_type="cosine", warmup_steps=min(5, spec.max_steps // 10),
            weight_decay=0.0, logging_steps=1, save_strategy="no", report_to="none",
            use_cpu=True, seed=spec.seed, data_seed=spec.seed, disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
            callbacks=[SaveAtSteps()],
        )
        trainer.train()
    shutil.rmtree(init, ignore_errors=True)
    shutil.rmtree(out / ".trainer", ignore_errors=True)
    return saved
