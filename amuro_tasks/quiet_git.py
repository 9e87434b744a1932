"""lm-eval's ``git_hash`` without git's complaint on the terminal.

lm-eval 0.4 records the git commit of the working directory in every result (``git_hash``) by
running ``git describe --always`` with git's stderr left on the terminal, so outside a git
checkout every evaluation prints ``fatal: not a git repository``. :func:`quiet_git_hash` makes
lm-eval ask git the same question with git's stderr captured, for the duration of a ``with``
block (the answer, and lm-eval's fallback, are unchanged). Hand-written: lm-eval has no option
for it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator


def git_describe() -> str | None:
    """What lm-eval's ``get_git_commit_hash`` returns, without printing git's errors."""
    try:
        done = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    from lm_eval.loggers.utils import get_commit_from_path

    return get_commit_from_path(os.getcwd())


@contextlib.contextmanager
def quiet_git_hash() -> Iterator[None]:
    """Within the block, lm-eval takes its ``git_hash`` from :func:`git_describe`."""
    from lm_eval import evaluator

    original = evaluator.get_git_commit_hash
    evaluator.get_git_commit_hash = git_describe
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original
