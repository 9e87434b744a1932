"""amuro_tasks: the paper's evaluation suite as lm-evaluation-harness tasks.

lm-eval has no entry point for external task packages, so amuro offers three doors:

* ``lm_eval --include_path "$(python -m amuro_tasks path)" --tasks 'amuro_*' ...``
* ``amuro-eval --tasks 'amuro_*' ...`` (``lm_eval`` with the include path added)
* :func:`task_manager` for Python users (``lm_eval.simple_evaluate(task_manager=...)``).

Each task family is declared once, in ``amuro_tasks/families/<family>.py``; the YAMLs, the
fine-tuning examples and ``python -m amuro_tasks export-upstream DIR`` (the tasks as a folder for
upstream lm-eval, :mod:`amuro_tasks.export`) derive from those declarations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amuro_tasks.prompts import FORMATS, render_example, render_prompt

__all__ = ["FORMATS", "include_path", "render_example", "render_prompt", "task_manager"]
__version__ = "0.1.0"


def include_path() -> str:
    """The folder to pass to lm-eval's ``--include_path`` (it ships inside the wheel)."""
    return str(Path(__file__).parent / "task_yamls")


def task_manager(**kwargs: Any) -> Any:
    """An ``lm_eval.tasks.TaskManager`` that knows every ``amuro_*`` task.

    Keyword arguments go to ``TaskManager`` (e.g. ``metadata={"amuro_data": "fixtures"}``);
    an ``include_path`` you pass is searched as well.
    """
    from lm_eval.tasks import TaskManager

    extra = kwargs.pop("include_path", None)
    paths = [include_path()] + ([extra] if isinstance(extra, str) else list(extra or []))
    return TaskManager(include_path=paths, **kwargs)
