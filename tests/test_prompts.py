"""Prompts: pinned to the paper's Table 3 strings and to the authors' released code."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.families import FAMILIES
from amuro_tasks.prompts import FORMATS, PROMPTS, compile_template, render_example, render_prompt

DOCS = {
    "summarization": {"document": "Rain fell on Paris.", "target": "It rained."},
    "qgen": {"context": "Ada sold maps.", "answer": "maps", "target": "What did Ada sell?"},
    "nli": {"premise": "A man sleeps.", "hypothesis": "A man rests.", "target": "entailment"},
    "paraphrase": {"sentence1": "I left.", "sentence2": "I went away.", "target": "yes"},
}

# Table 3 of the paper, verbatim (placeholders filled with the DOCS above).
TABLE_3 = {
    ("summarization", "default"): "### Input: Rain fell on Paris. ### Summary:",
    ("summarization", "instruct"): "Please read the following text: Rain fell on Paris. "
                                   "Provide a summary:",
    ("summarization", "io"): "Rain fell on Paris.",
    ("qgen", "default"): "### Input: Ada sold maps. ### Answer: maps ### Question:",
    ("qgen", "instruct"): "Given the context: Ada sold maps. And the answer: maps "
                          "Generate a suitable question:",
    ("qgen", "io"): "Ada sold maps. maps",
    ("nli", "default"): "### Input_1: A man sleeps. ### Input_2: A man rests. ### Inference:",
    ("nli", "instruct"): "Consider the following texts: Text 1: A man sleeps. "
                         "Text 2: A man rests. The relation is",
    ("nli", "io"): "A man sleeps. A man rests.",
    ("paraphrase", "default"): "### Input_1: I left. ### Input_2: I went away. "
                               "### Paraphrase Classification:",
    ("paraphrase", "instruct"): "Let\u2019s compare the two sentences: Sentence_1: I left. "
                                "Sentence_2: I went away. Are they paraphrasing?:",
    ("paraphrase", "io"): "I left. I went away.",
}

# The authors' code (notes/paper-release.md): the exact text before the completion.
RELEASE_DEFAULT = {
    "summarization": "### Input: Rain fell on Paris.\n ### Summary: ",
    "qgen": "### Input: Ada sold maps.\n ### Answer: maps\n ### Question: ",
    "nli": "### Input_1: A man sleeps.\n ### Input_2: A man rests.\n ### Inference: ",
    "paraphrase": "### Input_1: I left.\n ### Input_2: I went away.\n"
                  " ### Paraphrase Classification: ",
}


@pytest.mark.parametrize(("family", "fmt"), sorted(TABLE_3))
def test_prompt_matches_table_3(family: str, fmt: str) -> None:
    rendered = render_prompt(family, fmt, DOCS[family])
    # Table 3 is typeset on one line: the release's "\n " line breaks read as one space.
    assert re.sub(r"\n ", " ", rendered) == TABLE_3[(family, fmt)]
    assert rendered == rendered.strip(), "templates must not carry edge whitespace"


@pytest.mark.parametrize("family", sorted(RELEASE_DEFAULT))
def test_default_prompt_matches_release_code(family: str) -> None:
    example = render_example(family, "default", DOCS[family])
    assert example["prompt"] + " " == RELEASE_DEFAULT[family]
    assert example["prompt"] + example["completion"] == (
        RELEASE_DEFAULT[family] + DOCS[family]["target"]
    )


def test_every_family_has_every_format() -> None:
    for family, templates in PROMPTS.items():
        assert set(FORMATS) <= set(templates), family


def test_missing_field_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(UndefinedError):
        render_prompt("nli", "default", {"premise": "only a premise"})


def test_templates_run_sandboxed() -> None:
    # Templates are declared in the family files (no registration at run time): the sandbox is
    # checked on the environment every template is compiled in.
    with pytest.raises(SecurityError):
        compile_template("{{ x.__class__.__mro__ }}").render(x="s")


def test_prompt_tables_are_read_only_views_of_the_family_declarations() -> None:
    assert set(PROMPTS) == {f.name for f in FAMILIES}
    for family in FAMILIES:
        assert dict(PROMPTS[family.name]) == family.prompts.as_dict()
    with pytest.raises(TypeError):
        PROMPTS["evil"] = {}  # type: ignore[index]


def test_every_family_renders_in_a_fresh_process() -> None:
    """No import order matters: ``import amuro_tasks`` alone knows every family's prompts."""
    docs = {f.name: {k: "x" for k in _fields(f.prompts.as_dict().values())} for f in FAMILIES}
    code = ("import json, sys, amuro_tasks\n"
            "docs = json.loads(sys.argv[1])\n"
            "print(json.dumps({f: {fmt: amuro_tasks.render_prompt(f, fmt, d)\n"
            "                      for fmt in amuro_tasks.FORMATS} for f, d in docs.items()}))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(docs)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rendered = json.loads(proc.stdout)
    assert set(rendered) == {f.name for f in FAMILIES}
    for name, by_format in rendered.items():
        assert by_format == {fmt: render_prompt(name, fmt, docs[name]) for fmt in FORMATS}


def _fields(templates) -> set[str]:
    """Every variable a set of templates reads (via Jinja's own parser)."""
    from jinja2 import meta

    from amuro_tasks.prompts import _ENV

    return set().union(*(meta.find_undeclared_variables(_ENV.parse(t)) for t in templates))


def test_unknown_family_and_format_are_named() -> None:
    with pytest.raises(AmuroConfigError, match="unknown prompt family 'nope'"):
        render_prompt("nope", "default", {})
    with pytest.raises(AmuroConfigError, match="unknown prompt format 'chat'"):
        render_prompt("nli", "chat", DOCS["nli"])
