"""One process of a multi-GPU fine-tune.

``accelerate launch -m amuro_study.sft_worker OPTIONS.json``: the study runner starts it, and
every process runs the same ``run_sft`` call."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run ``amuro_sft.run_sft`` with the ``SFTRunConfig`` keyword arguments in a JSON file."""
    from amuro_sft import SFTRunConfig, run_sft

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m amuro_study.sft_worker OPTIONS.json", file=sys.stderr)
        return 2
    options = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    run_sft(SFTRunConfig(**options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
