"""The provenance record (``amuro_run.json``), the run identity and the model card.

``amuro_run.json`` is written atomically (temp file + ``os.replace``) and only after the model is
saved: its presence marks a finished run. While a run is under way, ``amuro_run_args.json`` holds
its identity (the options that define what is trained), so a re-run with the same arguments
resumes and a different run in the same directory is refused.
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

#: Options that do not change what a run computes (they may differ between a run and its resume).
NON_IDENTITY_KEYS = frozenset({
    "output_dir", "push_to_hub", "hub_branch", "save_steps", "logging_steps", "keep_checkpoints",
    "disable_tqdm", "use_cpu",
})

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


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temp file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or ``None`` if there is none."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def run_identity(options: dict[str, Any], commit_sha: str | None) -> dict[str, Any]:
    """What defines a run: its options minus :data:`NON_IDENTITY_KEYS`, plus the base commit."""
    ident = {k: v for k, v in options.items() if k not in NON_IDENTITY_KEYS}
    ident["base_commit_sha"] = commit_sha
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
    losses = record.get("losses", {})
    lines = [
        "---",
        f"base_model: {base}" if not record.get("base_is_local") else "base_model: local",
        "library_name: transformers",
        "tags: [amuro, sft, trl]",
        f"datasets: [{dataset}]",
        "---",
        "",
        f"# {Path(base).name} @ {rev}, fine-tuned on {task}",
        "",
        "Trained with `amuro-sft` (TRL `SFTTrainer`), reproducing the fine-tuning recipe of "
        "Sun & Dredze, *Amuro & Char* (§3.2, Appendix A).",
        "",
        f"- Base model: `{base}`, revision `{rev}`, commit `{sha}`",
        f"- Task: `{task}` (prompt format `{record['format']}`), data `{dataset}` "
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
