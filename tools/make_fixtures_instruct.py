"""Write the synthetic fixtures of the instruction-tuning suite (``amuro_tasks/fixtures``).

Like ``tools/make_fixtures.py``: every row is made up here from small word lists (no real
dataset row is ever committed), in each dataset's real schema, so the real normalisers run on
them. A few rows exercise documented quirks of the real data: ARC rows labelled ``1``-``4``
instead of ``A``-``D`` and rows with 3 or 5 options, OpenBookQA answer keys with stray
whitespace, HellaSwag WikiHow ``[title]``/``[header]`` artefacts and empty ``ctx_b``, hidden test
labels (HellaSwag ``""``, SuperGLUE ``-1``). SciQ (``allenai/sciq``) is shared with the
question-generation set and written by ``tools/make_fixtures.py``.
Run ``python tools/make_fixtures_instruct.py`` (deterministic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "amuro_tasks" / "fixtures"

ANIMALS = ["owl", "frog", "bee", "fox", "crab", "moth", "seal", "wren"]
MATERIALS = ["iron", "wood", "glass", "copper", "rubber", "wool", "clay", "salt"]
PROPERTIES = ["melts", "floats", "rusts", "bends", "glows", "sinks", "cracks", "dissolves"]
SEASONS = ["spring", "summer", "autumn", "winter"]
ACTIVITIES = ["Washing dishes", "Painting a fence", "Making tea", "Tying a knot",
              "Planting seeds", "Fixing a bike"]
ACTIONS = ["picks up a cloth", "opens a tin", "pours water", "turns a wheel", "digs a hole",
           "pulls a rope", "wipes the table", "stirs the pot"]
NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana"]
TASKS = ["Write a haiku about {x}.", "List three facts about {x}.",
         "Explain in one sentence why {x} matters.", "Give a short title for a story about {x}."]


def write(key: str, split: str, rows: list[dict]) -> None:
    """Write ``rows`` to ``fixtures/<key>/<split>.jsonl``."""
    path = OUT / key / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def science_item(rng: random.Random) -> tuple[str, str, list[str]]:
    """A made-up science question, its answer and three wrong answers."""
    material, prop = rng.choice(MATERIALS), rng.choice(PROPERTIES)
    wrong = rng.sample([m for m in MATERIALS if m != material], 3)
    return f"Which material {prop} when left in water for a {rng.choice(SEASONS)}?", material, wrong


def arc_rows(rng: random.Random, n: int, prefix: str) -> list[dict]:
    """``allenai/ai2_arc`` rows: id, question, choices{text,label}, answerKey."""
    rows = []
    for i in range(n):
        question, answer, wrong = science_item(rng)
        n_options = 3 if i % 7 == 3 else 5 if i % 7 == 5 else 4  # the real set has 3..5
        options = (wrong + [rng.choice(ANIMALS)])[: n_options - 1]
        gold = rng.randrange(n_options)
        options.insert(gold, answer)
        # some real 4-option rows (NYSEDREGENTS) use "1".."4" as labels and answer keys
        letters = "1234" if i % 5 == 2 and n_options == 4 else "ABCDE"
        labels = list(letters[:n_options])
        rows.append({"id": f"{prefix}_{i:05d}", "question": question,
                     "choices": {"text": options, "label": labels}, "answerKey": labels[gold]})
    return rows


def openbookqa_rows(rng: random.Random, n: int) -> list[dict]:
    """``allenai/openbookqa`` (main) rows: id, question_stem, choices{text,label}, answerKey."""
    rows = []
    for i in range(n):
        animal, material = rng.choice(ANIMALS), rng.choice(MATERIALS)
        answer = f"it {rng.choice(PROPERTIES)}"
        wrong = [f"it {p}" for p in rng.sample([p for p in PROPERTIES if p not in answer], 3)]
        gold = rng.randrange(4)
        wrong.insert(gold, answer)
        key = "ABCD"[gold]
        rows.append({"id": f"{i}-{rng.randrange(1000)}",
                     "question_stem": f"A {animal} drops a piece of {material} in a pond and",
                     "choices": {"text": wrong, "label": list("ABCD")},
                     # upstream strips the key (answerKey.lstrip()); exercise that
                     "answerKey": f" {key}" if i % 6 == 4 else key})
    return rows


def hellaswag_rows(rng: random.Random, n: int, split: str) -> list[dict]:
    """``Rowan/hellaswag`` rows; labels are strings, hidden (``""``) in the test split."""
    rows = []
    for i in range(n):
        activity, name = rng.choice(ACTIVITIES), rng.choice(NAMES)
        first, second = rng.sample(ACTIONS, 2)
        wikihow = i % 3 == 1
        if wikihow:  # WikiHow rows: bracketed artefacts and, often, an empty ctx_b
            ctx_a = f"[header] How to {activity.lower()} [title] Get ready. [step] {name} {first}."
            ctx_b = ""
        else:
            ctx_a = f"{name} {first} in the kitchen."
            ctx_b = f"then {name.lower()} {second}"
        endings = [f"and {a} [substeps] slowly." if wikihow else f"and {a}."
                   for a in rng.sample(ACTIONS, 4)]
        label = "" if split == "test" else str(rng.randrange(4))
        rows.append({"ind": 100 * i + 7, "activity_label": activity, "ctx_a": ctx_a,
                     "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}".strip(), "endings": endings,
                     "source_id": f"{'wikihow' if wikihow else 'activitynet'}~{i}",
                     "split": "val" if split == "validation" else split,
                     "split_type": "indomain" if i % 2 else "zeroshot", "label": label})
    return rows


def boolq_rows(rng: random.Random, n: int, split: str) -> list[dict]:
    """``aps/super_glue`` (boolq) rows: question (lowercase, no "?"), passage, idx, label."""
    rows = []
    for i in range(n):
        animal, material, prop = rng.choice(ANIMALS), rng.choice(MATERIALS), rng.choice(PROPERTIES)
        truth = rng.randrange(2)
        claim = prop if truth else rng.choice([p for p in PROPERTIES if p != prop])
        passage = (f"{material.capitalize()} is a common material. In tests by a curious "
                   f"{animal}, {material} {prop} when it gets wet.")
        rows.append({"question": f"does {material} {claim[:-1] if claim.endswith('s') else claim}"
                                 " in water",
                     "passage": passage, "idx": i, "label": -1 if split == "test" else truth})
    return rows


def llmbar_rows(rng: random.Random, n: int, subset: str) -> list[dict]:
    """``princeton-nlp/LLMBar`` rows: input, output_1, output_2, label (1 or 2 is better)."""
    rows = []
    for _ in range(n):
        topic = rng.choice(ANIMALS + MATERIALS)
        instruction = rng.choice(TASKS).format(x=f"the {topic}")
        good = f"Here is a response about the {topic}:\nThe {topic} is {rng.choice(SEASONS)}-like."
        bad = (f"The {rng.choice(ANIMALS)} is nice." if subset == "Natural"
               else f"Here is a polished response about the {topic}s of {rng.choice(SEASONS)}.")
        label = rng.choice([1, 2])
        first, second = (good, bad) if label == 1 else (bad, good)
        rows.append({"input": instruction, "output_1": first, "output_2": second, "label": label})
    return rows


def main() -> None:
    """Write every fixture file of the instruction-tuning suite."""
    rng = random.Random(20240921)
    sizes = {"train": 16, "validation": 8, "test": 12}
    for config, prefix in (("ARC-Easy", "Mercury"), ("ARC-Challenge", "MCAS")):
        for split, n in sizes.items():
            write(f"allenai__ai2_arc/{config}", split, arc_rows(rng, n, prefix))
    for split, n in sizes.items():
        write("allenai__openbookqa/main", split, openbookqa_rows(rng, n))
    for split, n in (("train", 16), ("validation", 12), ("test", 4)):
        write("Rowan__hellaswag/default", split, hellaswag_rows(rng, n, split))
        write("aps__super_glue/boolq", split, boolq_rows(rng, n, split))
    for subset, n in (("Natural", 8), ("Adversarial_Neighbor", 4), ("Adversarial_GPTInst", 3),
                      ("Adversarial_GPTOut", 3), ("Adversarial_Manual", 2)):
        write("princeton-nlp__LLMBar/LLMBar", subset, llmbar_rows(rng, n, subset))


if __name__ == "__main__":
    main()
