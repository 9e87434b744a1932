"""amuro's recommended (fast) evaluation settings change speed, never scores."""

from __future__ import annotations

from pathlib import Path

import pytest

import amuro_tasks
from amuro_tasks.cli import with_include_path, with_recommended_settings
from amuro_tasks.loading import load_docs
from amuro_tasks.settings import lm_eval_model, recommended_eval_kwargs, recommended_model_args

TASKS = ["amuro_mnli_matched_default", "amuro_paws_io", "amuro_arc_easy_instruct",
         "amuro_xsum_default", "amuro_socialiqa_instruct"]


def _scores(out: dict) -> dict[str, float]:
    return {t: v for t, r in out["results"].items() for k, v in r.items()
            if k in ("acc,none", "acc_norm,none", "rougeL,none")}


@pytest.mark.slow
def test_naive_and_recommended_settings_give_identical_scores(tiny_model_dir: Path) -> None:
    from lm_eval import simple_evaluate

    naive: dict[str, float] = {}
    for task in TASKS:  # what separate lm_eval runs with batch size 1 compute
        load_docs.cache_clear()
        out = simple_evaluate(model="hf", model_args=f"pretrained={tiny_model_dir},dtype=float32",
                              tasks=[task], batch_size=1, device="cpu", limit=8,
                              task_manager=amuro_tasks.task_manager())
        naive.update(_scores(out))

    # the recommended path: amuro-hf (shared prefixes), batch 16, one call for every task
    from amuro_tasks.prefix_lm import SharedPrefixHFLM

    lm = SharedPrefixHFLM(pretrained=str(tiny_model_dir), dtype="float32", device="cpu",
                          **recommended_eval_kwargs("cpu"))
    fast = _scores(simple_evaluate(model=lm, tasks=TASKS, limit=8,
                                   task_manager=amuro_tasks.task_manager()))
    assert len(naive) >= len(TASKS) and fast == naive
    assert lm.prefix_stats and all(s.groups for s in lm.prefix_stats)


def test_recommended_settings_per_device_and_backend() -> None:
    assert recommended_eval_kwargs("cuda:0") == {"batch_size": "auto", "max_batch_size": 256}
    assert recommended_eval_kwargs("cpu") == {"batch_size": 16}
    assert recommended_model_args("vllm") == {"enable_prefix_caching": True}
    assert recommended_model_args("hf") == {}
    assert lm_eval_model("hf") == "amuro-hf" and lm_eval_model("hf", shared_prefix=False) == "hf"
    assert lm_eval_model("vllm") == "vllm"


def test_amuro_eval_adds_recommended_settings_unless_given() -> None:
    args = with_recommended_settings(with_include_path(["--model", "hf", "--device", "cpu"]))
    assert args[args.index("--batch_size") + 1] == "16" and "--max_batch_size" not in args
    gpu = with_recommended_settings(["--device", "cuda:0"])
    assert gpu[gpu.index("--batch_size") + 1] == "auto"
    assert gpu[gpu.index("--max_batch_size") + 1] == "256"
    assert args[args.index("--include_path") + 1] == amuro_tasks.include_path()
    # lm-eval's hf model (named, or lm-eval's default) runs as amuro-hf; other models as given
    assert args[args.index("--model") + 1] == "amuro-hf"
    assert gpu[gpu.index("--model") + 1] == "amuro-hf"
    assert "--model=amuro-hf" in with_recommended_settings(["--model=hf", "--device", "cpu"])
    vllm = with_recommended_settings(["--model", "vllm", "--device", "cuda"])
    assert vllm[vllm.index("--model") + 1] == "vllm"
    for short in (["-M", "vllm"], ["-Mvllm"]):  # lm-eval's short flag: never a second --model
        assert "--model" not in with_recommended_settings([*short, "--device", "cuda"])
    assert with_recommended_settings(["-M", "hf", "--device", "cpu"])[:2] == ["-M", "amuro-hf"]
    mine = with_recommended_settings(["--device=cuda:1", "--batch_size", "4"])
    assert mine == ["--device=cuda:1", "--batch_size", "4", "--model", "amuro-hf"]
    assert with_recommended_settings(["ls", "tasks"]) == ["ls", "tasks"]
    # lm-eval's short form counts as given; a --config file keeps its own settings
    assert with_recommended_settings(["--device", "cpu", "-b", "8"]) == [
        "--device", "cpu", "-b", "8", "--model", "amuro-hf"]
    assert with_recommended_settings(["--device", "cpu", "-b8"]) == [
        "--device", "cpu", "-b8", "--model", "amuro-hf"]
    assert with_recommended_settings(["run", "--config", "c.yaml"]) == ["run", "--config",
                                                                        "c.yaml"]
    assert with_recommended_settings(["run", "-C", "c.yaml"]) == ["run", "-C", "c.yaml"]
