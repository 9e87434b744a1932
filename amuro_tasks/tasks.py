"""lm-eval task names and tags, derived from the family declarations and the study's suite.

One task per (evaluation set, prompt format): ``amuro_<set>_<format>``. Tags select slices:
the set (its three formats), the format, the family, a family's format groups (LLMBar's two
sets), and for the ``default`` format the set's roles in the paper's study (:mod:`.suite`).
"""

from __future__ import annotations

from amuro_tasks.families import FAMILIES, get_family
from amuro_tasks.family import FORMATS, DatasetSpec
from amuro_tasks.suite import INSTRUCT_SUITE, study_tags


def task_name(set_name: str, fmt: str) -> str:
    """The lm-eval task name of ``set_name`` in prompt format ``fmt``."""
    return f"amuro_{set_name}_{fmt}"


def task_tags(spec: DatasetSpec, fmt: str) -> list[str]:
    """Tags of one task: its set, its format, its family and (default format) its study roles."""
    family = get_family(spec.family)
    tags = [f"amuro_{spec.name}", f"amuro_{fmt}", family.tag]
    tags += [task_name(group, fmt) for group, members in family.format_groups.items()
             if spec.name in members]
    if fmt == "default":
        tags += study_tags(spec.name)
        if spec.name in INSTRUCT_SUITE:
            tags.append("amuro_instruct_suite")
    return list(dict.fromkeys(tags))  # a family of one set shares the set's tag


def all_tasks() -> list[tuple[DatasetSpec, str]]:
    """Every (set, format) pair, in declaration order."""
    return [(spec, fmt) for family in FAMILIES for spec in family.specs for fmt in FORMATS]
