"""The real-data code path (``AMURO_DATA=hub``), offline: Hub and GitHub repositories are local
stand-ins laid out like the real ones (``tests/hub_standin.py``), read through the same code."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_standin import (
    fixture_rows,
    github_llmbar,
    hub_repo,
    parquet_conversion,
    parquet_repo,
    point_at,
)

from amuro_tasks import sources
from amuro_tasks.check import check_split
from amuro_tasks.errors import AmuroDataError
from amuro_tasks.families.arc import ARC_COMMIT
from amuro_tasks.families.llmbar import LLMBAR_ADVERSARIAL_SPLITS, LLMBAR_COMMIT
from amuro_tasks.families.summarization import XLSUM_PARQUET_COMMIT, XSUM_PARQUET_COMMIT
from amuro_tasks.loading import LoadOptions, data_provenance, load_docs
from amuro_tasks.specs import SPECS, get_spec

HUB = LoadOptions(source="hub")


def _llmbar_splits() -> dict[str, list[dict]]:
    return {s: fixture_rows("princeton-nlp__LLMBar/LLMBar", s)
            for s in ("Natural", *LLMBAR_ADVERSARIAL_SPLITS)}


def test_llmbar_reads_the_authors_json_files_at_the_pinned_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """princeton-nlp/LLMBar on the Hub is a loading script (refused by datasets >= 4): the five
    JSON files it wraps are read from GitHub at a pinned commit, custom split names kept."""
    splits = _llmbar_splits()
    github_llmbar(tmp_path, LLMBAR_COMMIT, splits)
    point_at(monkeypatch, tmp_path)  # no Hub dataset at all: only GitHub files
    adversarial = load_docs("llmbar_adversarial", HUB)
    assert adversarial["eval"]["source_split"] == [
        s for s in LLMBAR_ADVERSARIAL_SPLITS for _ in splits[s]]
    assert adversarial["eval"]["label"] == [
        r["label"] - 1 for s in LLMBAR_ADVERSARIAL_SPLITS for r in splits[s]]
    assert set(adversarial["fewshot"]["source_split"]) == {"Natural"}
    read = data_provenance("llmbar_adversarial")
    assert read["scored_split"] == "+".join(LLMBAR_ADVERSARIAL_SPLITS)
    source = read["sources"][0]
    assert (source["source"], source["commit"]) == ("github", LLMBAR_COMMIT)
    assert source["files"] == [f"{tmp_path}/github/princeton-nlp/LLMBar/{LLMBAR_COMMIT}/"
                               "Dataset/LLMBar/Adversarial/Neighbor/dataset.json"]
    # the same docs as the fixtures (the same rows, in the authors' file format)
    fixtures = load_docs("llmbar_adversarial", LoadOptions(source="fixtures"))
    assert adversarial["eval"].to_list() == fixtures["eval"].to_list()


def test_llmbar_file_missing_at_the_commit_is_named(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    github_llmbar(tmp_path, "0" * 40, _llmbar_splits())  # another commit than the pinned one
    point_at(monkeypatch, tmp_path)
    with pytest.raises(AmuroDataError, match=(
            r"llmbar_natural/Natural: cannot read .*/LLMBar/900616bff90b6c6c8e1681f7d079250637c"
            r"55992/Dataset/LLMBar/Natural/dataset.json .*princeton-nlp__LLMBar/LLMBar/"
            r"Natural.jsonl")):
        load_docs("llmbar_natural", HUB)


@pytest.mark.parametrize("layout", ["new", "old"])
@pytest.mark.parametrize(("name", "dataset", "config", "commit"), [
    ("xsum", "EdinburghNLP/xsum", "default", XSUM_PARQUET_COMMIT),
    ("xlsum", "csebuetnlp/xlsum", "english", XLSUM_PARQUET_COMMIT),
])
def test_script_only_summaries_read_their_parquet_conversion_in_either_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, name: str, dataset: str,
        config: str, commit: str) -> None:
    """The pinned ``refs/convert/parquet`` commits' layout is not verified: both the old
    (``default/xsum-test.parquet``, sharded train) and the new (``default/test/0000.parquet``)
    layout read, the duckdb index files beside them do not, and the files read are recorded."""
    key = get_spec(name).fixture_key
    splits = {s: fixture_rows(key, s) for s in ("train", "test")}
    parquet_conversion(tmp_path, dataset, config, commit, splits, layout)
    point_at(monkeypatch, tmp_path)
    docs = load_docs(name, HUB)
    read = {s["split"]: s for s in data_provenance(name)["sources"]}
    assert docs["eval"].to_list() == load_docs(name, LoadOptions(source="fixtures"))[
        "eval"].to_list()
    assert read["test"]["commit"] == commit and read["test"]["source"] == "hub"
    assert read["test"]["location"] == f"{dataset}@{commit}"
    short = dataset.split("/")[1]
    assert read["test"]["files"] == ([f"{config}/test/0000.parquet"] if layout == "new"
                                     else [f"{config}/{short}-test.parquet"])
    assert len(read["train"]["files"]) == (1 if layout == "new" else 2)
    assert read["train"]["rows"] == len(splits["train"])


def test_a_partly_converted_split_is_read_and_said(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    splits = {s: fixture_rows("EdinburghNLP__xsum/default", s) for s in ("train", "test")}
    parquet_conversion(tmp_path, "EdinburghNLP/xsum", "default", XSUM_PARQUET_COMMIT, splits,
                       "partial")
    point_at(monkeypatch, tmp_path)
    load_docs("xsum", HUB)
    test = next(s for s in data_provenance("xsum")["sources"] if s["split"] == "test")
    assert test["notes"] == ["the parquet conversion holds only part of this split"]


def test_a_commit_without_the_data_names_the_mirror_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_repo(tmp_path, "EdinburghNLP/xsum", XSUM_PARQUET_COMMIT)  # only the loading script
    (tmp_path / "hub" / f"EdinburghNLP/xsum@{XSUM_PARQUET_COMMIT}" / "xsum.py").write_text("")
    point_at(monkeypatch, tmp_path)
    with pytest.raises(AmuroDataError) as err:
        load_docs("xsum", HUB)
    message = str(err.value)
    assert message.startswith(f"xsum/test: no file of EdinburghNLP/xsum@{XSUM_PARQUET_COMMIT} "
                              "matches default/test/*.parquet, ")
    assert "write the split as <dir>/EdinburghNLP__xsum/default/test.jsonl (or .parquet) and " \
           "set AMURO_DATA=<dir>" in message


def test_a_pinned_hub_dataset_is_read_at_its_commit(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {"ARC-Easy": {s: fixture_rows("allenai__ai2_arc/ARC-Easy", s)
                            for s in ("train", "validation", "test")}}
    parquet_repo(tmp_path, "allenai/ai2_arc", ARC_COMMIT, configs)
    parquet_repo(tmp_path, "allenai/ai2_arc", "main", {"ARC-Easy": {  # main moved on: not read
        s: rows[:1] for s, rows in configs["ARC-Easy"].items()}})
    point_at(monkeypatch, tmp_path, {"allenai/ai2_arc": "main"})
    docs = load_docs("arc_easy", HUB)
    assert len(docs["eval"]) == len(configs["ARC-Easy"]["validation"])
    assert {s["commit"] for s in data_provenance("arc_easy")["sources"]} == {ARC_COMMIT}
    upstream = load_docs("arc_easy", LoadOptions(source="hub", protocol="upstream"))
    assert len(upstream["eval"]) == len(configs["ARC-Easy"]["test"])
    assert data_provenance("arc_easy", "upstream")["scored_split"] == "test"


def test_an_unpinned_hub_dataset_is_read_at_the_commit_main_resolves_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = "1234abcd" * 5
    parquet_repo(tmp_path, "nyu-mll/glue", sha, {"mnli": {
        s: fixture_rows("nyu-mll__glue/mnli", s) for s in ("train", "validation_matched")}})
    point_at(monkeypatch, tmp_path, {"nyu-mll/glue": sha})
    load_docs("mnli_matched", HUB)
    read = data_provenance("mnli_matched")["sources"]
    assert [(s["split"], s["revision"], s["commit"]) for s in read] == [
        ("validation_matched", "main", sha), ("train", "main", sha)]
    # a revision the Hub cannot resolve: the set, the split and the way out are named
    point_at(monkeypatch, tmp_path, {})
    with pytest.raises(AmuroDataError, match=r"^mnli_matched/validation_matched: nyu-mll/glue: "
                                             r"cannot resolve revision 'main' .*AMURO_DATA=<dir>"):
        load_docs("mnli_matched", HUB)


def test_offline_an_unpinned_read_records_no_commit(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    parquet_repo(tmp_path, "nyu-mll/glue", "main", {"rte": {
        s: fixture_rows("nyu-mll__glue/rte", s) for s in ("train", "validation")}})
    point_at(monkeypatch, tmp_path)
    monkeypatch.setattr(sources, "offline", lambda: True)
    load_docs("rte", HUB)
    read = data_provenance("rte")["sources"][0]
    assert read["commit"] is None and read["notes"][0].startswith("offline: revision 'main' not")


def test_every_hub_set_is_pinned_where_a_commit_is_known() -> None:
    pinned = {n: s.revision for n, s in SPECS.items() if s.revision}
    assert set(pinned) == {"arc_easy", "arc_challenge", "xsum", "xlsum", "llmbar_natural",
                           "llmbar_adversarial"}
    assert all(sources.is_commit(c) for c in pinned.values())
    # script-only datasets are never read through their Hub id
    assert all(SPECS[n].hub_files for n in ("xsum", "xlsum", "llmbar_natural"))


def test_the_preflight_streams_the_first_rows_from_the_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = {s: fixture_rows("EdinburghNLP__xsum/default", s) for s in ("train", "test")}
    parquet_conversion(tmp_path, "EdinburghNLP/xsum", "default", XSUM_PARQUET_COMMIT, splits)
    point_at(monkeypatch, tmp_path)
    report = check_split(get_spec("xsum"), "test", "hub", n=10)
    assert report.ok and report.rows_read == 10
    assert report.source["commit"] == XSUM_PARQUET_COMMIT
    assert report.documented_empty == sum(r["document"] == "" for r in splits["test"][:10]) > 0
    # LLMBar's JSON arrays stream from GitHub too
    github_llmbar(tmp_path, LLMBAR_COMMIT, _llmbar_splits())
    natural = check_split(get_spec("llmbar_natural"), "Natural", "hub", n=5)
    assert natural.ok and natural.rows_read == 5 and natural.source["commit"] == LLMBAR_COMMIT
