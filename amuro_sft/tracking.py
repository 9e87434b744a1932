"""Experiment trackers (``--report_to tensorboard``/``wandb``/...): the run's provenance in each.

transformers' integrations log TRL's arguments and the model config when training begins; they
do not know amuro's provenance (task, base revision and commit, training sample hash, recipe
identity, library versions). :class:`ProvenanceCallback` adds it, after the integrations have
started: as a text entry (JSON) in TensorBoard, in the run config of W&B, as run parameters of
MLflow. Trackers amuro does not know get TRL's arguments only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("amuro")

TAG = "amuro_provenance"
"""Name of the provenance entry in each tracker."""


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = "none" if value is None else value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def add_provenance_callback(trainer: Any, provenance: dict[str, Any]) -> None:
    """Add a callback to ``trainer`` (after its tracker integrations, so it runs after them)
    that writes ``provenance`` to every tracker the trainer reports to."""
    from transformers import TrainerCallback

    class ProvenanceCallback(TrainerCallback):
        """Write amuro's provenance into each tracker's config once training begins."""

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            for callback in trainer.callback_handler.callbacks:
                self._write(callback)

        def _write(self, callback: Any) -> None:
            name = type(callback).__name__
            try:
                if name == "TensorBoardCallback" and getattr(callback, "tb_writer", None):
                    text = "```json\n" + json.dumps(provenance, indent=2, default=str) + "\n```"
                    callback.tb_writer.add_text(TAG, text)
                    callback.tb_writer.flush()
                elif name == "WandbCallback":
                    import wandb

                    if wandb.run is not None:
                        wandb.run.config.update({TAG: provenance}, allow_val_change=True)
                elif name == "MLflowCallback":
                    import mlflow

                    params = _flat(provenance, f"{TAG}/")
                    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            except Exception as err:  # noqa: BLE001 - a tracker must never stop training
                log.warning("could not write the provenance to %s: %s", name, err)

    trainer.add_callback(ProvenanceCallback())
