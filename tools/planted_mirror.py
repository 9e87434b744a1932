"""Write a local mirror with the real datasets' defects planted in it, and a study config over it.

``python tools/planted_mirror.py DIR`` copies the fixtures to ``DIR`` (the ``AMURO_DATA`` mirror
layout) and plants one defect of each kind a first real study would meet, then writes
``DIR/study.yaml`` (a study over those sets with ``data: DIR``). ``amuro data check
DIR/study.yaml`` must then report each of them -- the test suite checks it
(``tests/test_data_check.py``) and ``docs/data.md`` shows the output.

Planted (file -> defect):

* ``nyu-mll__glue/mnli/validation_matched``: a boolean label (``true``), read as 1 by Python;
* ``nyu-mll__glue/rte/validation``: a hidden gold label (``-1``, as in GLUE's test splits);
* ``nyu-mll__glue/rte/train``: bytes that are not UTF-8 (a Latin-1 ``é``);
* ``google-research-datasets__paws/labeled_final/test``: a line that is not JSON (cut short);
* ``abisee__cnn_dailymail/3.0.0/test``: an empty split file;
* ``EdinburghNLP__xsum/default/test``: an empty summary (besides the empty documents the
  fixtures already carry, as the real set: those are dropped as documented);
* ``allenai__ai2_arc/ARC-Easy/validation``: an answer key that is none of the choice labels
  (besides the fixtures' 3- and 5-option questions and numeric keys, which are fine);
* ``allenai__tulu-v2-sft-mixture/default/train``: an empty message list (the paper's pipeline
  raises on it) and a conversation without an assistant turn (besides the fixtures' empty
  system, user and assistant messages, which are kept).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "amuro_tasks" / "fixtures"

STUDY = """\
# A study over the planted-defect mirror written by tools/planted_mirror.py (amuro data check).
name: planted
output_dir: {out}/runs
model: {model}
revisions: [main]
data: {out}
finetune:
  tasks: [mnli, tulu]
  learning_rate: 2.0e-6
eval:
  sets: [mnli_matched, rte, paws, xsum, cnn, sciq, sciq_mc, arc_easy, gpt3nli]
  shots: [4]
"""


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def plant(out: Path, model: str = "allenai/OLMo-1B-hf") -> Path:
    """Write the mirror and ``out/study.yaml``; returns the config's path."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(FIXTURES, out)
    mnli = out / "nyu-mll__glue/mnli/validation_matched.jsonl"
    rows = _rows(mnli)
    rows[2]["label"] = True
    _write(mnli, rows)
    rte = out / "nyu-mll__glue/rte/validation.jsonl"
    rows = _rows(rte)
    rows[4]["label"] = -1
    _write(rte, rows)
    train = out / "nyu-mll__glue/rte/train.jsonl"
    lines = train.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b" at the ", b" at the caf\xe9 ", 1)
    train.write_bytes(b"".join(lines))
    paws = out / "google-research-datasets__paws/labeled_final/test.jsonl"
    lines = paws.read_text().splitlines(keepends=True)
    lines[5] = lines[5][: len(lines[5]) // 2] + "\n"
    paws.write_text("".join(lines))
    (out / "abisee__cnn_dailymail/3.0.0/test.jsonl").write_text("")
    xsum = out / "EdinburghNLP__xsum/default/test.jsonl"
    rows = _rows(xsum)
    rows[1]["summary"] = ""
    _write(xsum, rows)
    arc = out / "allenai__ai2_arc/ARC-Easy/validation.jsonl"
    rows = _rows(arc)
    rows[6]["answerKey"] = "Z"
    _write(arc, rows)
    tulu = out / "allenai__tulu-v2-sft-mixture/default/train.jsonl"
    rows = _rows(tulu)
    rows[1]["messages"] = []
    rows[9]["messages"] = [m for m in rows[9]["messages"] if m["role"] != "assistant"]
    _write(tulu, rows)
    config = out / "study.yaml"
    config.write_text(STUDY.format(out=out, model=model))
    return config


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/planted_mirror.py DIR")
    print(plant(Path(sys.argv[1]).resolve()))
