"""The demo's synthetic world: the data the offline demo pre-trains, fine-tunes and scores on.

A small made-up world with fixed rules, written as a local data mirror
(``<owner>__<name>/<config>/<split>.jsonl``, each dataset's real schema, read by amuro's normal
loading code) with enough rows for the demo's scores to mean something:

* **NLI** (MNLI, RTE): the premise says who did what where (``Ada found maps at the market.``);
  the hypothesis restates it (*entailment*), says how the person felt there (*neutral*) or
  denies it (*contradiction*: ``Ada never found any maps.``). RTE folds the last two into
  ``not_entailment``. A ``label_noise`` share of rows gets a random label instead.
* **Summarization** (XSum, CNN): a news item about a topic and an event on a day, padded with
  such sentences; XSum's summary is its lead (``The council opened on Friday.``), CNN's
  highlight is its closing sentence, restated.

The demo's pre-training corpus (:func:`corpus`) is every training row's text plus the *solved*
training examples (prompt and answer, every prompt format) of the sets named in
``WorldSpec.pretrain_sets``: the base checkpoints can only learn those tasks from pre-training.
Nothing here is a claim about real models or data: it is a world where the answers are known.
Hand-written: no library makes a synthetic mirror of these datasets.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amuro_sft.atomic import atomic_write_text, read_json, write_json_atomic
from amuro_study.config import WorldSpec
from amuro_tasks.specs import get_spec

MARKER = "amuro_world.json"
ID_KEYS = ("id", "idx")
NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai",
         "Lena", "Mia", "Noor", "Omar", "Pia")
VERBS = (("bought", "buy"), ("sold", "sell"), ("found", "find"), ("carried", "carry"),
         ("painted", "paint"), ("counted", "count"), ("hid", "hide"), ("shared", "share"))
THINGS = ("apples", "books", "maps", "tickets", "flowers", "bread", "paint", "lamps", "coins",
          "shoes")
PLACES = ("market", "library", "harbour", "station", "museum", "garden", "bakery", "school")
MOODS = ("happy", "tired", "late", "early", "calm", "busy")
TOPICS = ("council", "river", "festival", "bridge", "team", "factory", "election", "storm",
          "school", "museum")
EVENTS = ("opened", "closed", "flooded", "won", "lost", "grew", "moved", "paused")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

WORLD_SETS = ("mnli_matched", "rte", "xsum", "cnn")
"""The evaluation sets the world has data for (with their training splits)."""


def _act(rng: random.Random) -> tuple[str, str, str, str, str]:
    who, (verb, base), what, where = (rng.choice(NAMES), rng.choice(VERBS), rng.choice(THINGS),
                                      rng.choice(PLACES))
    return f"{who} {verb} {what} at the {where}.", who, verb, base, what


def _nli(rng: random.Random, label: int) -> tuple[str, str]:
    premise, who, verb, base, what = _act(rng)
    if label == 0:
        return premise, f"{who} {verb} {what}."
    if label == 1:
        where = premise.rsplit(" ", 1)[1].rstrip(".")
        return premise, f"{who} was {rng.choice(MOODS)} at the {where}."
    return premise, f"{who} never {base} any {what}."


def _news(rng: random.Random) -> tuple[str, str, list[str]]:
    topic, event, day = rng.choice(TOPICS), rng.choice(EVENTS), rng.choice(DAYS)
    body = [_act(rng)[0] for _ in range(rng.randint(2, 4))]
    return f"The {topic} {event} on {day}", f"{topic} {event} on {day}", body


def _label(rng: random.Random, rule: int, classes: int, noise: float) -> int:
    """The label of a row: the rule's, except for a ``noise`` share of rows (a random label:
    real datasets have label noise, and perfect scores would look like a bug)."""
    return rng.randrange(classes) if rng.random() < noise else rule


def _rows(name: str, n: int, rng: random.Random, noise: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        if name == "mnli_matched":
            premise, hypothesis = _nli(rng, i % 3)
            rows.append({"premise": premise, "hypothesis": hypothesis,
                         "label": _label(rng, i % 3, 3, noise), "idx": i})
        elif name == "rte":
            rule = i % 2
            premise, hypothesis = _nli(rng, 0 if rule == 0 else rng.choice((1, 2)))
            rows.append({"sentence1": premise, "sentence2": hypothesis,
                         "label": _label(rng, rule, 2, noise), "idx": i})
        elif name == "xsum":
            lead, _, body = _news(rng)
            rows.append({"document": " ".join([f"{lead} after a long week.", *body]),
                         "summary": f"{lead}.", "id": str(30000000 + i)})
        elif name == "cnn":
            lead, fact, body = _news(rng)
            rows.append({"article": " ".join([*body, f"Officials said the {fact}."]),
                         "highlights": f"{lead}.", "id": f"{i:040x}"})
        else:
            raise ValueError(f"the demo world has no data for {name!r}")
    rng.shuffle(rows)
    return rows


def splits(spec: WorldSpec) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``(set, split) -> rows`` of the world (deterministic in ``spec``)."""
    out = {}
    for k, name in enumerate(WORLD_SETS):
        eval_split, train_split = get_spec(name).eval_split, get_spec(name).fewshot_split
        out[(name, train_split)] = _rows(name, spec.train_rows, random.Random(
            f"{spec.seed}-{k}-train"), spec.label_noise)
        out[(name, eval_split)] = _rows(name, spec.eval_rows, random.Random(
            f"{spec.seed}-{k}-eval"), spec.label_noise)
    return out


