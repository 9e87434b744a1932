"""The provenance record (``amuro_run.json``), the run identity and the model card.

``amuro_run.json`` is written atomically (:mod:`amuro_sft.atomic`) and only after the model is
saved: its presence marks a finished run. While a run is under way, ``amuro_run_args.json`` holds
its identity (the recipe's identity, :meth:`amuro_sft.recipe.SFTRecipe.identity`, plus the base
checkpoint's commit or fingerprint), so a re-run of the same recipe resumes and a different run
in the same directory is refused.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_NAME = "amuro_run.json"
IDENTITY_NAME = "amuro_run_args.json"
SCHEMA_VERSION = 1

LIBRARIES = ("amuro", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers",
             "huggingface_hub", "lm_eval", "flash_attn", "liger_kernel", "deepspeed")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a run (``None``: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = None
    return out


def git_commit() -> str | None:
    """The amuro source commit (``None`` outside a git checkout)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def hardware() -> dict[str, Any]:
    """Device names and counts."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus_visible"] = torch.cuda.device_count()
    info["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    return info


def run_identity(recipe_identity: dict[str, Any], checkpoint_id: str | None) -> dict[str, Any]:
    """What defines a run: the recipe's identity plus the base checkpoint's commit hash (Hub)
    or fingerprint (local directory), as canonical JSON values."""
    ident = {**recipe_identity, "base_commit_sha": checkpoint_id}
    return json.loads(json.dumps(ident, sort_keys=True, default=str))


def identity_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two identities."""
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def command_line() -> str:
    return " ".join(sys.argv)


def model_card(record: dict[str, Any]) -> str:
    """A README.md for the output directory (and the hub branch)."""
    base, task = record["base_model"], record["task"]
    hp = record["hyperparameters"]
    rev = record.get("revision") or "(default)"
    sha = record.get("base_commit_sha") or "(local directory)"
    dataset = record["data"]["dataset"]
    source = record["data"].get("source", "hub")
    if source == "hub":
        data_line = f"data `{dataset}`"
    elif source == "fixtures":
        data_line = f"amuro's synthetic test fixtures in the schema of `{dataset}` (not its rows)"
    else:
        data_line = f"a local mirror `{source}` of `{dataset}`"
    losses = record.get("losses", {})
    lines = [
        "---",
        f"base_model: {base}" if not record.get("base_is_local") else "base_model: local",
        "library_name: transformers",
        "tags: [amuro, sft, trl]",
        *([f"datasets: [{dataset}]"] if source == "hub" else []),
        "---",
        "",
        f"# {Path(base).name} @ {rev}, fine-tuned on {task}",
        "",
        "Trained with `amuro-sft` (TRL `SFTTrainer`), reproducing the fine-tuning recipe of "
        "Sun & Dredze, *Amuro & Char* (§3.2, Appendix A).",
        "",
        f"- Base model: `{base}`, revision `{rev}`, commit `{sha}`",
        f"- Task: `{task}` (prompt format `{record['format']}`), {data_line} "
        f"({record['data']['num_train_examples']} examples, sample sha256 "
        f"`{record['data']['sample_hash'][:16]}…`)",
        f"- Learning rate {hp['learning_rate']:g}, {hp['num_train_epochs']:g} epochs, effective "
        f"batch size {hp['effective_batch_size']}, AdamW, {hp['lr_scheduler_type']} schedule, "
        f"warm-up ratio {hp['warmup_ratio']}, weight decay {hp['weight_decay']}, seed "
        f"{record['seed']}",
        f"- Final training loss {losses.get('final_train_loss')}, mean training loss "
        f"{losses.get('mean_train_loss')}, validation loss {losses.get('eval_loss')}",
        f"- {record['train_tokens']} training tokens in {record['wall_time_s']:.1f} s "
        f"({record['tokens_per_s']:.1f} tokens/s)",
        "",
        "Everything else (library versions, every hyper-parameter) is in `amuro_run.json`.",
        "",
    ]
    if task != "tulu":
        lines += [
            "Evaluate with the matching amuro task, e.g.:",
            "",
            "```",
            "lm_eval --model hf --model_args pretrained=<this dir> --include_path "
            "<amuro_tasks/task_yamls> --tasks amuro_<set>_" + record["format"],
            "```",
            "",
        ]
    return "\n".join(lines)
