"""The plugin's per-sample outputs on the fixtures equal the recorded ones: every one of the 63
tasks at its default shots, the LLMBar tasks with 4 shots (their multi-split shot pools), and
``first_token`` scoring. Recorded before the task declarations were restructured (issue 10);
re-recorded in issue 11, where the default split protocol (``paper``) moved ARC, OpenBookQA and
SciQ-MC to validation and the fixtures gained the real datasets' defects (which also retrains
the tiny model's tokenizer on the fixture texts, so every log-likelihood moved).

Contexts (with their shots), continuations, generation arguments, targets and generations are
compared exactly; log-likelihoods and metric values within 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lm_eval_outputs import RUNS, assert_same, load_recorded, plugin_docs, plugin_outputs

from amuro_tasks.specs import SPECS


def test_the_recording_covers_every_task() -> None:
    recorded = load_recorded()
    assert set(recorded) == {name for name, *_ in RUNS} | {"docs"}
    assert len(recorded["default_shots"]) == 3 * len(SPECS) == 63
    for task, run in recorded["default_shots"].items():
        assert run["samples"], task
        assert run["n_shot"] == (0 if "llmbar" in task else 4), task
    assert {t["n_shot"] for t in recorded["llmbar_4_shots"].values()} == {4}


@pytest.mark.slow
def test_plugin_outputs_equal_the_recorded_ones(tiny_model_dir: Path) -> None:
    recorded = load_recorded()
    recorded.pop("docs")
    assert_same(plugin_outputs(tiny_model_dir), recorded)


def test_every_sets_docs_and_shot_pool_equal_the_recorded_ones() -> None:
    assert plugin_docs() == load_recorded()["docs"]
