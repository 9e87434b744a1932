"""Rendering the prompt templates, for evaluation *and* fine-tuning.

The templates themselves live in the family declarations (``amuro_tasks/families/<family>.py``,
``FAMILY.prompts``). Every amuro task renders its prompt through :func:`render_prompt`,
``amuro_sft`` renders its training examples through :func:`render_example`, and the upstream
export writes the same template strings as lm-eval ``doc_to_text`` Jinja, so an evaluation prompt
and a training prompt for the same row can never drift apart.

Templates are Jinja, rendered in a sandbox with ``StrictUndefined``: a missing field is an error,
never an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.families import FAMILIES_BY_NAME, get_family
from amuro_tasks.family import FORMATS

__all__ = ["FORMATS", "PROMPTS", "TARGET_DELIMITER", "compile_template", "render_completion",
           "render_example", "render_prompt"]

TARGET_DELIMITER = " "
"""Separates a prompt from its completion, in few-shot examples, evaluation and training alike."""

#: family -> format -> Jinja template of the prompt (a read-only view of the declarations).
PROMPTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    name: MappingProxyType(family.prompts.as_dict()) for name, family in FAMILIES_BY_NAME.items()
})

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def compile_template(source: str) -> Template:
    """A prompt template compiled in amuro's sandboxed, ``StrictUndefined`` environment."""
    return _ENV.from_string(source)


@cache
def _compiled(family: str, fmt: str) -> Template:
    templates = get_family(family).prompts
    if fmt not in FORMATS:
        raise AmuroConfigError(
            f"unknown prompt format {fmt!r} for family {family!r}; known: {list(FORMATS)}"
        )
    return compile_template(templates[fmt])


def render_prompt(family: str, fmt: str, doc: Mapping[str, Any]) -> str:
    """Render the prompt (no completion) of ``doc`` in ``fmt`` for a task ``family``."""
    return _compiled(family, fmt).render(**doc)


def render_completion(doc: Mapping[str, Any]) -> str:
    """The completion that follows a prompt: one space, then the verbalised target."""
    return TARGET_DELIMITER + str(doc["target"])


def render_example(family: str, fmt: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """A TRL prompt-completion training example, rendered by the evaluation template."""
    return {"prompt": render_prompt(family, fmt, doc), "completion": render_completion(doc)}
