"""Study config validation and grid planning (fast: nothing is trained or evaluated)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from amuro_study.cli import main
from amuro_study.config import StudyConfigError, load_config, parse_config, resolve_steps
from amuro_study.plan import build_plan, estimate_cost

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"

HUB = {
    "output_dir": "runs/x",
    "model": "allenai/OLMo-1B-hf",
    "revisions": ["step1000-tokens4B", {"revision": "main", "step": 750000}],
    "finetune": {"tasks": ["mnli", "xsum"]},
    "eval": {"sets": ["mnli_matched", {"name": "xsum", "formats": ["default", "io"]}],
             "formats": ["default", "instruct"], "shots": [0, 4]},
}


def with_(base: dict, path: str, value: object) -> dict:
    """A deep copy of ``base`` with the dotted ``path`` set (``value=KeyError`` deletes)."""
    out = copy.deepcopy(base)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return out


def test_demo_config_parses_and_plans(tmp_path: Path) -> None:
    config = load_config(DEMO, output_dir=tmp_path / "demo")
    assert config.pretrain is not None and config.offline
    world = config.pretrain.world
    assert world is not None and config.data == str(tmp_path / "demo" / "world")
    # the world was written when the config was read: a mirror the loading code reads
    from amuro_tasks.loading import LoadOptions, load_docs

    docs = load_docs("mnli_matched", LoadOptions(source=config.data))
    assert len(docs["eval"]) == world.eval_rows
    plan = build_plan(config)
    names = [s for s, _ in plan.stages()]
    assert names == ["pretrain", "base-eval", "finetune", "finetuned-eval"]
    n_ckpt = len(config.pretrain.save_steps)
    assert len(plan.base_evals) == n_ckpt
    assert len(plan.finetunes) == n_ckpt * 2
    assert len(plan.finetuned_evals) == n_ckpt * 2
    assert [c.step for c in plan.checkpoints] == list(config.pretrain.save_steps)


def test_grid_identity_and_dependencies() -> None:
    plan = build_plan(parse_config(HUB))
    # 2 checkpoints x 2 shot counts of base evals; 2 x 2 fine-tunes, each evaluated at 2 shots
    assert len(plan.base_evals) == 4 and len(plan.finetunes) == 4
    assert len(plan.finetuned_evals) == 8
    units = plan.units()
    assert len(units) == 16  # ids are distinct
    tasks = [t.task_name for t in plan.base_evals[0].tasks]
    assert tasks == ["amuro_mnli_matched_default", "amuro_mnli_matched_instruct",
                     "amuro_xsum_default", "amuro_xsum_io"]
    for unit in plan.base_evals:  # computed once, shared by every comparison
        assert unit.deps == () and unit.finetune is None
    for unit in plan.finetuned_evals:
        assert unit.deps == (unit.finetune.uid,) and unit.finetune.uid in units
        assert unit.checkpoint == unit.finetune.base
    # the paper's learning rates fill in when none is given
    assert {f.task: f.learning_rate for f in plan.finetunes} == {"mnli": 2e-6, "xsum": 2e-7}
    assert {f.epochs for f in plan.finetunes} == {3.0}
    # revision steps come from the Hub's branch scheme; main's is given in the config
    assert [(c.revision, c.step) for c in plan.checkpoints] == [("step1000-tokens4B", 1000),
                                                                 ("main", 750000)]


def test_unit_ids_are_stable_and_independent_of_output_dir() -> None:
    a = build_plan(parse_config(HUB))
    b = build_plan(parse_config(with_(HUB, "output_dir", "elsewhere")))
    assert list(a.units()) == list(b.units())
    c = build_plan(parse_config(with_(HUB, "eval.limit", 10)))
    assert set(a.units()).isdisjoint(u for u in c.units() if u.startswith("eval-"))
    # a fine-tune's id does not change when only evaluation options change
    assert {f.uid for f in a.finetunes} == {f.uid for f in c.finetunes}


def test_eval_sets_auto_covers_id_ood_and_cross_task() -> None:
    plan = build_plan(parse_config(with_(HUB, "eval", {"sets": "auto"})))
    sets = {t.eval_set for t in plan.base_evals[0].tasks}
    assert sets == {"mnli_matched", "mnli_mismatched", "rte", "gpt3nli", "xsum", "xlsum", "cnn"}


def test_a_batch_size_given_as_text_is_the_recipes_to_read() -> None:
    """``effective_batch_size: "8"``, as amuro-sft and TRL's parser take it: accepted."""
    config = parse_config(with_(HUB, "finetune.effective_batch_size", "8"))
    assert {r.args.effective_batch_size for r in config.finetune.recipes.values()} == {8}


