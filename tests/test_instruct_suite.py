"""The instruction-tuning suite: ARC, OpenBookQA, HellaSwag, BoolQ, SciQ (MC) and LLMBar.

Fast tests pin the rendered prompts, check validation on malformed rows, the multi-split LLMBar
loading and the tags; a TaskManager test feeds the same fixture documents to lm-eval's own
upstream tasks and to ours and compares contexts, choices and gold; slow tests run everything
through the ``lm_eval`` command line on the tiny model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import datasets
import pytest
import yaml

from amuro_tasks import include_path, task_manager
from amuro_tasks.errors import AmuroDataError
from amuro_tasks.families import get_family
from amuro_tasks.families.llmbar import LLMBAR_ADVERSARIAL_SPLITS
from amuro_tasks.loading import FIXTURE_DIR, LoadOptions, load_docs
from amuro_tasks.prompts import FORMATS, PROMPTS, render_prompt
from amuro_tasks.rows import hellaswag_preprocess
from amuro_tasks.specs import get_spec
from amuro_tasks.suite import FINETUNING_LEARNED, INSTRUCT_SUITE, PRETRAINING_LEARNED
from amuro_tasks.yaml_gen import YAML_DIR, render_all, task_name

FOLDERS = ["arc", "openbookqa", "hellaswag", "boolq", "sciq_mc", "llmbar"]
SETS = [spec.name for folder in FOLDERS for spec in get_family(folder).specs]
GROUPS_BY_SET = get_family("llmbar").format_groups
FIXTURES = LoadOptions(source="fixtures")


def _raw(key: str, split: str) -> list[dict[str, Any]]:
    path = FIXTURE_DIR / key / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _mirror(tmp_path: Path, set_name: str, rows_by_split: dict[str, list[dict]]) -> str:
    folder = tmp_path / get_spec(set_name).fixture_key
    folder.mkdir(parents=True)
    for split, rows in rows_by_split.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path)


# --------------------------------------------------------------------------- loading
@pytest.mark.parametrize("name", SETS)
def test_every_set_loads_from_fixtures_with_gold_among_choices(name: str) -> None:
    docs = load_docs(name, FIXTURES)
    assert len(docs["eval"]) >= 8 and len(docs["fewshot"]) >= 4
    for doc in [*docs["eval"], *docs["fewshot"]]:
        assert isinstance(doc["choices"], list) and len(doc["choices"]) >= 2
        assert doc["choices"][doc["label"]] == doc["target"]
        for fmt in FORMATS:
            prompt = render_prompt(get_spec(name).family, fmt, doc)
            assert prompt.strip() and prompt == prompt.rstrip(" "), (name, fmt, prompt)


@pytest.mark.parametrize(("protocol", "split"), [("paper", "validation"), ("upstream", "test")])
def test_arc_quirks_numeric_labels_and_3_or_5_options(protocol: str, split: str) -> None:
    raw = _raw("allenai__ai2_arc/ARC-Easy", split)
    docs = load_docs("arc_easy", LoadOptions(source="fixtures", protocol=protocol))["eval"]
    assert {r["choices"]["label"][0] for r in raw} == {"A", "1"}  # the fixture has both kinds
    assert {len(r["choices"]["text"]) for r in raw} >= {3, 4, 5}
    for row, doc in zip(raw, docs, strict=True):
        gold = row["choices"]["label"].index(row["answerKey"])
        assert doc["label"] == gold and doc["choices"] == row["choices"]["text"]


def test_sciq_mc_keeps_rows_without_support_unlike_question_generation() -> None:
    raw = _raw("allenai__sciq/default", "test")
    docs = load_docs("sciq_mc", LoadOptions(source="fixtures", protocol="upstream"))["eval"]
    assert len(docs) == len(raw) > len(load_docs("sciq", FIXTURES)["eval"])
    empty = next(d for d, r in zip(docs, raw, strict=True) if not r["support"])
    assert render_prompt("sciq_mc", "default", empty).startswith("\nQuestion: ")
    assert render_prompt("sciq_mc", "io", empty) == empty["question"]
    assert all(d["label"] == 3 for d in docs)


def test_llmbar_adversarial_concatenates_its_four_splits_and_draws_shots_from_natural() -> None:
    docs = load_docs("llmbar_adversarial", FIXTURES)
    sizes = [len(_raw("princeton-nlp__LLMBar/LLMBar", s)) for s in LLMBAR_ADVERSARIAL_SPLITS]
    expected = [s for s, n in zip(LLMBAR_ADVERSARIAL_SPLITS, sizes, strict=True) for _ in range(n)]
    assert docs["eval"]["source_split"] == expected
    assert set(docs["fewshot"]["source_split"]) == {"Natural"}
    natural = load_docs("llmbar_natural", FIXTURES)
    assert set(natural["eval"]["source_split"]) == {"Natural"}
    assert set(natural["fewshot"]["source_split"]) <= set(LLMBAR_ADVERSARIAL_SPLITS)
    raw = _raw("princeton-nlp__LLMBar/LLMBar", "Natural")
    assert natural["eval"]["label"] == [r["label"] - 1 for r in raw]


def _arc_row(**overrides: Any) -> dict[str, Any]:
    row = {"id": "x", "question": "Which is a metal?",
           "choices": {"text": ["wood", "iron", "wool", "clay"], "label": list("ABCD")},
           "answerKey": "B"}
    return {**row, **overrides}


def _hellaswag_row(**overrides: Any) -> dict[str, Any]:
    row = {"ind": 1, "activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "he",
           "ctx": "A man mixes flour. he", "endings": ["a", "b", "c", "d"], "source_id": "s",
           "split": "val", "split_type": "indomain", "label": "1"}
    return {**row, **overrides}


def _llmbar_row(**overrides: Any) -> dict[str, Any]:
    return {"input": "Say hi.", "output_1": "hi", "output_2": "bye", "label": 1, **overrides}


BAD_ROWS = [
    ("arc_easy", "validation", _arc_row(answerKey="E"),
     r"arc_easy/validation row 1: answerKey 'E' is not one of the choice labels "
     r"\['A', 'B', 'C', 'D'\]"),
    ("arc_challenge", "validation", _arc_row(answerKey=""),
     r"arc_challenge/validation row 1: gold label 'answerKey' is hidden"),
    ("arc_easy", "validation", _arc_row(choices={"text": ["a", "b", "c"], "label": list("ABCD")}),
     r"arc_easy/validation row 1: 3 choice texts but 4 choice labels"),
    ("arc_easy", "validation",
     _arc_row(choices={"text": ["a", "", "c", "d"], "label": list("ABCD")}),
     r"arc_easy/validation row 1: choices.text\[1\] is '', expected non-empty text"),
    ("openbookqa", "validation", {"id": "1", "question_stem": "  ", "answerKey": "A",
                            "choices": {"text": ["a", "b"], "label": ["A", "B"]}},
     r"openbookqa/validation row 1: field 'question_stem' is empty"),
    ("hellaswag", "validation", _hellaswag_row(label=""),
     r"hellaswag/validation row 1: gold label 'label' is hidden"),
    ("hellaswag", "validation", _hellaswag_row(label="7"),
     r"hellaswag/validation row 1: label 'label'='7' is not one of"),
    ("hellaswag", "validation", _hellaswag_row(endings="a b c d"),
     r"hellaswag/validation row 1: field 'endings' is str, expected a list"),
    ("boolq", "validation", {"question": "is it", "passage": "p", "idx": 0, "label": -1},
     r"boolq/validation row 1: gold label 'label' is hidden"),
    ("sciq_mc", "validation", {"question": "q", "distractor1": "a", "distractor2": "b",
                         "distractor3": "c", "correct_answer": "d", "support": None},
     r"sciq_mc/validation row 1: field 'support' is NoneType, expected text"),
    ("llmbar_natural", "Natural", _llmbar_row(label=3),
     r"llmbar_natural/Natural row 1: label 'label'=3 is not one of \[1, 2\]"),
]

GOOD_ROWS = {
    "arc_easy": _arc_row(), "arc_challenge": _arc_row(),
    "openbookqa": {"id": "1", "question_stem": "Fish live in", "answerKey": "A",
                   "choices": {"text": ["water", "trees"], "label": ["A", "B"]}},
    "hellaswag": _hellaswag_row(),
    "boolq": {"question": "is it", "passage": "p", "idx": 0, "label": 1},
    "sciq_mc": {"question": "q", "distractor1": "a", "distractor2": "b", "distractor3": "c",
                "correct_answer": "d", "support": ""},
    "llmbar_natural": _llmbar_row(),
}


@pytest.mark.parametrize(("name", "split", "row", "message"), BAD_ROWS)
def test_malformed_rows_fail_naming_set_split_and_row(
    tmp_path: Path, name: str, split: str, row: dict, message: str
) -> None:
    good = GOOD_ROWS[name]
    pool_splits = get_spec(name).fewshot_split
    pools = [pool_splits] if isinstance(pool_splits, str) else list(pool_splits)
    source = _mirror(tmp_path, name, {split: [good, row], **{s: [good] * 4 for s in pools}})
    with pytest.raises(AmuroDataError, match=message):
        load_docs(name, LoadOptions(source=source))


def test_error_in_one_adversarial_split_names_that_split(tmp_path: Path) -> None:
    good = _llmbar_row()
    rows = {s: [good, good] for s in LLMBAR_ADVERSARIAL_SPLITS}
    rows["Adversarial_GPTOut"] = [good, _llmbar_row(output_2="   ")]
    source = _mirror(tmp_path, "llmbar_adversarial", {**rows, "Natural": [good] * 4})
    with pytest.raises(AmuroDataError, match=r"llmbar_adversarial/Adversarial_GPTOut row 1: "
                                             r"field 'output_2' is empty"):
        load_docs("llmbar_adversarial", LoadOptions(source=source))
    skipped = load_docs("llmbar_adversarial", LoadOptions(source=source, on_invalid="skip"))
    assert len(skipped["eval"]) == 7


def test_hellaswag_preprocessing_matches_upstream() -> None:
    from lm_eval.tasks.hellaswag import utils as upstream  # tests only: runtime has a copy

    for value in [" [header] How to bake [title] Mix.  [step] Stir ", "a [b] c", "plain"]:
        assert hellaswag_preprocess(value) == upstream.preprocess(value)


# --------------------------------------------------------------------------- pinned prompts
DOCS = {
    "arc": {"question": "Which gas do plants absorb?"},
    "openbookqa": {"question_stem": "The sun is responsible for"},
    "hellaswag": {"query": "Baking: A man mixes flour. He", "activity_label": "Baking",
                  "context": "A man mixes flour. He"},
    "boolq": {"passage": "Iron rusts in water.", "question": "does iron rust"},
    "sciq_mc": {"support": "Plants absorb carbon dioxide. ", "question": "What do plants absorb?"},
    "llmbar": {"instruction": "Say hi.", "output_a": "Hi!", "output_b": "Bye."},
}

PINNED = {
    ("arc", "default"): "Question: Which gas do plants absorb?\nAnswer:",
    ("arc", "instruct"): (
        "Please answer the following science question: Which gas do plants absorb?"
        " The answer is:"),
    ("arc", "io"): "Which gas do plants absorb?",
    ("openbookqa", "default"): "The sun is responsible for",
    ("openbookqa", "instruct"): (
        "Please answer the following question using elementary science facts:"
        " The sun is responsible for The answer is:"),
    ("openbookqa", "io"): "The sun is responsible for",
    ("hellaswag", "default"): "Baking: A man mixes flour. He",
    ("hellaswag", "instruct"): (
        "Please choose the most plausible ending for the following text about Baking:"
        " A man mixes flour. He The ending is:"),
    ("hellaswag", "io"): "A man mixes flour. He",
    ("boolq", "default"): "Iron rusts in water.\nQuestion: does iron rust?\nAnswer:",
    ("boolq", "instruct"): (
        "Please read the following passage: Iron rusts in water."
        " Answer the question with yes or no: does iron rust?"),
    ("boolq", "io"): "Iron rusts in water. does iron rust",
    ("sciq_mc", "default"): "Plants absorb carbon dioxide. \nQuestion: What do plants absorb?"
                            "\nAnswer:",
    ("sciq_mc", "instruct"): (
        "Please read the following passage: Plants absorb carbon dioxide."
        " Answer the following science question: What do plants absorb? The answer is:"),
    ("sciq_mc", "io"): "Plants absorb carbon dioxide. What do plants absorb?",
    ("llmbar", "default"): (
        "Instruction: Say hi.\nOutput (a): Hi!\nOutput (b): Bye.\n"
        "Question: Which output better follows the instruction, Output (a) or Output (b)?\n"
        "Answer:"),
    ("llmbar", "instruct"): (
        "Select the Output (a) or Output (b) that better follows the given instruction.\n\n"
        "# Instruction:\nSay hi.\n\n# Output (a):\nHi!\n\n# Output (b):\nBye.\n\n"
        '# Which is better, Output (a) or Output (b)? Your response should be either '
        '"Output (a)" or "Output (b)":'),
    ("llmbar", "io"): "Say hi. Hi! Bye.",
}


@pytest.mark.parametrize(("family", "fmt"), sorted(PINNED))
def test_rendered_prompts_are_pinned(family: str, fmt: str) -> None:
    assert render_prompt(family, fmt, DOCS[family]) == PINNED[(family, fmt)]


def test_every_family_and_format_is_pinned() -> None:
    assert set(PINNED) == {(f, fmt) for f in PROMPTS if f in FOLDERS for fmt in FORMATS}


def test_hellaswag_fields_follow_upstream_process_docs() -> None:
    row = _hellaswag_row(activity_label="Baking [x]", ctx_a="[header] A man [title] mixes.",
                         ctx_b="then he", endings=["stirs [step] it.", "b", "c", "d"])
    doc = get_spec("hellaswag").normalize(row, "hellaswag/validation row 0")
    assert doc["query"] == "Baking : A man. mixes. Then he"
    assert doc["context"] == "A man. mixes. Then he"
    assert doc["choices"][0] == "stirs it."
    assert render_prompt("hellaswag", "instruct", doc).startswith(
        "Please choose the most plausible ending for the following text about Baking :")


# --------------------------------------------------------------------------- tags and YAMLs
def _tags(rel: Path) -> list[str]:
    return yaml.safe_load(render_all()[rel].replace("!function", ""))["tag"]


def test_suite_tuples_follow_the_paper() -> None:
    assert INSTRUCT_SUITE == ("arc_easy", "arc_challenge", "openbookqa", "hellaswag", "boolq",
                              "sciq_mc")
    assert set(PRETRAINING_LEARNED) == {"arc_easy", "arc_challenge", "openbookqa", "hellaswag",
                                        "sciq_mc"}
    assert set(FINETUNING_LEARNED) == {"boolq", "mnli_matched", "mnli_mismatched", "paws",
                                       "xsum", "xlsum", "socialiqa"}
    for name in (*INSTRUCT_SUITE, *PRETRAINING_LEARNED, *FINETUNING_LEARNED):
        get_spec(name)  # every name is a registered set


def test_generated_tags() -> None:
    files = render_all()
    tagged: dict[str, set[str]] = {}
    for rel in files:
        if rel.suffix == ".yaml" and not rel.name.startswith("_"):
            for tag in _tags(rel):
                tagged.setdefault(tag, set()).add(rel.stem)
    assert tagged["amuro_instruct_suite"] == {task_name(s, "default") for s in INSTRUCT_SUITE}
    assert tagged["amuro_pretraining_learned"] == {
        task_name(s, "default") for s in PRETRAINING_LEARNED}
    assert tagged["amuro_finetuning_learned"] == {
        task_name(s, "default") for s in FINETUNING_LEARNED}
    assert tagged["amuro_llmbar"] == {task_name(f"llmbar_{s}", f)
                                      for s in ("natural", "adversarial") for f in FORMATS}
    assert _tags(Path("arc/amuro_arc_easy_io.yaml")) == ["amuro_arc_easy", "amuro_io", "amuro_arc"]


def test_generated_files_are_committed_and_folders_have_readmes() -> None:
    for rel, content in render_all().items():
        if rel.parts[0] in FOLDERS:
            assert (YAML_DIR / rel).read_text() == content, f"regenerate: yaml_gen ({rel})"
    for folder in FOLDERS:
        readme = (YAML_DIR / folder / "README.md").read_text()
        tasks = [p.stem for p in (YAML_DIR / folder).glob("amuro_*.yaml")]
        groups = [task_name(g, f) for g in GROUPS_BY_SET for f in FORMATS
                  if folder == "llmbar"]
        for heading in ("### Paper", "### Citation", "### Groups, Tags, and Tasks",
                        "### Differences from upstream", "### Checklist"):
            assert heading in readme, (folder, heading)
        for task in [*tasks, *groups]:
            assert f"`{task}`" in readme, (folder, task)


def test_templates_score_acc_and_acc_norm_with_standard_choices() -> None:
    files = render_all()
    for folder in FOLDERS:
        body = yaml.safe_load(files[Path(folder) / f"_amuro_{folder}_template_yaml"]
                              .replace("!function", ""))
        assert body["output_type"] == "multiple_choice" and body["doc_to_choice"] == "choices"
        metrics = [m["metric"] for m in body["metric_list"]]
        assert metrics == (["acc"] if folder == "llmbar" else ["acc", "acc_norm"])


# --------------------------------------------------------------------------- against upstream
UPSTREAM = {  # our set -> lm-eval's upstream task
    "arc_easy": "arc_easy", "arc_challenge": "arc_challenge", "openbookqa": "openbookqa",
    "hellaswag": "hellaswag", "boolq": "boolq", "sciq_mc": "sciq",
}


def test_declared_upstream_tasks_are_the_ones_compared_here() -> None:
    from amuro_tasks.specs import SPECS

    assert {n: s.upstream_task for n, s in SPECS.items() if s.upstream_task} == UPSTREAM


def _upstream_dataset(path: str, name: str | None) -> datasets.DatasetDict:
    """Upstream's dataset (every split lm-eval may ask for), read from our fixture files."""
    folder = FIXTURE_DIR / f"{path.replace('/', '__')}/{name or 'default'}"
    return datasets.DatasetDict({
        p.stem: datasets.load_dataset("json", data_files=str(p), split="train")
        for p in sorted(folder.glob("*.jsonl"))
    })


