"""``amuro data check`` (and ``amuro study plan --check-data``): the preflight, on a mirror with
one defect of each kind a first real study would meet planted in it (``tools/planted_mirror.py``),
and on clean data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from amuro_study.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from planted_mirror import plant  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"
DOC_DIR = "/tmp/planted"
"""Where the mirror lives in the output shown in docs/data.md."""


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plant(tmp_path_factory.mktemp("mirror") / "planted")


def _check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(["data", "check", *args])
    return code, capsys.readouterr().out


def _blocks(out: str) -> dict[str, str]:
    """``name/split`` -> its block of the report."""
    blocks = {}
    for block in out.split("\n\n")[1:-1]:
        head = re.match(r"(ok  |FAIL) (\S+) ", block)
        assert head, block
        blocks[head.group(2)] = block
    return blocks


def test_each_planted_defect_is_reported_and_the_run_would_stop(
        planted: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = _check(capsys, str(planted))
    assert code == 1
    blocks = _blocks(out)
    failed = {k for k, v in blocks.items() if v.startswith("FAIL")}
    assert failed == {"mnli_matched/validation_matched", "rte/validation", "rte/train",
                      "paws/test", "xsum/test", "cnn/test", "arc_easy/validation", "tulu/train"}
    expect = {
        "mnli_matched/validation_matched": "invalid  boolean label 1",
        "rte/validation": "rte/validation row 4: gold label 'label' is hidden (-1)",
        "rte/train": "train.jsonl: line 4: not UTF-8 text (byte 0xe9 at column 44)",
        "paws/test": "test.jsonl: line 6: not valid JSON",
        "cnn/test": "the file holds no rows (an empty split file)",
        "xsum/test": "xsum/test row 1: field 'summary' is empty",
        "arc_easy/validation": "answerKey 'Z' is not one of the choice labels",
        "tulu/train": "tulu/train row 1 (id 'oasst1_1'): 'messages' is an empty list",
    }
    for name, text in expect.items():
        assert text in blocks[name], (name, blocks[name])
    # documented defects are reported, not fatal
    assert "dropped  2 (documented empty field)" in blocks["xsum/test"]
    assert "dropped  2 (documented empty field)" in blocks["sciq/test"]
    assert "options per row: 3 1, 4 5, 5 1" in blocks["arc_easy/validation"]
    assert "answer keys: digits 2, letters 5" in blocks["arc_easy/validation"]
    assert "empty turns by role: system 3, user 3, assistant 3" in blocks["tulu/train"]
    assert "dropped no trainable token: 1" in blocks["tulu/train"]
    assert "labels   contradiction 8, entailment 10, neutral 5" in blocks[
        "mnli_matched/validation_matched"]
    assert out.rstrip().endswith("18 splits checked, 8 would stop the run")


def test_the_docs_show_the_output_on_the_planted_mirror(
        planted: Path, capsys: pytest.CaptureFixture) -> None:
    _, out = _check(capsys, str(planted))
    shown = DOCS.read_text().split("<!-- planted-check -->")[1].split("```")[1]
    assert shown.strip().splitlines()[1:] == \
        out.replace(str(planted.parent), DOC_DIR).strip().splitlines()


def test_skip_makes_invalid_rows_not_fatal_but_unreadable_files_stay_fatal(
        planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = yaml.safe_load(planted.read_text())
    config["eval"]["on_invalid"] = "skip"
    config["finetune"]["on_invalid"] = "skip"
    path = tmp_path / "skip.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out = _check(capsys, str(path))
    assert code == 1
    failed = {k for k, v in _blocks(out).items() if v.startswith("FAIL")}
    assert failed == {"rte/train", "paws/test", "cnn/test"}
    assert "note     1 invalid rows would be skipped" in _blocks(out)["xsum/test"]


def test_a_missing_column_stops_the_run_even_with_skip(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A row without a column the set may leave empty (XSum's ``document``) stops the load
    whatever ``on_invalid`` says (``rows.iter_docs``): the check says so too."""
    from amuro_tasks.loading import FIXTURE_DIR

    mirror = tmp_path / "mirror" / "EdinburghNLP__xsum" / "default"
    mirror.mkdir(parents=True)
    for split in ("train", "test"):
        rows = [json.loads(x) for x in
                (FIXTURE_DIR / "EdinburghNLP__xsum" / "default" / f"{split}.jsonl")
                .read_text().splitlines()]
        for row in rows if split == "test" else ():  # the column, not one row's value
            del row["document"]
        (mirror / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = _check(capsys, "xsum", "--data", str(tmp_path / "mirror"),
                       "--on-invalid", "skip")
    assert code == 1
    assert "STOP     xsum/test row 0: missing field 'document'" in _blocks(out)["xsum/test"]


def test_clean_data_passes_and_inputs_are_measured_in_tokens(
        tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = _check(capsys, "amuro_mnli_id,amuro_xsum_io,llmbar_natural", "--data",
                       "fixtures", "--tokenizer", str(tiny_model_dir), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] and report["tokenizer"] == str(tiny_model_dir)
    splits = {(s["name"], s["split"], s["role"]) for s in report["splits"]}
    assert splits == {("mnli_matched", "validation_matched", "scored"),
                      ("mnli_matched", "train", "shots"),
                      ("mnli_mismatched", "validation_mismatched", "scored"),
                      ("mnli_mismatched", "train", "shots"),
                      ("xsum", "test", "scored"), ("xsum", "train", "shots"),
                      ("llmbar_natural", "Natural", "scored"),
                      *(("llmbar_natural", s, "shots") for s in (
                          "Adversarial_Neighbor", "Adversarial_GPTInst", "Adversarial_GPTOut",
                          "Adversarial_Manual"))}
    assert all(s["longest_input_tokens"] > 0 for s in report["splits"])


def test_study_plan_check_data_prints_the_plan_then_checks(
        planted: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["study", "plan", str(planted), "--check-data", "--rows", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.index("[base-eval]") < out.index("data check: source") < out.index("would stop")
    assert "the first 5 rows of each split" in out


@pytest.mark.parametrize(("args", "message"), [
    (["amuro_nothing"], "<tasks>: 'amuro_nothing' names no amuro task, tag or set"),
    (["rte", "--data", "/no/such/dir"], "--data: AMURO_DATA='/no/such/dir'"),
    (["rte", "--data", "fixtures", "--tokenizer", "/no/such/model"], "--tokenizer: cannot load"),
    (["rte", "--rows", "0"], "--rows: must be >= 1"),
])
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture
                             ) -> None:
    assert main(["data", "check", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_docs_tables_are_the_declarations() -> None:
    from amuro_tasks.doc_tables import source_table, split_table

    text = DOCS.read_text()
    assert f"<!-- sources -->\n{source_table()}\n<!-- /sources -->" in text
    assert f"<!-- splits -->\n{split_table()}\n<!-- /splits -->" in text