@pytest.mark.parametrize(("path", "value", "key"), [
    ("finetune.tasks", ["mnli", "mnlii"], "finetune.tasks[1]"),
    ("revisions", [], "revisions"),
    ("revisions", "main", "revisions"),
    ("revisions", ["step1", "step1"], "revisions[1]"),
    ("revisions", ["step1", 7], "revisions[1]"),
    ("revisions", ["step1", "latest"], "revisions[1]"),  # no step in its name, none given
    ("revisions", ["step800000", "main"], "revisions[1]"),  # main would not come last
    ("revisions", [{"revision": "1a2b3c"}], "revisions[0]"),
    ("finetune.learning_rates", {"mnli": []}, "finetune.learning_rates.mnli"),
    ("finetune.learning_rates", [], "finetune.learning_rates"),
    ("eval.limit", 1.0, "eval.limit"),  # lm-eval reads 1.0 as one example
    ("backend.device", "gpux", "backend.device"),
    ("backend.dtype", "float99", "backend.dtype"),
    ("backend.batch_size", "autoxyz", "backend.batch_size"),
    ("backend.num_gpus", 3, "backend.num_gpus"),  # 8 examples per step over 3 processes
    ("backend.cpu_threads", 0, "backend.cpu_threads"),
    ("backend.slurm", {"timeout_min": 0}, "backend.slurm.timeout_min"),
    ("revisions", KeyError, "revisions"),
    ("model", KeyError, "model"),
    ("output_dir", KeyError, "output_dir"),
    ("eval.sets", ["mnli_matched", "nope"], "eval.sets[1]"),
    ("eval.formats", ["default", "chat"], "eval.formats[1]"),
    ("eval.shots", [-1], "eval.shots[0]"),
    ("eval.limit", 0, "eval.limit"),
    ("eval.limit", 1.5, "eval.limit"),
    ("eval.colour", "red", "eval.colour"),
    ("finetune.learning_rates", {"mnli": [2e-6], "paws": [1e-5]}, "finetune.learning_rates.paws"),
    ("finetune.learning_rates", [0.0], "finetune.learning_rates[0]"),
    ("finetune.max_steps", 0, "finetune.max_steps"),
    ("backend.executor", "kubernetes", "backend.executor"),
    ("backend.eval", "vllm", "backend.eval"),
    ("backend.shared_prefix", "yes", "backend.shared_prefix"),
    ("backend.slurm", {"partitoin": "gpu"}, "backend.slurm.partitoin"),
    ("steps", [1000], "steps"),
    ("modle", "x", "modle"),
    ("pretrain", {"save_steps": [1]}, "model"),
])
def test_bad_config_names_the_key(path: str, value: object, key: str) -> None:
    with pytest.raises(StudyConfigError) as info:
        parse_config(with_(HUB, path, value))
    assert str(info.value).startswith(f"{key}:"), str(info.value)


