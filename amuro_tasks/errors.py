"""Exceptions raised by amuro_tasks."""

from __future__ import annotations

from amuro_tasks.rows import AmuroDataError

__all__ = ["AmuroConfigError", "AmuroDataError"]


class AmuroConfigError(ValueError):
    """An option given to amuro (task, format, metadata key, scoring mode) is invalid."""