@pytest.fixture(scope="module")
def tasks() -> Iterator[dict[str, Any]]:
    """Upstream's tasks (on our fixture files) and our default-format tasks, built by lm-eval;
    ours under the ``upstream`` split protocol, so that both score the same split."""
    from lm_eval.api.task import ConfigurableTask

    real_download = ConfigurableTask.download

    def download(self: Any, dataset_kwargs: Any = None, **kwargs: Any) -> None:
        if callable(self.config.custom_dataset):  # ours: the real hook, AMURO_DATA=fixtures
            return real_download(self, dataset_kwargs, **kwargs)
        self.dataset = _upstream_dataset(self.DATASET_PATH, self.DATASET_NAME)  # offline

    names = [*UPSTREAM.values(), *(task_name(s, "default") for s in UPSTREAM),
             task_name("llmbar_natural", "default")]
    with mock.patch.object(ConfigurableTask, "download", download):
        yield task_manager(metadata={"amuro_split": "upstream"}).load(names)["tasks"]


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_default_format_renders_like_upstream(tasks: dict[str, Any], name: str) -> None:
    upstream, ours = tasks[UPSTREAM[name]], tasks[task_name(name, "default")]
    up_docs, our_docs = list(upstream.eval_docs), list(ours.eval_docs)
    assert len(up_docs) == len(our_docs) > 0
    for up_doc, our_doc in zip(up_docs, our_docs, strict=True):
        up_ctx, our_ctx = upstream.fewshot_context(up_doc, 0), ours.fewshot_context(our_doc, 0)
        assert our_ctx == up_ctx
        assert ours.doc_to_choice(our_doc) == upstream.doc_to_choice(up_doc)
        assert ours.doc_to_target(our_doc) == upstream.doc_to_target(up_doc)
        up_args = [r.arguments for r in upstream.construct_requests(up_doc, up_ctx)]
        our_args = [r.arguments for r in ours.construct_requests(our_doc, our_ctx)]
        assert our_args == up_args  # same (context, " choice") pairs: the same scores
    assert set(upstream._metric_fn_list) <= set(ours._metric_fn_list) <= {"acc", "acc_norm"}


