"""The study's data options: split protocol and ``on_invalid`` per set (in the unit identity, the
lm-eval metadata and the records), ``main`` where step names are, per-task recipe options, the
paper's study as a config, and mirrors the cost estimate cannot decode."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from amuro_study.cli import main
from amuro_study.config import StudyConfigError, load_config, parse_config
from amuro_study.evaluate import results_to_records
from amuro_study.plan import build_plan, estimate_cost
from amuro_study.records import PAPER_MAIN_STEP, ResultRecord
from amuro_tasks.harness import load_amuro_set
from amuro_tasks.loading import FIXTURE_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASE = {
    "output_dir": "runs/x", "model": "allenai/OLMo-1B-hf", "revisions": ["step1000", "main"],
    "data": "fixtures", "eval": {"sets": ["arc_easy", "xsum"], "shots": [4]},
}


def _with(**changes: object) -> dict:
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        out[key] = value
    return out


def _steps(steps: list) -> dict:
    return {**{k: v for k, v in BASE.items() if k != "revisions"}, "steps": steps}


def test_main_is_accepted_where_step_names_are_and_placed_last() -> None:
    plan = build_plan(parse_config(BASE))
    assert [(c.revision, c.step) for c in plan.checkpoints] == [
        ("step1000", 1000), ("main", PAPER_MAIN_STEP)]
    steps = build_plan(parse_config(_steps([1000, "main"])), refs=["step1000-tokens4B", "main"])
    assert [(c.revision, c.step) for c in steps.checkpoints] == [
        ("step1000-tokens4B", 1000), ("main", PAPER_MAIN_STEP)]
    # main alone needs no branch listing (no Hub)
    assert [c.revision for c in build_plan(parse_config(_steps(["main"]))).checkpoints] == ["main"]
    explicit = parse_config(_with(revisions=["step1000", {"revision": "main", "step": 738020}]))
    assert explicit.revisions[1].step == 738020
    with pytest.raises(StudyConfigError, match=r"^revisions\[1\]: main would be placed at step "
                                               r"750,000 .* give its step"):
        parse_config(_with(revisions=["step900000", "main"]))
    with pytest.raises(StudyConfigError, match=r"^steps\[2\]: duplicate entry 'main'"):
        parse_config(_steps(["main", 1, "main"]))


def test_the_split_protocol_is_part_of_the_unit_and_reaches_lm_eval_and_the_records() -> None:
    paper = build_plan(parse_config(BASE)).base_evals[0]
    upstream = build_plan(parse_config(_with(eval={**BASE["eval"], "splits": "upstream"})))
    up = upstream.base_evals[0]
    assert (paper.splits, up.splits) == ("paper", "upstream") and paper.uid != up.uid
    assert up.lm_eval_metadata() == {"amuro_data": "fixtures", "amuro_scoring": "choice",
                                     "amuro_split": "upstream"}
    with pytest.raises(StudyConfigError, match=r"^eval.splits: must be one of paper, upstream"):
        parse_config(_with(eval={**BASE["eval"], "splits": "test"}))
    # the records say which protocol and split, and the data commit, from what the load read
    docs = load_amuro_set("arc_easy", **up.lm_eval_metadata())
    from amuro_study.evaluate import data_read

    data = data_read(up)
    assert data["arc_easy"]["scored_split"] == "test" and len(docs["eval"]) == 12
    results = {"results": {t.task_name: {"acc,none": 0.5, "acc_stderr,none": 0.1}
                           for t in up.tasks}}
    records = results_to_records(up, results, commit=None, data=data)
    arc = next(r for r in records if r.eval_set == "arc_easy")
    assert (arc.protocol, arc.split, arc.data_commit) == ("upstream", "test", None)
    assert ResultRecord.from_dict(arc.to_dict()) == arc


def test_on_invalid_per_set_is_part_of_the_unit_and_reaches_lm_eval(tmp_path: Path) -> None:
    cfg = _with(eval={"sets": ["arc_easy", {"name": "xsum", "on_invalid": "skip"}],
                      "shots": [4]})
    unit = build_plan(parse_config(cfg)).base_evals[0]
    assert unit.skip_invalid == ("xsum",)
    assert unit.lm_eval_metadata()["amuro_on_invalid"] == {"xsum": "skip"}
    assert unit.uid != build_plan(parse_config(BASE)).base_evals[0].uid
    every = _with(eval={**BASE["eval"], "on_invalid": "skip"})
    assert build_plan(parse_config(every)).base_evals[0].skip_invalid == ("arc_easy", "xsum")
    with pytest.raises(StudyConfigError, match=r"^eval.sets\[0\].on_invalid: must be one of"):
        parse_config(_with(eval={"sets": [{"name": "xsum", "on_invalid": "drop"}]}))
    # the plugin applies it per set: a bad row is skipped (and counted) in xsum only
    mirror = tmp_path / "m"
    folder = mirror / "EdinburghNLP__xsum" / "default"
    folder.mkdir(parents=True)
    rows = [json.loads(x) for x in
            (FIXTURE_DIR / "EdinburghNLP__xsum/default/test.jsonl").read_text().splitlines()]
    rows[0]["summary"] = ""  # an invalid row: nothing to score against
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "train.jsonl").write_text(
        (FIXTURE_DIR / "EdinburghNLP__xsum/default/train.jsonl").read_text())
    from amuro_tasks.loading import data_provenance

    metadata = {**unit.lm_eval_metadata(), "amuro_data": str(mirror)}
    docs = load_amuro_set("xsum", **metadata)
    assert 0 not in docs["eval"]["row_index"]
    assert data_provenance("xsum")["dropped"]["invalid"] == 1
    with pytest.raises(Exception, match=r"xsum/test row 0: field 'summary' is empty"):
        load_amuro_set("xsum", **{**metadata, "amuro_on_invalid": {"arc_easy": "skip"}})


def test_per_task_recipe_options() -> None:
    cfg = _with(finetune={"tasks": ["mnli", "tulu"], "by_task": {"tulu": {
        "sample_fraction": 0.05}}})
    plan = build_plan(parse_config(cfg))
    fractions = {f.task: f.sample_fraction for f in plan.finetunes}
    assert fractions == {"mnli": None, "tulu": 0.05}
    for bad, key in [({"paws": {"seed": 1}}, r"finetune.by_task.paws: not one of"),
                     ({"tulu": {"nope": 1}}, r"finetune.by_task.tulu.nope: unknown key"),
                     ({"tulu": {"sample_fraction": 2}}, r"finetune.by_task.tulu.sample_fraction"),
                     ({"tulu": {"learning_rates": [1]}}, r"finetune.by_task.tulu.learning_rates")]:
        with pytest.raises(StudyConfigError, match="^" + key):
            parse_config(_with(finetune={"tasks": ["mnli", "tulu"], "by_task": bad}))


def test_the_papers_study_plans_offline_and_prints_every_unit(
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = EXAMPLES / "olmo1b_paper.yaml"
    config = load_config(path)
    assert [r.revision for r in config.revisions] == [
        "step1000", "step18000", "step342000", "step424000", "step505000", "step592000",
        "step738000", "main"]
    assert config.eval.scoring == "first_token" and config.eval.splits == "paper"
    assert config.eval.shots == (4,) and len(config.eval.sets) == 21
    assert main(["study", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    plan = build_plan(config)
    assert len(plan.finetunes) == 8 * 5 * 3 and len(plan.base_evals) == 8
    for unit in plan.units().values():
        assert f"{unit.uid}  {unit.describe()}" in out
    tulu = {f.recipe["sample_fraction"] for f in plan.finetunes if f.task == "tulu"}
    assert tulu == {0.05}
    assert {f.learning_rate for f in plan.finetunes} == {2e-5, 2e-6, 2e-7}
    raw = yaml.safe_load(path.read_text())
    assert raw["finetune"]["tasks"] == ["mnli", "paws", "xsum", "socialiqa", "tulu"]


def test_the_cost_estimate_counts_a_mirror_it_cannot_decode(tmp_path: Path) -> None:
    """Before: a UnicodeDecodeError traceback from the cost estimate, before anything ran."""
    folder = tmp_path / "nyu-mll__glue" / "rte"
    folder.mkdir(parents=True)
    lines = (FIXTURE_DIR / "nyu-mll__glue/rte/validation.jsonl").read_bytes().splitlines(True)
    lines[2] = lines[2].replace(b" at the ", b" at the caf\xe9 ", 1)
    (folder / "validation.jsonl").write_bytes(b"".join(lines))
    cfg = _with(data=str(tmp_path), eval={"sets": ["rte"], "shots": [4]})
    cost = estimate_cost(build_plan(parse_config(cfg)))
    assert cost.scored_examples == 2 * len(lines)


@pytest.mark.slow
def test_an_evaluation_unit_records_what_its_data_loads_read(tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:
    """A real evaluation (lm-eval, the tiny model): the records name the protocol, the split and
    the data commit; ``result.json`` keeps, per set, what the load read and dropped."""
    import json as json_

    from amuro_study.runner import DONE, execute_unit

    cfg = {"output_dir": str(tmp_path / "s"), "model": str(tiny_model_dir),
           "revisions": ["main"], "data": "fixtures",
           "eval": {"sets": ["arc_easy", {"name": "xsum", "on_invalid": "skip"}],
                    "shots": [0], "limit": 2, "splits": "upstream"},
           "backend": {"device": "cpu", "dtype": "float32"}}
    plan = build_plan(parse_config(cfg))
    (unit,) = plan.base_evals
    outcome = execute_unit(plan, unit.uid)
    assert outcome.status == DONE, outcome.error
    result = json_.loads((plan.unit_dir(unit.uid) / "result.json").read_text())
    records = [ResultRecord.from_dict(r) for r in result["records"]]
    assert {(r.eval_set, r.protocol, r.split) for r in records} == {
        ("arc_easy", "upstream", "test"), ("xsum", "upstream", "test")}
    data = result["lm_eval"]["data"]
    assert data["xsum"]["on_invalid"] == "skip" and data["arc_easy"]["on_invalid"] == "error"
    assert data["xsum"]["dropped"] == {"documented empty field": 2}
    assert {s["source"] for s in data["arc_easy"]["sources"]} == {"fixtures"}


def test_a_bare_step_is_evaluated_at_the_commit_of_its_branch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``step18000`` names no Hub branch (OLMo's are ``step18000-tokens75B``-like): the base
    evaluation loads the commit the one resolver finds for it, and records it."""
    from amuro_sft.hub import ResolvedModel
    from amuro_study import runner

    plan = build_plan(parse_config({**BASE, "revisions": ["step18000"], "data": "fixtures"}))
    (unit,) = plan.base_evals
    seen = {}

    def evaluate(unit, pretrained, revision, unit_dir, backend, *, commit=None):
        seen.update(pretrained=pretrained, revision=revision, commit=commit)
        return [], {}

    monkeypatch.setattr(runner, "evaluate_unit", evaluate)
    monkeypatch.setattr(runner, "checkpoint_id", lambda model, revision=None: None)
    monkeypatch.setattr(runner, "resolve_revision", lambda model, revision: ResolvedModel(
        model, "step18000-tokens75B", "c" * 40, False))
    runner._run_eval(plan, unit)
    assert seen == {"pretrained": "allenai/OLMo-1B-hf", "revision": "c" * 40, "commit": "c" * 40}
    # a named branch resolved (best effort) to a commit is loaded at that commit too
    monkeypatch.setattr(runner, "checkpoint_id", lambda model, revision=None: "d" * 40)
    runner._run_eval(plan, unit)
    assert seen["revision"] == seen["commit"] == "d" * 40