def test_bad_config_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = with_(HUB, "finetune.tasks", ["mnli", "summarise"])
    cfg["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "finetune.tasks[1]" in err and "summarise" in err
    assert not (tmp_path / "out").exists()


def test_steps_resolve_to_hub_branches() -> None:
    refs = ["main", "step1000-tokens4B", "step10000-tokens41B", "step342000-tokens1434B"]
    revs = resolve_steps("allenai/OLMo-1B-hf", [10000, 342000], refs)
    assert [(r.revision, r.step) for r in revs] == [("step10000-tokens41B", 10000),
                                                     ("step342000-tokens1434B", 342000)]
    with pytest.raises(StudyConfigError, match=r"^steps\[1\]: .*no branch for step 18000.*"
                                               r"step10000-tokens41B"):
        resolve_steps("allenai/OLMo-1B-hf", [1000, 18000], refs)


def test_steps_are_resolved_with_list_repo_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class Ref:
        def __init__(self, name: str) -> None:
            self.name = name

    class Refs:
        branches = [Ref("main"), Ref("step0"), Ref("step512"), Ref("step143000")]

    calls = []

    def fake(repo: str, **kwargs: object) -> Refs:
        calls.append(repo)
        return Refs()

    monkeypatch.setattr(huggingface_hub, "list_repo_refs", fake)
    cfg = with_(HUB, "revisions", KeyError)
    cfg["model"], cfg["steps"] = "EleutherAI/pythia-160m", [0, 512]
    plan = build_plan(parse_config(cfg))
    assert calls == ["EleutherAI/pythia-160m"]
    assert [(c.revision, c.step) for c in plan.checkpoints] == [("step0", 0), ("step512", 512)]


def test_local_model_revisions_are_checked(tmp_path: Path) -> None:
    (tmp_path / "ckpt-a").mkdir()
    cfg = with_(HUB, "model", str(tmp_path))
    cfg["revisions"] = [{"revision": "ckpt-a", "step": 1}, {"revision": "ckpt-b", "step": 5}]
    with pytest.raises(StudyConfigError, match=r"^revisions\[1\]: no checkpoint directory"):
        parse_config(cfg)
    (tmp_path / "ckpt-b").mkdir()
    plan = build_plan(parse_config(cfg))
    assert plan.locate(plan.checkpoints[1]) == (str(tmp_path / "ckpt-b"), None)
    assert plan.checkpoints[1].step == 5


def test_cost_estimate_counts(tmp_path: Path) -> None:
    cfg = with_(HUB, "data", "fixtures")
    cfg["eval"]["limit"] = 5
    cfg["finetune"]["max_steps"] = 7
    plan = build_plan(parse_config(cfg))
    cost = estimate_cost(plan)
    # 12 evaluation units x 4 tasks x 5 rows; xsum (2 of the 4 tasks) generates
    assert cost.model_loads == 12 and cost.scored_examples == 12 * 4 * 5
    assert cost.generated_examples == 12 * 2 * 5
    assert cost.finetune_steps == 4 * 7
    assert cost.estimated_seconds is None
    timed = estimate_cost(plan, durations={"base-eval": [2.0], "finetune": [10.0],
                                           "finetuned-eval": [3.0]})
    assert timed.estimated_seconds == pytest.approx(4 * 2.0 + 4 * 10.0 + 8 * 3.0)


def test_evaluation_precision_is_part_of_a_units_identity() -> None:
    """Results scored in bf16 are never reused for a float32 study (batch size may change:
    it does not change scores)."""
    a = build_plan(parse_config(HUB))
    b = build_plan(parse_config(with_(HUB, "backend", {"dtype": "float32"})))
    c = build_plan(parse_config(with_(HUB, "backend", {"batch_size": 32})))
    evals = [{u.uid for u in p.base_evals} for p in (a, b, c)]
    assert evals[0].isdisjoint(evals[1]) and evals[0] == evals[2]


def test_shared_prefix_scoring_is_the_hf_default_and_not_an_identity() -> None:
    """The hf backend runs as lm-eval model amuro-hf (same scores as hf, tested in
    test_prefix_lm.py), so turning it off reuses the same results."""
    on, off = parse_config(HUB), parse_config(with_(HUB, "backend", {"shared_prefix": False}))
    assert (on.backend.lm_eval_model, off.backend.lm_eval_model) == ("amuro-hf", "hf")
    assert ({u.uid for u in build_plan(on).base_evals}
            == {u.uid for u in build_plan(off).base_evals})


def test_cost_estimate_counts_the_instruction_suite_and_says_what_it_cannot() -> None:
    from amuro_study.plan import estimate_cost

    cfg = with_(HUB, "eval", {"sets": ["arc_easy", "hellaswag", "xsum"], "shots": [4]})
    cost = estimate_cost(build_plan(parse_config(cfg)))
    # 2 base + 4 fine-tuned evaluations x (ARC-Easy validation 570 + HellaSwag val 10,042 +
    # XSum 11,334): the paper's splits
    assert cost.scored_examples == 6 * (570 + 10042 + 11334)
    assert cost.generated_examples == 6 * 11334 and not cost.unknown_sets
    upstream = with_(cfg, "eval", {**cfg["eval"], "splits": "upstream"})  # ARC-Easy test 2,376
    assert estimate_cost(build_plan(parse_config(upstream))).scored_examples == \
        6 * (2376 + 10042 + 11334)
    whole = with_(cfg, "finetune", {"tasks": ["mnli"], "num_train_examples": None})
    cost = estimate_cost(build_plan(parse_config(whole)))
    assert cost.unsized_finetunes == 2 and "size unknown" in "\n".join(cost.lines())


def test_instruction_tuning_is_a_study_task() -> None:
    """finetune.tasks: [tulu] plans TULU fine-tunes with the paper's recipe (lr 2e-6, 5 epochs)
    and, with eval.sets auto, scores them on the OLMo evaluation suite (§3.3)."""
    cfg = with_(with_(HUB, "finetune", {"tasks": ["tulu"]}), "eval", {"sets": "auto"})
    plan = build_plan(parse_config(cfg))
    assert {(f.task, f.learning_rate, f.epochs) for f in plan.finetunes} == {("tulu", 2e-6, 5.0)}
    assert [t.eval_set for t in plan.base_evals[0].tasks] == [
        "arc_easy", "arc_challenge", "openbookqa", "hellaswag", "boolq", "sciq_mc"]
    with pytest.raises(StudyConfigError, match=r"^finetune.format: task 'tulu'"):
        parse_config(with_(cfg, "finetune", {"tasks": ["tulu"], "format": "io"}))


@pytest.mark.parametrize(("world", "extra", "key"), [
    ({"label_noise": 1.5}, {}, "pretrain.world.label_noise"),
    ({"pretrain_sets": ["boolq"]}, {}, "pretrain.world.pretrain_sets[0]"),
    ({"train_rows": 3}, {}, "pretrain.world.train_rows"),
    ({"colour": 1}, {}, "pretrain.world.colour"),
    ({}, {"data": "fixtures"}, "data"),  # the world is the data
])
def test_bad_demo_world_names_the_key(tmp_path: Path, world: dict, extra: dict,
                                      key: str) -> None:
    config = {"output_dir": str(tmp_path / "o"), "pretrain": {"world": world},
              "eval": {"sets": ["rte"]}, **extra}
    with pytest.raises(StudyConfigError) as info:
        parse_config(config)
    assert str(info.value).startswith(f"{key}:"), str(info.value)
    assert not (tmp_path / "o").exists()  # nothing written for a bad config


def test_demo_world_is_deterministic_and_written_once(tmp_path: Path) -> None:
    from amuro_study.config import WorldSpec
    from amuro_study.demo_world import MARKER, write_world

    spec = WorldSpec(train_rows=30, eval_rows=20)
    a, b = write_world(spec, tmp_path / "a"), write_world(spec, tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*.jsonl"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.jsonl"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    mtimes = {f: (a / f).stat().st_mtime_ns for f in files}
    write_world(spec, a)  # the same world: nothing rewritten
    assert {f: (a / f).stat().st_mtime_ns for f in files} == mtimes
    assert (a / MARKER).is_file()
    other = write_world(WorldSpec(train_rows=30, eval_rows=20, seed=1), tmp_path / "c")
    assert (other / files[0]).read_bytes() != (a / files[0]).read_bytes()
