"""The prompt templates: the single source of truth for evaluation *and* fine-tuning.

Every amuro task renders its prompt through :func:`render_prompt`, and ``amuro_sft`` renders
its training examples through :func:`render_example`, so an evaluation prompt and a training
prompt for the same row can never drift apart.

The strings are the paper's Table 3 (Sun & Dredze, "Amuro & Char"), with the two details the
authors' code adds: a ``"\\n "`` before every ``###`` after the first, and the completion follows
the prompt after one space. Templates never end in whitespace: the space lives in the
completion (``" " + target``), which is what lm-eval's ``target_delimiter: " "`` produces and
what TRL's prompt/completion boundary detection needs.

Templates are Jinja, rendered in a sandbox with ``StrictUndefined``: a missing field is an error,
never an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from amuro_tasks.errors import AmuroConfigError

FORMATS: tuple[str, ...] = ("default", "instruct", "io")
"""The paper's three prompt formats (Table 3): the fine-tuning format, an instruction, raw input."""

TARGET_DELIMITER = " "
"""Separates a prompt from its completion, in few-shot examples, evaluation and training alike."""

#: family -> format -> Jinja template of the prompt (the completion is ``doc["target"]``).
PROMPTS: dict[str, dict[str, str]] = {
    "summarization": {
        "default": "### Input: {{ document }}\n ### Summary:",
        "instruct": "Please read the following text: {{ document }} Provide a summary:",
        "io": "{{ document }}",
    },
    "qgen": {
        "default": "### Input: {{ context }}\n ### Answer: {{ answer }}\n ### Question:",
        "instruct": (
            "Given the context: {{ context }} And the answer: {{ answer }}"
            " Generate a suitable question:"
        ),
        "io": "{{ context }} {{ answer }}",
    },
    "nli": {
        "default": "### Input_1: {{ premise }}\n ### Input_2: {{ hypothesis }}\n ### Inference:",
        "instruct": (
            "Consider the following texts: Text 1: {{ premise }} Text 2: {{ hypothesis }}"
            " The relation is"
        ),
        "io": "{{ premise }} {{ hypothesis }}",
    },
    "paraphrase": {
        "default": (
            "### Input_1: {{ sentence1 }}\n ### Input_2: {{ sentence2 }}"
            "\n ### Paraphrase Classification:"
        ),
        # The paper typesets (and the authors' code uses) a typographic apostrophe here.
        "instruct": (
            "Let\u2019s compare the two sentences: Sentence_1: {{ sentence1 }}"
            " Sentence_2: {{ sentence2 }} Are they paraphrasing?:"
        ),
        "io": "{{ sentence1 }} {{ sentence2 }}",
    },
}

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def register_family(family: str, templates: Mapping[str, str]) -> None:
    """Add a prompt family (one Jinja template per format in :data:`FORMATS`)."""
    missing = [f for f in FORMATS if f not in templates]
    if missing:
        raise AmuroConfigError(f"prompt family {family!r} lacks formats {missing}")
    PROMPTS[family] = dict(templates)
    _compiled.cache_clear()


@cache
def _compiled(family: str, fmt: str) -> Template:
    if family not in PROMPTS:
        raise AmuroConfigError(f"unknown prompt family {family!r}; known: {sorted(PROMPTS)}")
    if fmt not in PROMPTS[family]:
        raise AmuroConfigError(
            f"unknown prompt format {fmt!r} for family {family!r}; known: {list(FORMATS)}"
        )
    return _ENV.from_string(PROMPTS[family][fmt])


def render_prompt(family: str, fmt: str, doc: Mapping[str, Any]) -> str:
    """Render the prompt (no completion) of ``doc`` in ``fmt`` for a task ``family``."""
    return _compiled(family, fmt).render(**doc)


def render_completion(doc: Mapping[str, Any]) -> str:
    """The completion that follows a prompt: one space, then the verbalised target."""
    return TARGET_DELIMITER + str(doc["target"])


def render_example(family: str, fmt: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """A TRL prompt-completion training example, rendered by the evaluation template."""
    return {"prompt": render_prompt(family, fmt, doc), "completion": render_completion(doc)}
