"""Write the synthetic fixture files (``amuro_tasks/fixtures``), one per dataset split.

Every row is made up here from small word lists: no real dataset row is ever committed. Each file
uses its dataset's real schema (column names and label encodings), so the real normalisers and
validators run on it, and carries the real datasets' known defects: empty XSum documents
(EdinburghNLP/xsum discussion #4, e.g. id 36369226), SciQ rows without a support passage, GLUE
test splits whose labels are hidden (``-1``). Run ``python tools/make_fixtures.py`` to
regenerate (deterministic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "amuro_tasks" / "fixtures"

NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"]
PLACES = ["market", "library", "harbour", "station", "museum", "garden", "bakery", "school"]
THINGS = ["apples", "books", "maps", "tickets", "flowers", "bread", "paint", "lamps"]
VERBS = ["bought", "sold", "found", "carried", "painted", "counted", "hid", "shared"]
TOPICS = ["council", "river", "festival", "bridge", "team", "factory", "election", "storm"]
EVENTS = ["opened", "closed", "flooded", "won", "lost", "grew", "moved", "paused"]


def sentence(rng: random.Random) -> tuple[str, str, str, str, str]:
    who, verb, what, where = (rng.choice(NAMES), rng.choice(VERBS), rng.choice(THINGS),
                              rng.choice(PLACES))
    return f"{who} {verb} {what} at the {where}.", who, verb, what, where


def article(rng: random.Random, n: int) -> tuple[str, str]:
    topic, event = rng.choice(TOPICS), rng.choice(EVENTS)
    lead = f"The {topic} {event} on Monday after a long week."
    body = [sentence(rng)[0] for _ in range(n)]
    return " ".join([lead, *body]), f"The {topic} {event} on Monday."


def nli_row(rng: random.Random) -> tuple[str, str, int]:
    premise, who, verb, what, where = sentence(rng)
    label = rng.randrange(3)
    if label == 0:
        hypothesis = f"{who} {verb} {what}."
    elif label == 1:
        hypothesis = f"{who} was happy at the {where}."
    else:
        hypothesis = f"{who} never {verb.replace('ed', '')} any {what}."
    return premise, hypothesis, label


def pair_row(rng: random.Random) -> tuple[str, str, int]:
    first, who, verb, what, where = sentence(rng)
    label = rng.randrange(2)
    other = rng.choice([n for n in NAMES if n != who])
    second = (f"At the {where}, {who} {verb} {what}." if label == 1
              else f"{other} {verb} {what} at the {where}.")
    return first, second, label


def write(key: str, split: str, rows: list[dict]) -> None:
    path = OUT / key / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def glue_nli(rng, n, first="premise", second="hypothesis", two_class=False):
    rows = []
    for i in range(n):
        p, h, y = nli_row(rng)
        if two_class:
            y = 0 if y == 0 else 1
        rows.append({first: p, second: h, "label": y, "idx": i})
    return rows


def main() -> None:
    rng = random.Random(20240813)
    sizes = {"train": 40, "eval": 24}
    for split in ("train", "validation_matched", "validation_mismatched"):
        n = sizes["train" if split == "train" else "eval"]
        write("nyu-mll__glue/mnli", split, glue_nli(rng, n))
    for split in ("train", "validation"):
        n = sizes["train" if split == "train" else "eval"]
        write("nyu-mll__glue/rte", split, glue_nli(rng, n, "sentence1", "sentence2", True))
        write("nyu-mll__glue/qqp", split, [
            {"question1": f"Why {a[:-1].lower()}?", "question2": f"Why {b[:-1].lower()}?",
             "label": y, "idx": i} for i, (a, b, y) in enumerate(pair_row(rng) for _ in range(n))])
        write("nyu-mll__glue/stsb", split, [
            {"sentence1": a, "sentence2": b,
             "label": round(rng.uniform(3.6, 5.0) if y else rng.uniform(0.0, 3.4), 2), "idx": i}
            for i, (a, b, y) in enumerate(pair_row(rng) for _ in range(n))])
    write("pietrolesci__gpt3_nli/default", "train", [
        {"text_a": p, "text_b": h, "label": y, "guid": f"fixture-{i}"}
        for i, (p, h, y) in enumerate(nli_row(rng) for _ in range(90))])
    for split in ("train", "test"):
        n = sizes["train" if split == "train" else "eval"]
        write("google-research-datasets__paws/labeled_final", split, [
            {"id": i + 1, "sentence1": a, "sentence2": b, "label": y}
            for i, (a, b, y) in enumerate(pair_row(rng) for _ in range(n))])
        write("EdinburghNLP__xsum/default", split, [
            # like the real set, a few documents are empty (nothing to summarise)
            {"document": "" if i % 10 == 7 else d, "summary": s, "id": str(30000000 + i)}
            for i, (d, s) in enumerate(article(rng, rng.randint(2, 4)) for _ in range(n))])
        write("csebuetnlp__xlsum/english", split, [
            {"id": f"fixture-{i}", "url": f"https://example.org/news/{i}",
             "title": s.rstrip("."), "summary": s, "text": d}
            for i, (d, s) in enumerate(article(rng, rng.randint(2, 4)) for _ in range(n))])
        write("abisee__cnn_dailymail/3.0.0", split, [
            {"article": d, "highlights": f"{s}\n{sentence(rng)[0]}", "id": f"{i:040x}"}
            for i, (d, s) in enumerate(article(rng, rng.randint(3, 5)) for _ in range(n))])
        write("allenai__sciq/default", split, sciq_rows(rng, n))
    for split in ("train", "validation"):
        n = sizes["train" if split == "train" else "eval"]
        siqa = []
        for _ in range(n):
            text, who, verb, what, where = sentence(rng)
            gold = rng.randrange(3)
            answers = rng.sample(THINGS, 3)
            answers[gold] = what
            siqa.append({"context": text, "question": f"What did {who} {verb.replace('ed', '')}?",
                         "answerA": answers[0], "answerB": answers[1], "answerC": answers[2],
                         "label": str(gold + 1)})
        write("lighteval__siqa/default", split, siqa)
        tweets = []
        for i in range(n):
            text, who, verb, what, where = sentence(rng)
            tweets.append({"Question": f"where did {who} go?", "Answer": [f"the {where}", where],
                           "Tweet": f"{text} #{rng.choice(TOPICS)}", "qid": f"fixture{i:04d}"})
        write("ucsbnlp__tweet_qa/default", split, tweets)
    hidden_labels(random.Random(20250105))
    sciq_validation(random.Random(20250106), sizes["eval"])


def sciq_rows(rng: random.Random, n: int) -> list[dict]:
    """``n`` SciQ rows; like the real set, a few come without a support passage."""
    rows = []
    for i in range(n):
        text, who, verb, what, where = sentence(rng)
        others = rng.sample([t for t in THINGS if t != what], 3)
        rows.append({"question": f"What did {who} {verb.replace('ed', '')} at the {where}?",
                     "distractor3": others[2], "distractor1": others[0],
                     "distractor2": others[1], "correct_answer": what,
                     "support": "" if i % 11 == 5 else text})
    return rows


def sciq_validation(rng: random.Random, n: int) -> None:
    """SciQ's validation split (the paper's suite scored it; own seed: the older files stay)."""
    write("allenai__sciq/default", "validation", sciq_rows(rng, n))


def hidden_labels(rng: random.Random, n: int = 6) -> None:
    """GLUE's test splits: real schema, every label hidden (``-1``; STS-B ``-1.0``)."""
    for split in ("test_matched", "test_mismatched"):
        write("nyu-mll__glue/mnli", split, [{**row, "label": -1} for row in glue_nli(rng, n)])
    write("nyu-mll__glue/rte", "test", [{**row, "label": -1}
                                        for row in glue_nli(rng, n, "sentence1", "sentence2")])
    write("nyu-mll__glue/qqp", "test", [
        {"question1": f"Why {a[:-1].lower()}?", "question2": f"Why {b[:-1].lower()}?",
         "label": -1, "idx": i} for i, (a, b, _) in enumerate(pair_row(rng) for _ in range(n))])
    write("nyu-mll__glue/stsb", "test", [
        {"sentence1": a, "sentence2": b, "label": -1.0, "idx": i}
        for i, (a, b, _) in enumerate(pair_row(rng) for _ in range(n))])


if __name__ == "__main__":
    main()
