"""A stop request (what a cluster job's signal handler makes) checkpoints a fine-tune at the next
step boundary; the next run resumes from that checkpoint and ends with the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from amuro_sft import preemption, recipe_from_options, run_sft
from amuro_sft.atomic import read_json
from amuro_sft.checkpoints import last_good_checkpoint
from amuro_sft.provenance import RECORD_NAME
from amuro_sft.train import CHECKPOINT_DIR


def test_stop_request_outside_training_is_refused() -> None:
    preemption.reset()
    assert preemption.request_stop("test") is False  # no loop to honour it
    assert preemption.stop_requested() == "test"
    preemption.reset()
    assert preemption.stop_requested() is None


@pytest.mark.slow
def test_stop_request_checkpoints_and_the_next_run_resumes(tiny_model_dir: Path,
                                                           tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class SignalDuringStep(TrainerCallback):
        """Request a stop while step 3 runs, as a signal handler would."""

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                assert preemption.request_stop("job got SIGUSR2") is True
            return control

    cfg = recipe_from_options({
        "model_name_or_path": str(tiny_model_dir), "task": "mnli",
        "output_dir": str(tmp_path / "run"), "learning_rate": 1e-3, "num_train_examples": 24,
        "max_steps": 8, "max_length": 512, "use_cpu": True, "disable_tqdm": True})
    with pytest.raises(preemption.TrainingPreempted, match="step 3 of 8"):
        run_sft(cfg, callbacks=[SignalDuringStep()])
    ckpt = last_good_checkpoint(tmp_path / "run" / CHECKPOINT_DIR)
    assert ckpt is not None and ckpt.name == "checkpoint-3"
    assert not (tmp_path / "run" / RECORD_NAME).exists()  # not finished

    out = run_sft(cfg)  # the requeued job: resumes
    record = read_json(out / RECORD_NAME)
    assert record["resumed_from"] == str(ckpt) and record["global_steps"] == 8

    reference = run_sft(cfg.with_options(output_dir=str(tmp_path / "reference")))
    assert (out / "model.safetensors").read_bytes() == \
        (reference / "model.safetensors").read_bytes()
