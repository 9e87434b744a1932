"""``amuro-sft``: fine-tune a (revision of a) checkpoint on an amuro task, with TRL's flags.

The options are TRL's (``SFTConfig``, ``ModelConfig``: ``--model_name_or_path``,
``--model_revision``, ``--output_dir``, ``--learning_rate``, ``--num_train_epochs``,
``--per_device_train_batch_size``, ``--use_cpu``, ``--report_to``, ``--push_to_hub``,
``--hub_model_id``, ...) with the paper's recipe as defaults, plus amuro's (``--task``,
``--format``, ``--lr_sweep``, ``--num_train_examples``, ...). ``--config recipe.yaml`` reads any
of them from a file; flags override it.

Examples::

    amuro-sft --model_name_or_path allenai/OLMo-1B-hf --model_revision step342000 \\
        --task mnli --output_dir runs/olmo1b-342k-mnli
    amuro-sft --config examples/sft_mnli.yaml --output_dir runs/mnli
    amuro-sft --model_name_or_path allenai/OLMo-1B-hf --task xsum \\
        --lr_sweep 2e-5 2e-6 2e-7 --output_dir runs/sweep-xsum     # best on validation
    accelerate launch --config_file <trl>/accelerate_configs/multi_gpu.yaml \\
        -m amuro_sft.cli --config recipe.yaml                       # DDP / FSDP / ZeRO
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from amuro_tasks.errors import AmuroConfigError, AmuroDataError

DEPRECATED_UNTIL = "amuro 0.3"
"""The release that stops accepting the old (amuro 0.1) flag spellings."""

def _renamed_flags() -> dict[str, str]:
    """Old flag -> its TRL-style replacement (same value)."""
    from amuro_sft.recipe import RENAMED_OPTIONS

    out = {f"--{old.replace('_', '-')}": f"--{new}" for old, new in RENAMED_OPTIONS.items()
           if old not in ("lr", "cpu")}  # --lr takes several values, --cpu none: below
    # amuro's sample seed was --data-seed; TRL's --data_seed (same dash spelling) orders batches
    out["--data-seed"] = "--sample_seed"
    return out
#: old switch -> TRL-style flags
_SWITCHES: dict[str, list[str]] = {
    "--cpu": ["--use_cpu"],
    "--no-progress": ["--disable_tqdm", "true"],
    "--no-bf16": ["--bf16", "false"],
    "--plain": ["--padding_free", "false", "--optim", "adamw_torch"],
}
_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "t", "f", "y", "n"}


def _values(argv: list[str], i: int) -> list[str]:
    out = []
    for arg in argv[i + 1:]:
        if arg.startswith("--"):
            break
        out.append(arg)
    return out


def translate_legacy(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rewrite amuro 0.1's flag spellings as TRL's; return ``(argv, deprecation messages)``.

    Flags that only changed ``-`` to ``_`` need no rewriting (``TrlParser`` accepts both);
    ``--data-seed`` is amuro's sample seed here, not TRL's ``--data_seed``."""
    argv = list(argv)
    renamed = _renamed_flags()
    out: list[str] = []
    notes: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=")
        if flag in renamed:
            new = renamed[flag]
            notes.append(f"{flag} is deprecated, use {new}")
            out.append(new + (f"={inline}" if eq else ""))
        elif flag in _SWITCHES and not eq:
            notes.append(f"{flag} is deprecated, use {' '.join(_SWITCHES[flag])}")
            out += _SWITCHES[flag]
        elif flag in ("--lr", "--learning-rate") and not eq:
            values = _values(argv, i)
            if flag == "--learning-rate" and len(values) == 1:
                out += [arg, *values]  # TRL's own dash spelling of --learning_rate
            elif len(values) == 1:
                notes.append("--lr is deprecated, use --learning_rate")
                out += ["--learning_rate", *values]
            else:
                notes.append(f"{flag} with several rates is deprecated, use --lr_sweep")
                out += ["--lr_sweep", *values]
            i += 1 + len(values)
            continue
        elif flag == "--push-to-hub" and not eq and _values(argv, i)[:1] \
                and _values(argv, i)[0].lower() not in _BOOL_WORDS:
            repo = _values(argv, i)[0]
            notes.append("--push-to-hub REPO is deprecated, use --push_to_hub "
                         "--hub_model_id REPO")
            out += ["--push_to_hub", "--hub_model_id", repo]
            i += 2
            continue
        elif flag in ("--num-train-examples", "--num_train_examples") \
                and _values(argv, i)[:1] == ["all"]:
            notes.append(f"{flag} all is deprecated, use {flag} none")
            out += [flag, "none"]
            i += 2
            continue
        else:
            out.append(arg)
        i += 1
    return out, [f"{n} (the old spelling is accepted until {DEPRECATED_UNTIL})" for n in notes]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``amuro-sft``; returns the exit status."""
    from amuro_sft.config import AmuroSFTError, RecipeError
    from amuro_sft.recipe import main_error, make_parser, parse_cli

    args, notes = translate_legacy(sys.argv[1:] if argv is None else argv)
    for note in notes:
        print(f"amuro-sft: warning: {note}", file=sys.stderr)
    parser = make_parser(description=__doc__)
    try:
        recipe, extra = parse_cli(args, parser)
    except RecipeError as err:
        return main_error(err)
    except ValueError as err:  # TRL's / transformers' own checks of their options
        print(f"amuro-sft: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if extra.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from amuro_sft.train import run_lr_sweep, run_sft

    try:
        if recipe.args.lr_sweep:
            run_lr_sweep(recipe)
        else:
            run_sft(recipe)
    except RecipeError as err:
        return main_error(err)
    except (AmuroConfigError, AmuroDataError, AmuroSFTError) as err:
        print(f"amuro-sft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