def test_llmbar_scoring_on_a_hand_built_example(tasks: dict[str, Any]) -> None:
    task = tasks[task_name("llmbar_natural", "default")]
    row = {"input": "Reply with one word.", "output_1": "Hello there, friend!",
           "output_2": "Hello", "label": 2}
    doc = get_spec("llmbar_natural").normalize(row, "hand-built")
    assert (doc["label"], doc["target"]) == (1, "Output (b)")
    ctx = task.fewshot_context(doc, 0)
    assert ctx == render_prompt("llmbar", "default", doc)
    args = [r.arguments for r in task.construct_requests(doc, ctx)]
    assert args == [(ctx, " Output (a)"), (ctx, " Output (b)")]
    assert task.process_results(doc, [(-4.0, False), (-1.5, True)])["acc"] == 1.0
    assert task.process_results(doc, [(-1.5, True), (-4.0, False)])["acc"] == 0.0


# --------------------------------------------------------------------------- lm_eval CLI
def _lm_eval(*commands: tuple[str, ...]) -> list[str]:
    """Run ``lm_eval`` command lines (in parallel) with amuro's include path; their stdouts."""
    env = {**os.environ, "AMURO_DATA": "fixtures", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "lm_eval", *args, "--include_path",
                               include_path()], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in commands]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-6000:]
        outputs.append(stdout)
    return outputs


