"""The evaluation sets by name: where each lives and how its rows become docs.

Each set is declared once, in its family's file (``amuro_tasks/families/<family>.py``); this
module indexes them (:data:`SPECS`, :func:`get_spec`). A :class:`DatasetSpec` names the real
Hugging Face dataset (id, config, revision, splits) and a ``normalize`` function
(:mod:`amuro_tasks.rows`) that turns one raw row, in the dataset's own schema, into a *doc*: the
family's prompt fields plus ``target`` (the verbalised answer) and, for choice tasks, ``label``
(gold index) and ``choices`` (the verbalised options). ``normalize`` validates as it goes and
raises :class:`~amuro_tasks.errors.AmuroDataError` naming the set, split and row on hidden labels
(``-1``/``None``), missing fields and empty inputs.
"""

from __future__ import annotations

from amuro_tasks.families import SPECS, get_spec
from amuro_tasks.family import DatasetSpec, EvalSet
from amuro_tasks.rows import Doc, Row, class_label, text

__all__ = ["SPECS", "DatasetSpec", "Doc", "EvalSet", "Row", "class_label", "get_spec", "text"]
