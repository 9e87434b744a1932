"""LLMBar (Zeng et al., 2024): which of two outputs better follows an instruction.

Instruction following, evaluated with the instruction-tuning suite. No upstream lm-eval task
exists: ``default`` is a Question/Answer prompt in the style of the suite's upstream prompts,
``instruct`` follows LLMBar's own "Vanilla" comparison prompt (condensed), ``io`` is the raw
input. Zero-shot by default: two long outputs per prompt would overflow the context with shots.
"""

from __future__ import annotations

from amuro_tasks.family import EvalSet, Family, Prompts
from amuro_tasks.rows import Normalizer

LLMBAR_CHOICES: tuple[str, str] = ("Output (a)", "Output (b)")
LLMBAR_ADVERSARIAL_SPLITS: tuple[str, ...] = (
    "Adversarial_Neighbor", "Adversarial_GPTInst", "Adversarial_GPTOut", "Adversarial_Manual",
)
LLMBAR_GITHUB = "princeton-nlp/LLMBar"
LLMBAR_COMMIT = "900616bff90b6c6c8e1681f7d079250637c55992"
"""HEAD of github.com/princeton-nlp/LLMBar (2024-07-08). Its five ``dataset.json`` files have not
changed since the first commit (``caa7bee``, 2023-10-11): 100 Natural and 134 + 92 + 47 + 46
Adversarial rows, ``input``/``output_1``/``output_2``/``label`` (1 or 2)."""
LLMBAR_FILES: tuple[str, ...] = ("Dataset/LLMBar/{split_path}/dataset.json",)
"""One split's file in that repository: ``Natural`` -> ``Dataset/LLMBar/Natural/dataset.json``,
``Adversarial_Neighbor`` -> ``Dataset/LLMBar/Adversarial/Neighbor/dataset.json``."""
# princeton-nlp/LLMBar: label 1 means output_1 is better, 2 means output_2.
_ROWS = Normalizer("labelled", {
    "fields": {"instruction": "input", "output_a": "output_1", "output_b": "output_2"},
    "label": "label", "label_map": {1: 0, 2: 1}, "choices": LLMBAR_CHOICES,
})
_NOTES = (
    "princeton-nlp/LLMBar on the Hub is only a loading script over the authors' JSON files on "
    "GitHub, which datasets >= 4 refuses to run: the files are read directly, at a pinned "
    "commit. LLMBar has no training split: the few-shot pool of Natural is drawn from the "
    "Adversarial splits and vice versa (the tasks are zero-shot by default)."
)
_SOURCE = {"revision": LLMBAR_COMMIT, "github": LLMBAR_GITHUB, "hub_files": LLMBAR_FILES,
           "split_why": "LLMBar's own subsets (no train/test split; lm-eval has no LLMBar task)."}

FAMILY = Family(
    name="llmbar",
    title="LLMBar",
    kind="pairwise",
    prompts=Prompts(
        default=(
            "Instruction: {{ instruction }}\nOutput (a): {{ output_a }}\nOutput (b): {{ output_b }}"
            "\nQuestion: Which output better follows the instruction, Output (a) or Output (b)?"
            "\nAnswer:"
        ),
        instruct=(
            "Select the Output (a) or Output (b) that better follows the given instruction."
            "\n\n# Instruction:\n{{ instruction }}\n\n# Output (a):\n{{ output_a }}"
            "\n\n# Output (b):\n{{ output_b }}"
            '\n\n# Which is better, Output (a) or Output (b)? Your response should be either'
            ' "Output (a)" or "Output (b)":'
        ),
        io="{{ instruction }} {{ output_a }} {{ output_b }}",
    ),
    default_shots=0,
    format_groups={"llmbar": ("llmbar_natural", "llmbar_adversarial")},
    sets=(
        EvalSet("llmbar_natural", "princeton-nlp/LLMBar", "LLMBar", "Natural", _ROWS,
                fewshot_split=LLMBAR_ADVERSARIAL_SPLITS, paper_scored="Natural (100)",
                notes=_NOTES, **_SOURCE),
        EvalSet("llmbar_adversarial", "princeton-nlp/LLMBar", "LLMBar", LLMBAR_ADVERSARIAL_SPLITS,
                _ROWS, fewshot_split="Natural", paper_scored="the four Adversarial files (319)",
                **_SOURCE,
                notes="The four Adversarial_* splits (Neighbor, GPTInst, GPTOut, Manual), "
                      "scored as one set. " + _NOTES),
    ),
)
