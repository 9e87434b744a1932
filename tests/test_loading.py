"""Loading and validation: real normalisers on fixture rows, loud errors on unusable data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amuro_tasks.errors import AmuroConfigError, AmuroDataError
from amuro_tasks.harness import load_amuro_set
from amuro_tasks.loading import FIXTURE_DIR, LoadOptions, data_source, load_docs, load_training_docs
from amuro_tasks.specs import SPECS, get_spec


def _mirror(tmp_path: Path, set_name: str, rows_by_split: dict[str, list[dict]]) -> str:
    spec = get_spec(set_name)
    folder = tmp_path / spec.fixture_key
    folder.mkdir(parents=True)
    for split, rows in rows_by_split.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path)


def _glue_mnli(label: object, premise: object = "A man sleeps.", **extra: object) -> dict:
    return {"premise": premise, "hypothesis": "A man rests.", "label": label, "idx": 0, **extra}


GOOD_MNLI = [_glue_mnli(i % 3, premise=f"A man sleeps in room {i}.") for i in range(8)]


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.family in
                                        {"nli", "paraphrase", "summarization", "qgen"}))
def test_every_fixture_set_loads_and_validates(name: str) -> None:
    docs = load_docs(name, LoadOptions(source="fixtures"))
    spec = get_spec(name)
    assert len(docs["eval"]) > 0 and len(docs["fewshot"]) >= 4
    for doc in docs["eval"]:
        assert doc["target"].strip()
        if spec.is_classification:
            assert doc["choices"][doc["label"]] == doc["target"]
    # shots are never scored rows
    if spec.fewshot_split is None:
        shots = {d["row_index"] for d in docs["fewshot"]}
        assert not shots & {d["row_index"] for d in docs["eval"]}


@pytest.mark.parametrize("hidden", [-1, None, "-1"])
def test_hidden_labels_fail_loudly_naming_set_split_row(tmp_path: Path, hidden: object) -> None:
    rows = GOOD_MNLI[:3] + [_glue_mnli(hidden)] + GOOD_MNLI[3:]
    source = _mirror(tmp_path, "mnli_matched", {"validation_matched": rows, "train": GOOD_MNLI})
    with pytest.raises(AmuroDataError, match=r"mnli_matched/validation_matched row 3: .*hidden"):
        load_docs("mnli_matched", LoadOptions(source=source))


def test_stsb_test_split_scores_are_hidden(tmp_path: Path) -> None:
    rows = [{"sentence1": "a b", "sentence2": "b a", "label": -1.0, "idx": 0}]
    source = _mirror(tmp_path, "stsb", {"validation": rows, "train": rows})
    with pytest.raises(AmuroDataError, match=r"stsb/validation row 0: similarity score -1.0"):
        load_docs("stsb", LoadOptions(source=source))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_glue_mnli(0, premise="   "), r"row 1: field 'premise' is empty"),
        (_glue_mnli(0, premise=None), r"row 1: field 'premise' is None"),
        (_glue_mnli(7), r"row 1: label 'label'=7 is not one of"),
    ],
)
def test_bad_rows_fail_loudly(tmp_path: Path, row: dict, message: str) -> None:
    source = _mirror(tmp_path, "mnli_mismatched",
                     {"validation_mismatched": [GOOD_MNLI[0], row], "train": GOOD_MNLI})
    with pytest.raises(AmuroDataError, match=message):
        load_docs("mnli_mismatched", LoadOptions(source=source))


def test_missing_column_fails_loudly(tmp_path: Path) -> None:
    rows = [{"sentence1": "a", "sentence2": "b", "label": 0, "idx": 0}]  # RTE's schema, not MNLI's
    source = _mirror(tmp_path, "mnli_matched", {"validation_matched": rows, "train": GOOD_MNLI})
    with pytest.raises(AmuroDataError, match=r"row 0: missing field 'premise' \(fields: \["):
        load_docs("mnli_matched", LoadOptions(source=source))


def test_invalid_rows_can_be_skipped_on_request(tmp_path: Path) -> None:
    rows = [GOOD_MNLI[0], _glue_mnli(-1), GOOD_MNLI[1]]
    source = _mirror(tmp_path, "mnli_matched", {"validation_matched": rows, "train": GOOD_MNLI})
    docs = load_docs("mnli_matched", LoadOptions(source=source, on_invalid="skip"))
    assert docs["eval"]["row_index"] == [0, 2]


def test_summary_with_empty_document_fails(tmp_path: Path) -> None:
    rows = [{"text": "", "summary": "s", "id": "1", "url": "u", "title": "t"}]
    good = [{"text": "d", "summary": "s", "id": str(i), "url": "u", "title": "t"}
            for i in range(4)]
    source = _mirror(tmp_path, "xlsum", {"test": rows, "train": good})
    with pytest.raises(AmuroDataError, match=r"xlsum/test row 0: field 'text' is empty"):
        load_docs("xlsum", LoadOptions(source=source))


def test_xsum_rows_with_an_empty_document_are_dropped_and_logged(tmp_path: Path,
                                                                caplog) -> None:
    """A known defect of EdinburghNLP/xsum: some documents are empty (nothing to summarise)."""
    rows = [{"document": "d1", "summary": "s", "id": "1"}, {"document": "", "summary": "s",
                                                           "id": "2"},
            {"document": "d3", "summary": "s", "id": "3"}]
    good = [{"document": "d", "summary": "s", "id": str(i)} for i in range(4)]
    source = _mirror(tmp_path, "xsum", {"test": rows, "train": good})
    with caplog.at_level("WARNING", logger="amuro"):
        docs = load_docs("xsum", LoadOptions(source=source))
    assert docs["eval"]["row_index"] == [0, 2]
    assert "xsum/test: dropped 1 rows (documented empty field)" in caplog.text
    renamed = [{"text": "d", "summary": "s", "id": "1"}]  # a wrong mirror: no 'document'
    source = _mirror(tmp_path / "r", "xsum", {"test": renamed, "train": good})
    with pytest.raises(AmuroDataError, match=r"xsum/test row 0: missing field 'document'"):
        load_docs("xsum", LoadOptions(source=source))
    bad = [{"document": "d", "summary": "  ", "id": "1"}]  # an empty summary is still an error
    source = _mirror(tmp_path / "b", "xsum", {"test": bad, "train": good})
    with pytest.raises(AmuroDataError, match=r"xsum/test row 0: field 'summary' is empty"):
        load_docs("xsum", LoadOptions(source=source))


def test_missing_local_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(AmuroDataError, match=r"cnn/test: no local data at .*abisee__cnn_dailymail"):
        load_docs("cnn", LoadOptions(source=str(tmp_path)))


def test_label_verbalisers() -> None:
    rte = load_docs("rte", LoadOptions(source="fixtures"))["eval"]
    assert rte[0]["choices"] == ["entailment", "neutral"]
    raw = [json.loads(x) for x in (FIXTURE_DIR / "nyu-mll__glue/stsb/validation.jsonl")
           .read_text().splitlines()]
    stsb = load_docs("stsb", LoadOptions(source="fixtures"))["eval"]
    assert [d["target"] for d in stsb] == ["yes" if r["label"] > 3.5 else "no" for r in raw]
    mnli = load_docs("mnli_matched", LoadOptions(source="fixtures"))["eval"]
    assert mnli[0]["choices"] == ["entailment", "neutral", "contradiction"]


def test_question_generation_uses_the_gold_answer() -> None:
    raw = [json.loads(x) for x in (FIXTURE_DIR / "lighteval__siqa/default/validation.jsonl")
           .read_text().splitlines()]
    docs = load_docs("socialiqa", LoadOptions(source="fixtures"))["eval"]
    for doc, row in zip(docs, raw, strict=True):
        assert doc["answer"] == row["answer" + "ABC"[int(row["label"]) - 1]]
        assert doc["target"] == row["question"]
    tweets = load_docs("tweetqa", LoadOptions(source="fixtures"))["eval"]
    assert tweets[0]["answer"].startswith("the ")  # Answer[0]


def test_sciq_rows_without_support_are_dropped_and_counted(caplog) -> None:
    raw = (FIXTURE_DIR / "allenai__sciq/default/test.jsonl").read_text().splitlines()
    empty = sum(json.loads(x)["support"] == "" for x in raw)
    assert empty > 0
    load_docs.cache_clear()
    with caplog.at_level("WARNING", logger="amuro"):
        docs = load_docs("sciq", LoadOptions(source="fixtures"))
    assert len(docs["eval"]) == len(raw) - empty
    assert f"sciq/test: dropped {empty} rows" in caplog.text


def test_fewshot_pool_is_seeded() -> None:
    a = load_docs("paws", LoadOptions(source="fixtures"))["fewshot"]["row_index"]
    b = load_docs("paws", LoadOptions(source="fixtures"))["fewshot"]["row_index"]
    c = load_docs("paws", LoadOptions(source="fixtures", fewshot_seed=7))["fewshot"]["row_index"]
    assert a == b and a != c


def test_training_docs_follow_the_paper_recipe() -> None:
    docs = load_training_docs("mnli_matched", n=10, seed=42, source="fixtures")
    again = load_training_docs("mnli_matched", n=10, seed=42, source="fixtures")
    assert len(docs) == 10 and docs["row_index"] == again["row_index"]
    assert docs["row_index"] != list(range(10))  # shuffled


def test_data_source_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMURO_DATA", "fixtures")
    assert data_source() == "fixtures"
    assert data_source(str(tmp_path)) == str(tmp_path)
    monkeypatch.delenv("AMURO_DATA")
    assert data_source() == "hub"
    with pytest.raises(AmuroConfigError, match="AMURO_DATA='/no/such/dir'"):
        data_source("/no/such/dir")


def test_unknown_metadata_keys_and_sets_are_named() -> None:
    # (amuro_shots, this test's unknown key until issue 14, is now the shot protocol)
    with pytest.raises(AmuroConfigError, match=r"unknown metadata key\(s\) \['amuro_shot'\]"):
        load_amuro_set("rte", amuro_data="fixtures", amuro_shot="fixed")
    with pytest.raises(AmuroConfigError, match=r"amuro_shots must be one of \('fixed', "
                                               r"'per_document'\), got 3"):
        load_amuro_set("rte", amuro_data="fixtures", amuro_shots=3)
    with pytest.raises(AmuroConfigError, match="unknown evaluation set 'mnlii'"):
        load_amuro_set("mnlii", amuro_data="fixtures")
    with pytest.raises(AmuroConfigError, match="amuro_scoring must be one of"):
        load_amuro_set("rte", amuro_data="fixtures", amuro_scoring="logits")


@pytest.mark.parametrize("name", ["mnli_matched", "xsum", "tweetqa", "arc_easy", "llmbar_natural"])
def test_prerendered_prompts_are_the_template_output(name: str) -> None:
    from amuro_tasks.harness import doc_to_text
    from amuro_tasks.loading import prompt_field
    from amuro_tasks.prompts import FORMATS, render_prompt

    spec = get_spec(name)
    docs = load_docs(name, LoadOptions(source="fixtures"))
    for split in ("eval", "fewshot"):
        doc = docs[split][0]
        bare = {k: v for k, v in doc.items() if not k.startswith("prompt_")}
        for fmt in FORMATS:
            assert doc[prompt_field(fmt)] == render_prompt(spec.family, fmt, bare)
            assert doc_to_text(spec.family, fmt)(doc) == doc_to_text(spec.family, fmt)(bare)


def test_training_sample_is_the_releases_shuffle_select() -> None:
    import datasets

    raw = datasets.load_dataset(
        "json", data_files=str(FIXTURE_DIR / "nyu-mll__glue/mnli/train.jsonl"), split="train")
    release = raw.shuffle(seed=42).select(range(10))  # the authors' code
    ours = load_training_docs("mnli_matched", n=10, seed=42, source="fixtures")
    assert ours["row_index"] == release["idx"]
    assert ours["premise"] == release["premise"]


def test_summarization_shots_are_short_enough_to_fit(tmp_path: Path, caplog) -> None:
    long_doc = " ".join(["word"] * 300)
    train = [{"document": long_doc if i % 2 else f"Short story {i}.", "summary": "s", "id": str(i)}
             for i in range(20)]
    test = [{"document": long_doc, "summary": "s", "id": "t"}]
    source = _mirror(tmp_path, "xsum", {"train": train, "test": test})
    with caplog.at_level("WARNING", logger="amuro"):
        docs = load_docs("xsum", LoadOptions(source=source, fewshot_pool_size=5))
    assert all(len(d["document"].split()) <= 200 for d in docs["fewshot"])
    assert len(docs["fewshot"]) == 5
    assert docs["eval"][0]["document"] == long_doc  # scored inputs are never cut
    assert "xsum/train: dropped" in caplog.text and "too long for a shot" in caplog.text


def test_rows_dropped_before_an_early_stop_are_logged(tmp_path: Path, caplog) -> None:
    rows = [_glue_mnli(-1)] * 40 + GOOD_MNLI  # most rows invalid: some precede 2 valid ones
    source = _mirror(tmp_path, "mnli_matched", {"train": rows, "validation_matched": GOOD_MNLI})
    counts: dict[str, int] = {}
    with caplog.at_level("WARNING", logger="amuro"):
        docs = load_training_docs("mnli_matched", n=2, source=source, on_invalid="skip",
                                  drop_counts=counts)
    assert len(docs) == 2
    seen = [r for r in docs["row_index"]]
    assert all(r >= 40 for r in seen)
    # every invalid row the shuffled walk passed before its 2nd valid row, and no other
    from amuro_tasks.loading import shuffled_order

    order = shuffled_order(len(rows), 42)
    walked = order[: max(order.index(r) for r in seen) + 1]
    assert counts == {"invalid": sum(1 for i in walked if i < 40)} and counts["invalid"] > 0
    assert "mnli_matched/train: dropped" in caplog.text and "(invalid)" in caplog.text


def test_a_training_row_with_a_scored_input_is_never_a_shot(tmp_path: Path, caplog) -> None:
    """Train/test duplicates (QQP repeats questions) would show the scored item with its answer."""
    scored = [_glue_mnli(0, premise="The scored premise."), GOOD_MNLI[1]]
    train = [_glue_mnli(2, premise="The scored premise.")] * 3 + GOOD_MNLI[2:]
    source = _mirror(tmp_path, "mnli_matched", {"validation_matched": scored, "train": train})
    with caplog.at_level("WARNING", logger="amuro"):
        docs = load_docs("mnli_matched", LoadOptions(source=source, fewshot_pool_size=8))
    assert "The scored premise." not in {d["premise"] for d in docs["fewshot"]}
    assert GOOD_MNLI[1]["premise"] not in {d["premise"] for d in docs["fewshot"]}
    assert len(docs["fewshot"]) == 6  # GOOD_MNLI[2:], all distinct from the scored inputs
    assert "3 shot candidates skipped (same input as a scored document)" in caplog.text


# --------------------------------------------------------------------------- unreadable mirrors
def _raw_mirror(tmp_path: Path, set_name: str, files: dict[str, bytes]) -> str:
    folder = tmp_path / get_spec(set_name).fixture_key
    folder.mkdir(parents=True)
    for split, content in files.items():
        (folder / f"{split}.jsonl").write_bytes(content)
    return str(tmp_path)


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("labels", [[True, False], [0, True]])
def test_boolean_labels_in_a_mirror_are_an_error_naming_the_row(tmp_path: Path,
                                                                labels: list) -> None:
    """Before: ``true``/``false`` were taken as 1/0 (``True == 1`` in Python), silently."""
    rows = [_glue_mnli(label, premise=f"A man sleeps in room {i}.") for i, label in
            enumerate(labels)]
    source = _mirror(tmp_path, "mnli_matched", {"validation_matched": rows, "train": GOOD_MNLI})
    row = labels.index(True)
    with pytest.raises(AmuroDataError, match=rf"mnli_matched/validation_matched row {row}: label "
                                             r"'label' is the boolean true; expected one of "
                                             r"\[0, 1, 2\]"):
        load_docs("mnli_matched", LoadOptions(source=source))


@pytest.mark.parametrize(("content", "message"), [
    (_jsonl(GOOD_MNLI[:2]) + b'{"premise": "A man", "hypothesis": \n' + _jsonl(GOOD_MNLI[2:]),
     r"validation_matched.jsonl: line 3: not valid JSON \(Expecting value, column 36\)"),
    (b"", r"validation_matched.jsonl: the file holds no rows \(an empty split file\)"),
    (b"\n\n", r"validation_matched.jsonl: the file holds no rows \(an empty split file\)"),
    (_jsonl(GOOD_MNLI[:1]) + b'{"premise": "caf\xe9", "hypothesis": "h", "label": 0}\n',
     r"validation_matched.jsonl: line 2: not UTF-8 text \(byte 0xe9 at column 17\); mirror "
     r"files must be UTF-8"),
    (_jsonl(GOOD_MNLI[:1]) + b'[1, 2]\n',
     r"validation_matched.jsonl: line 2: a JSON list, expected an object"),
], ids=["corrupt line", "empty file", "blank lines", "not UTF-8", "not an object"])
def test_an_unreadable_mirror_file_is_named_with_its_line(tmp_path: Path, content: bytes,
                                                          message: str) -> None:
    """Before: raw ``datasets``/``pyarrow`` errors naming no file (or, for bytes that are not
    UTF-8, a ``UnicodeDecodeError`` whenever a row was first read)."""
    source = _raw_mirror(tmp_path, "mnli_matched", {"validation_matched": content,
                                                    "train": _jsonl(GOOD_MNLI)})
    with pytest.raises(AmuroDataError, match=r"^mnli_matched/validation_matched: cannot read "
                                             rf"{tmp_path}/nyu-mll__glue/mnli/{message}"):
        load_docs("mnli_matched", LoadOptions(source=source))


def test_the_fixtures_carry_the_real_datasets_defects() -> None:
    """Empty XSum documents, GLUE test labels hidden (-1), SciQ rows without support, ARC
    questions with 3 or 5 options and numeric keys "1"-"4" (checked in test_instruct_suite)."""
    def raw(key: str, split: str) -> list[dict]:
        path = FIXTURE_DIR / key / f"{split}.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()]

    assert any(r["document"] == "" for r in raw("EdinburghNLP__xsum/default", "test"))
    for key, split in [("nyu-mll__glue/mnli", "test_matched"), ("nyu-mll__glue/rte", "test"),
                       ("nyu-mll__glue/qqp", "test"), ("nyu-mll__glue/stsb", "test")]:
        assert {r["label"] for r in raw(key, split)} == {-1}, key
    assert any(r["support"] == "" for r in raw("allenai__sciq/default", "validation"))
    numeric = [r for r in raw("allenai__ai2_arc/ARC-Easy", "train")
               if r["answerKey"].isdigit()]
    assert numeric and all(r["choices"]["label"] == ["1", "2", "3", "4"] for r in numeric)
    # the documented defect is dropped and counted; a hidden label stops a split, naming a row
    docs = load_docs("xsum", LoadOptions(source="fixtures"))
    assert len(docs["eval"]) < len(raw("EdinburghNLP__xsum/default", "test"))
    from amuro_tasks.loading import load_raw_split
    from amuro_tasks.rows import iter_docs

    rows = load_raw_split(get_spec("mnli_matched"), "test_matched", "fixtures")
    with pytest.raises(AmuroDataError, match=r"mnli_matched/test_matched row 0: gold label "
                                             r"'label' is hidden \(-1\)"):
        list(iter_docs(get_spec("mnli_matched").rules, "test_matched", rows.to_list(), None,
                       "error"))
