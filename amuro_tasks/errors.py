"""Exceptions raised by amuro_tasks."""

from __future__ import annotations


class AmuroDataError(ValueError):
    """A dataset row (or a whole split) cannot be used for evaluation or training.

    The message always names the evaluation set, the split and, where it applies, the row.
    """


class AmuroConfigError(ValueError):
    """An option given to amuro (task, format, metadata key, scoring mode) is invalid."""
