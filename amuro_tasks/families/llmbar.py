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
_PARQUET = "refs/convert/parquet"
# princeton-nlp/LLMBar: label 1 means output_1 is better, 2 means output_2.
_ROWS = Normalizer("labelled", {
    "fields": {"instruction": "input", "output_a": "output_1", "output_b": "output_2"},
    "label": "label", "label_map": {1: 0, 2: 1}, "choices": LLMBAR_CHOICES,
})
_NOTES = (
    "princeton-nlp/LLMBar ships only a loading script; on the Hub it is read from its parquet "
    "conversion. LLMBar has no training split: the few-shot pool of Natural is drawn from the "
    "Adversarial splits and vice versa (the tasks are zero-shot by default)."
)

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
                fewshot_split=LLMBAR_ADVERSARIAL_SPLITS, revision=_PARQUET,
                hub_data_files="{config}/{split}/*.parquet", notes=_NOTES),
        EvalSet("llmbar_adversarial", "princeton-nlp/LLMBar", "LLMBar", LLMBAR_ADVERSARIAL_SPLITS,
                _ROWS, fewshot_split="Natural", revision=_PARQUET,
                hub_data_files="{config}/{split}/*.parquet",
                notes="The four Adversarial_* splits (Neighbor, GPTInst, GPTOut, Manual), "
                      "scored as one set. " + _NOTES),
    ),
)
