"""The libraries' own progress bars, on or off for a block.

``disable_tqdm`` (``--no-progress``) turns off the Trainer's bar only; datasets (map, tokenize,
generate split), transformers (weights loaded and saved) and huggingface_hub draw their own.
Each has an API to switch them; :func:`library_progress_bars` uses them and restores the
previous state afterwards (a study runs many units in one process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def library_progress_bars(enabled: bool) -> Iterator[None]:
    """Within the block, the progress bars of datasets, transformers (weights loaded and saved)
    and huggingface_hub are on or off (``disable_tqdm`` turns the Trainer's off only); their
    previous state is restored afterwards."""
    import datasets
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    switches = [
        (datasets.is_progress_bar_enabled, datasets.enable_progress_bars,
         datasets.disable_progress_bars),
        (hf_logging.is_progress_bar_enabled, hf_logging.enable_progress_bar,
         hf_logging.disable_progress_bar),
        (lambda: not hub_utils.are_progress_bars_disabled(), hub_utils.enable_progress_bars,
         hub_utils.disable_progress_bars),
    ]
    before = [is_on() for is_on, _, _ in switches]
    for _, on, off in switches:
        (on if enabled else off)()
    try:
        yield
    finally:
        for (_, on, off), was_on in zip(switches, before, strict=True):
            (on if was_on else off)()