ALL_TASKS = [task_name(s, f) for s in SETS for f in FORMATS]
GROUPS = [task_name("llmbar", f) for f in FORMATS]  # tags over both LLMBar sets
CLI_TASKS = ",".join(["amuro_arc", "amuro_openbookqa", "amuro_hellaswag", "amuro_boolq",
                      "amuro_sciq_mc", *GROUPS])


@pytest.mark.slow
def test_cli_lists_and_validates_every_task() -> None:
    listing, validation = _lm_eval(("ls", "tasks"), ("validate", "--tasks", CLI_TASKS))
    for name in [*ALL_TASKS, *GROUPS, "amuro_instruct_suite", "amuro_llmbar"]:
        assert re.search(rf"\|{name}\s*\|", listing), name
    assert "All tasks found and valid" in validation


@pytest.mark.slow
def test_cli_runs_every_task_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    _lm_eval(("--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
              "--tasks", CLI_TASKS, "--device", "cpu", "--batch_size", "8", "--limit", "2",
              "--log_samples", "--output_path", str(tmp_path)))
    (path,) = tmp_path.rglob("results_*.json")
    results = json.loads(path.read_text())["results"]
    assert set(ALL_TASKS) <= set(results)
    for name in ALL_TASKS:
        metrics = {"acc,none"} | ({"acc_norm,none"} if "llmbar" not in name else set())
        assert metrics <= set(results[name]), name
        assert all(0.0 <= results[name][m] <= 1.0 for m in metrics)
    # the model saw exactly our rendered prompt, followed by " " + each choice
    (samples,) = tmp_path.rglob("samples_amuro_boolq_io_*.jsonl")
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        doc = sample["doc"]
        contexts = {a["arg_0"] for a in sample["arguments"].values()}
        assert len(contexts) == 1 and contexts.pop().endswith("\n\n" + render_prompt(
            "boolq", "io", doc))
        assert [a["arg_1"] for a in sample["arguments"].values()] == [" no", " yes"]