def write_world(spec: WorldSpec, root: str | Path) -> Path:
    """Write the world's mirror under ``root`` (each file atomically; nothing is rewritten
    when ``root`` already holds this world); return ``root``."""
    root = Path(root)
    marker = {"world": spec.to_dict(), "sets": list(WORLD_SETS)}
    try:
        if read_json(root / MARKER) == marker:
            return root
    except ValueError:
        pass
    for (name, split), rows in splits(spec).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write_text(root / get_spec(name).fixture_key / f"{split}.jsonl", text)
    write_json_atomic(root / MARKER, marker)  # last: the world is whole
    return root


def corpus(spec: WorldSpec, root: str | Path) -> Iterator[str]:
    """The demo's pre-training texts: every string of every training row, then the solved
    training examples (prompt + answer, each prompt format) of ``spec.pretrain_sets``."""
    from amuro_tasks.loading import load_training_docs
    from amuro_tasks.prompts import FORMATS, render_example

    for (name, split), rows in splits(spec).items():
        if split != get_spec(name).fewshot_split or name in spec.pretrain_sets:
            continue
        for row in rows:
            yield from (v for k, v in row.items() if isinstance(v, str) and k not in ID_KEYS)
    for name in spec.pretrain_sets:
        docs = load_training_docs(name, n=None, source=str(root))
        for doc in docs:
            for fmt in FORMATS:
                example = render_example(get_spec(name).family, fmt, doc)
                yield example["prompt"] + example["completion"]


def _words(names: tuple[str, ...] | list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _move(name: str, metric: str, first: float, last: float) -> str:
    if abs(last - first) < 0.005:
        return f"`{name}` {metric} stayed at {first:.2f}"
    return f"`{name}` {metric} {'rose' if last > first else 'fell'} from {first:.2f} to {last:.2f}"


def describe(spec: WorldSpec, frame: Any) -> str:
    """What the demo shows, in plain words, computed from its records (``frame``:
    :func:`amuro_study.records.to_frame`): the report's lead says it first."""
    from amuro_study import analysis as an
    from amuro_tasks.suite import FINETUNE_TASKS

    try:
        d = an.select(frame, shots=None, formats=("default",))
    except ValueError:  # several learning rates: the sections below say it per rate
        d = frame.iloc[0:0]
    base = d[d["finetune"].isna()]
    moves = []
    for name in WORLD_SETS:
        part = base[base["eval_set"].eq(name)].sort_values("step")
        if len(part) >= 2:
            moves.append(_move(name, str(part["metric"].iloc[0]), part["value"].iloc[0],
                               part["value"].iloc[-1]))
    gains = []
    for task in sorted(d["finetune"].dropna().unique()):
        for name in FINETUNE_TASKS[task].id_sets if task in FINETUNE_TASKS else ():
            tuned = d[d["finetune"].eq(task) & d["eval_set"].eq(name)].set_index("step")
            was = base[base["eval_set"].eq(name)].set_index("step")["value"]
            change = (tuned["value"] - was.reindex(tuned.index)).dropna()
            if len(change):
                verb = "raised" if change.mean() >= 0 else "lowered"
                gains.append(f"fine-tuning on `{task}` {verb} `{name}` by "
                             f"{abs(change.mean()):.2f} on average over the checkpoints")
    learned = _words(list(spec.pretrain_sets)) if spec.pretrain_sets else "no task"
    text = (
        "**This demo is a synthetic world, not a claim about real models or data.** Every row "
        "was made up by `amuro_study/demo_world.py` with fixed rules (NLI: the hypothesis "
        "restates, qualifies or denies the premise; news: the summary restates the lead), "
        f"{spec.label_noise:.0%} of the NLI labels are random, and the tiny model's pre-training "
        f"corpus held solved examples of {learned} and of no other task.")
    if moves:
        text += " **What it shows:** over pre-training, " + "; ".join(moves) + "."
    if gains:
        text += " Then " + "; ".join(gains) + " (95% CIs per checkpoint below)."
    groups = an.detect_dichotomy(d) if not d.empty else d
    if len(groups):
        by = {g: sorted(groups.loc[groups["detected"].eq(g), "eval_set"])
              for g in ("pre-training", "fine-tuning")}
        text += (" From the base checkpoints alone, the detected dichotomy puts "
                 + "; ".join(f"{_words(v)} in the {g} group" for g, v in by.items() if v) + ".")
    return text
