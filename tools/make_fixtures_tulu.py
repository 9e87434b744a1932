"""Write the synthetic TULU-v2 fixture (``amuro_tasks/fixtures/allenai__tulu-v2-sft-mixture``).

Rows follow the real schema of ``allenai/tulu-v2-sft-mixture`` (``dataset``, ``id``,
``messages: [{role, content}]``), with made-up conversations: single- and multi-turn, some with a
system message. No real row is committed. Like the real mixture (open-instruct issue #161: 270
conversations, e.g. ``flan_v2_40491`` with an empty assistant reply; empty system messages too),
a few conversations have an empty system, user or assistant message. Run
``python tools/make_fixtures_tulu.py`` to regenerate (deterministic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = (Path(__file__).resolve().parents[1] / "amuro_tasks" / "fixtures"
       / "allenai__tulu-v2-sft-mixture" / "default" / "train.jsonl")

SOURCES = ["flan_v2", "cot", "oasst1", "lima", "gpt4_alpaca", "code_alpaca", "sharegpt"]
NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana"]
THINGS = ["apples", "books", "maps", "tickets", "flowers", "bread", "paint", "lamps"]
PLACES = ["market", "library", "harbour", "station", "museum", "garden"]


def exchange(rng: random.Random) -> tuple[str, str]:
    """One user request and its assistant reply."""
    who, what, where = rng.choice(NAMES), rng.choice(THINGS), rng.choice(PLACES)
    n = rng.randint(2, 9)
    kind = rng.randrange(4)
    if kind == 0:
        return (f"{who} has {n} {what} and buys {n + 2} more. How many {what} now?",
                f"{who} has {n} + {n + 2} = {2 * n + 2} {what}.")
    if kind == 1:
        return (f"Write one sentence about {who} at the {where}.",
                f"{who} spent the afternoon at the {where} looking at {what}.")
    if kind == 2:
        return (f"Translate to French: the {what} are at the {where}.",
                f"Les {what} sont au {where}.")
    return (f"List two things {who} could find at the {where}.",
            f"1. {what.capitalize()}\n2. {rng.choice(THINGS).capitalize()}")


def conversation(rng: random.Random) -> list[dict[str, str]]:
    messages = []
    if rng.random() < 0.2:
        messages.append({"role": "system", "content": "You are a helpful assistant."})
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        user, assistant = exchange(rng)
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": assistant}]
    return messages


def with_empty_turn(messages: list[dict[str, str]], i: int) -> list[dict[str, str]]:
    """Every 16th conversation from the 3rd: an empty system message; from the 7th: an empty
    (last) assistant reply; from the 11th: an empty (first) user message."""
    messages = [dict(m) for m in messages]
    if i % 16 == 3:
        messages = [m for m in messages if m["role"] != "system"]
        messages.insert(0, {"role": "system", "content": ""})
    elif i % 16 == 7:
        messages[-1]["content"] = ""
    elif i % 16 == 11:
        messages[0 if messages[0]["role"] == "user" else 1]["content"] = ""
    return messages


def main(n: int = 48, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        source = rng.choice(SOURCES)
        rows.append({"dataset": source, "id": f"{source}_{i}",
                     "messages": with_empty_turn(conversation(rng), i)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return OUT


if __name__ == "__main__":
    print(main())
