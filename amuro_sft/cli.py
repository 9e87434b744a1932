"""``amuro-sft``: fine-tune a (revision of a) checkpoint on an amuro task.

Examples::

    amuro-sft --model allenai/OLMo-1B-hf --revision step342000-tokens1434B --task mnli \\
        --output-dir runs/olmo1b-342k-mnli
    amuro-sft --model allenai/OLMo-1B-hf --revision step342000 --task xsum \\
        --lr 2e-5 2e-6 2e-7 --output-dir runs/sweep-xsum        # sweep, best on validation
    accelerate launch --config_file <trl>/accelerate_configs/multi_gpu.yaml \\
        -m amuro_sft.cli --model ... --task paws --output-dir ...  # DDP / FSDP / ZeRO
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

from amuro_tasks.errors import AmuroConfigError, AmuroDataError
from amuro_tasks.prompts import FORMATS

TASK_CHOICES = ("mnli", "paws", "xsum", "socialiqa", "tulu")


def _lr(value: str) -> float:
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rate must be a number, got {value!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise argparse.ArgumentTypeError(f"learning rate must be finite and > 0, got {value!r}")
    return lr


def _count(value: str) -> int | None:
    if value.lower() in ("all", "none"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {value!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amuro-sft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="hub id or local directory of the base model")
    p.add_argument("--revision", default=None,
                   help="hub branch/tag/commit, e.g. step342000-tokens1434B (a step prefix such "
                        "as step342000 resolves to its branch); not with a local directory")
    p.add_argument("--task", required=True, help=f"one of {', '.join(TASK_CHOICES)}")
    p.add_argument("--format", default="default", help=f"prompt format: {', '.join(FORMATS)}")
    p.add_argument("--lr", "--learning-rate", dest="lr", nargs="+", type=_lr, default=None,
                   help="learning rate; several = sweep, best on a held-out validation slice "
                        "(default: the paper's pick for the task)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-seed", type=int, default=42, help="seed of the 6,000-row sample")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--push-to-hub", metavar="REPO", default=None,
                   help="upload the finished run to this hub repo (never without this flag)")
    p.add_argument("--hub-branch", default=None,
                   help="branch name (default: <revision>_<task>_lr<lr>_seed<seed>)")
    p.add_argument("--num-train-examples", type=_count, default=6000,
                   help="training examples (default 6000; 'all' for every row)")
    p.add_argument("--sample-fraction", type=float, default=None,
                   help="tulu only: fraction of rows instead (the authors' release: 0.05)")
    p.add_argument("--val-examples", type=int, default=None,
                   help="validation rows held out from the training split (sweep default 500)")
    p.add_argument("--epochs", type=float, default=None, help="default 3 (tulu 5)")
    p.add_argument("--effective-batch-size", type=int, default=8)
    p.add_argument("--per-device-batch-size", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--data-source", default=None,
                   help="hub (default), fixtures, or a local mirror directory ($AMURO_DATA)")
    p.add_argument("--on-invalid", choices=("error", "skip"), default="error",
                   help="training rows that fail validation: stop (default) or drop")
    p.add_argument("--save-steps", type=int, default=250)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--plain", action="store_true",
                   help="TRL's per-example padding instead of amuro's padding-free batches")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--attn-implementation", default=None)
    p.add_argument("--no-bf16", action="store_true", help="no bf16 autocast on GPU")
    p.add_argument("--cpu", action="store_true", help="train on CPU even if a GPU is visible")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``amuro-sft``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from amuro_sft.config import AmuroSFTError, SFTRunConfig
    from amuro_sft.train import run_lr_sweep, run_sft

    lrs = args.lr or [None]
    cfg = SFTRunConfig(
        model=args.model, task=args.task, output_dir=args.output_dir, revision=args.revision,
        format=args.format, learning_rate=lrs[0], seed=args.seed, data_seed=args.data_seed,
        num_train_examples=args.num_train_examples, sample_fraction=args.sample_fraction,
        epochs=args.epochs, effective_batch_size=args.effective_batch_size,
        per_device_batch_size=args.per_device_batch_size, max_steps=args.max_steps,
        max_length=args.max_length, data_source=args.data_source, push_to_hub=args.push_to_hub,
        hub_branch=args.hub_branch, trust_remote_code=args.trust_remote_code,
        val_examples=args.val_examples or 0, on_invalid=args.on_invalid,
        save_steps=args.save_steps, logging_steps=args.logging_steps,
        keep_checkpoints=args.keep_checkpoints, tuned=not args.plain,
        gradient_checkpointing=args.gradient_checkpointing,
        attn_implementation=args.attn_implementation, bf16=False if args.no_bf16 else None,
        use_cpu=args.cpu, disable_tqdm=args.no_progress,
    )
    try:
        if len(lrs) > 1:
            run_lr_sweep(cfg, lrs, val_examples=args.val_examples)
        else:
            run_sft(cfg)
    except (AmuroConfigError, AmuroDataError, AmuroSFTError) as err:
        print(f"amuro-sft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
