"""The registry of amuro's task families: one module per family, listed here, nothing else.

Each module declares one :class:`~amuro_tasks.family.Family` (prompts in the three formats,
evaluation sets, tag, scoring kind, truncation field, default shots). This package only lists
them and indexes their sets; the task YAMLs (:mod:`amuro_tasks.yaml_gen`), the upstream export
(:mod:`amuro_tasks.export`), ``amuro-sft`` and the study read these declarations.

Adding a family: write ``amuro_tasks/families/<name>.py`` with a ``FAMILY``, add it to
:data:`FAMILIES`, then run ``python -m amuro_tasks.yaml_gen``.
"""

from __future__ import annotations

from types import MappingProxyType

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.families import (
    arc,
    boolq,
    hellaswag,
    llmbar,
    nli,
    openbookqa,
    paraphrase,
    qgen,
    sciq_mc,
    summarization,
)
from amuro_tasks.family import DatasetSpec, Family

FAMILIES: tuple[Family, ...] = (
    # the paper's four fine-tuning tasks (Table 1)
    nli.FAMILY, paraphrase.FAMILY, summarization.FAMILY, qgen.FAMILY,
    # the instruction-tuning evaluation suite (§3.3) and LLMBar
    arc.FAMILY, openbookqa.FAMILY, hellaswag.FAMILY, boolq.FAMILY, sciq_mc.FAMILY, llmbar.FAMILY,
)


def _index() -> tuple[dict[str, Family], dict[str, DatasetSpec]]:
    families: dict[str, Family] = {}
    specs: dict[str, DatasetSpec] = {}
    for family in FAMILIES:
        if family.name in families:
            raise AmuroConfigError(f"task family {family.name!r} is declared twice")
        families[family.name] = family
        for spec in family.specs:
            if spec.name in specs:
                raise AmuroConfigError(f"evaluation set {spec.name!r} is declared twice")
            specs[spec.name] = spec
    return families, specs


_FAMILIES, _SPECS = _index()
FAMILIES_BY_NAME: MappingProxyType[str, Family] = MappingProxyType(_FAMILIES)
"""Family name -> declaration (read-only)."""
SPECS: MappingProxyType[str, DatasetSpec] = MappingProxyType(_SPECS)
"""Evaluation set name -> its declaration bound to its family (read-only), in family order."""


def get_family(name: str) -> Family:
    """The family ``name``, or a clear error listing the known families."""
    try:
        return FAMILIES_BY_NAME[name]
    except KeyError:
        raise AmuroConfigError(
            f"unknown prompt family {name!r}; known: {sorted(FAMILIES_BY_NAME)}"
        ) from None


def get_spec(name: str) -> DatasetSpec:
    """The spec of evaluation set ``name``, or a clear error listing the known sets."""
    try:
        return SPECS[name]
    except KeyError:
        raise AmuroConfigError(
            f"unknown evaluation set {name!r}; known sets: {', '.join(sorted(SPECS))}"
        ) from None
