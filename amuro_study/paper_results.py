"""Ingest the paper's released result CSVs into :class:`~amuro_study.records.ResultRecord`.

The authors' release (``results/analysis/`` of KaiserWhoLearns/AmuroCharPTFTRelationship, copied to
``shared/paper/results/``) encodes each run in a ``model_id`` string. This module is the only place
in amuro where such names are parsed: :func:`parse_model_id` turns them into typed fields once,
at ingestion, and everything downstream works on records.

Mapping decisions (documented in ``docs/analysis.md``):

* ``model`` is ``allenai/OLMo-1B-hf`` for ids carrying ``_hf`` and for the bare ``checkpoint-N``
  ids of ``official_eval_table.csv`` / ``it_perf_table.csv`` (the release pairs those with the
  ``_hf`` fine-tunes); ids without ``_hf`` (``olmo1b_original``, ``olmo1b_ckpt..``,
  ``olmo1b_checkpoint-N_original``) are evaluations of the original (non-HF) OLMo-1B and get
  ``allenai/OLMo-1B``.
* ``main`` -> ``revision="main"``, ``step=PAPER_MAIN_STEP`` (750,000, the release's convention).
  Other checkpoints have ``revision=None`` (the release does not record branch names).
* ``shots``: from the ``_{K}shots`` suffix; in ``all_perf_table.csv`` no suffix means zero-shot
  (the paper's zero-shot check, §4); the OLMo-Eval table is 4-shot (notes/paper-release.md);
  the instruction-tuning table does not say (``None``).
* eval-set names: ``_instruct`` / ``_inputoutput`` suffixes become ``format`` ``instruct`` / ``io``.
  The OLMo-Eval (catwalk, rank classification) sets keep their names except where they would clash
  with a differently-scored SFT set: ``sciq`` -> ``sciq_mc`` (as in :mod:`amuro_tasks.suite`),
  ``rte`` -> ``rte_olmo_eval``, ``qqp`` -> ``qqp_olmo_eval``. GSM's chain-of-thought chat variant
  (``..._cot_chat``) becomes eval set ``gsm_cot_chat``.
* metrics: ``rougeL`` for the generation sets, ``acc`` for the classification sets; the
  instruction-tuning table: alpaca ``win_rate``, gsm ``exact_match``, mmlu ``acc``, truthfulqa and
  toxigen ``reported`` (the release does not name them).
* The release's ``std`` column (bootstrap standard error) becomes ``stderr``.

Known defects of the release are *kept* but flagged in a ``defect`` column of
:func:`load_paper_frame` so that reports can mark them: QQP and STS-B were scored on splits with
hidden labels (every gold label reads "no"), RTE and TweetQA on their train splits.
One stray row, ``checkpoint-1000_4shots`` on socialiqa in ``all_perf_table.csv``, duplicates the key
of ``olmo1b_checkpoint-1000_original_hf_4shots`` with a different value; it is dropped (with a
warning) and listed in :data:`DROPPED_MODEL_IDS`.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from amuro_study.records import PAPER_MAIN_STEP, ResultRecord, to_frame
from amuro_tasks.specs import SPECS

ALL_PERF = "all_perf_table.csv"
OFFICIAL_EVAL = "official_eval_table.csv"
IT_PERF = "it_perf_table.csv"
TABLES: tuple[str, ...] = (ALL_PERF, OFFICIAL_EVAL, IT_PERF)

HF_MODEL = "allenai/OLMo-1B-hf"
ORIGINAL_MODEL = "allenai/OLMo-1B"
#: Fine-tuning seed of the release (notes/paper-release.md).
PAPER_SEED = 42
#: The learning rate the paper selected per fine-tuning task (README of the results).
PAPER_LEARNING_RATES: dict[str, float] = {
    "xsum": 2e-7, "socialiqa": 2e-6, "mnli": 2e-6, "paws": 2e-6, "tulu": 2e-6,
}
#: Generation sets (scored with ROUGE-L) among the SFT evaluation sets: the sets of the
#: generation families (``amuro_tasks/families/``).
GENERATION_SETS: frozenset[str] = frozenset(
    name for name, spec in SPECS.items() if spec.kind == "generation"
)
#: OLMo-Eval set names that would clash with an SFT set of the same name.
OFFICIAL_RENAMES: dict[str, str] = {
    "sciq": "sciq_mc", "rte": "rte_olmo_eval", "qqp": "qqp_olmo_eval",
}
IT_METRICS: dict[str, str] = {
    "alpaca": "win_rate", "gsm": "exact_match", "gsm_cot_chat": "exact_match", "mmlu": "acc",
    "truthfulqa": "reported", "toxigen": "reported",
}
#: Known-defective SFT evaluation sets of the release (keys are eval-set names, any format).
DEFECTS: dict[str, str] = {
    "qqp": "hidden labels (SetFit/qqp test): every gold label is 'no'",
    "stsb": "hidden labels (SetFit/stsb test): every gold label is 'no'",
    "rte": "scored on the train split",
    "tweetqa": "scored on the train split",
}
#: (table, model_id) rows dropped at ingestion, with the reason.
DROPPED_MODEL_IDS: dict[tuple[str, str], str] = {
    (ALL_PERF, "checkpoint-1000_4shots"): (
        "stray bare id; duplicates olmo1b_checkpoint-1000_original_hf_4shots on socialiqa "
        "with a different value"
    ),
}

_FORMAT_SUFFIXES = (("_inputoutput", "io"), ("_instruct", "instruct"))
_SHOTS = re.compile(r"^(?P<rest>.*)_(?P<shots>\d+)shots$")
_BASE_STEP = re.compile(r"^(?:olmo1b_)?checkpoint-(?P<step>\d+)(?P<orig>_original)?(?P<hf>_hf)?$")
_BASE_MAIN = re.compile(r"^olmo1b(?P<hf1>_hf)?_original(?P<hf2>_hf)?$")
_FINETUNED = re.compile(
    r"^olmo1b(?P<hf>_hf)?(?:_ckpt(?P<step>\d+)|_(?P<main>main))?"
    r"_(?P<task>[a-z0-9]+)_(?P<epochs>\d+)epoch_(?P<lr>\d+(?:\.\d+)?e-?\d+)$"
)


@dataclass(frozen=True)
class ParsedModelId:
    """Typed fields of one release ``model_id``."""

    model: str
    revision: str | None
    step: int
    finetune: str | None
    learning_rate: float | None
    epochs: int | None
    shots: int | None
    cot_chat: bool = False


def parse_model_id(model_id: str, table: str) -> ParsedModelId:
    """Parse a release ``model_id`` of ``table`` (one of :data:`TABLES`) into typed fields.

    Raises ``ValueError`` for a name that fits none of the release's patterns.
    """
    if table not in TABLES:
        raise ValueError(f"unknown release table {table!r}; expected one of {TABLES}")
    rest = model_id
    cot = rest.endswith("_cot_chat")
    if cot:
        rest = rest[: -len("_cot_chat")]
    shots: int | None
    m = _SHOTS.match(rest)
    if m:
        rest, shots = m["rest"], int(m["shots"])
    elif table == ALL_PERF:
        shots = 0
    elif table == OFFICIAL_EVAL:
        shots = 4
    else:
        shots = None

    if m := _BASE_STEP.match(rest):
        bare = not model_id.startswith("olmo1b_")
        hf = bool(m["hf"]) or bare
        return ParsedModelId(HF_MODEL if hf else ORIGINAL_MODEL, None, int(m["step"]), None,
                             None, None, shots, cot)
    if m := _BASE_MAIN.match(rest):
        hf = bool(m["hf1"] or m["hf2"])
        return ParsedModelId(HF_MODEL if hf else ORIGINAL_MODEL, "main", PAPER_MAIN_STEP, None,
                             None, None, shots, cot)
    if m := _FINETUNED.match(rest):
        is_main = m["step"] is None
        return ParsedModelId(
            HF_MODEL if m["hf"] else ORIGINAL_MODEL,
            "main" if is_main else None,
            PAPER_MAIN_STEP if is_main else int(m["step"]),
            m["task"], float(m["lr"]), int(m["epochs"]), shots, cot,
        )
    raise ValueError(f"unrecognised model_id {model_id!r} in {table}")


def parse_eval_dataset(name: str, table: str, cot_chat: bool = False) -> tuple[str, str, str]:
    """``(eval_set, format, metric)`` for a release ``eval dataset`` value of ``table``."""
    if table == OFFICIAL_EVAL:
        return OFFICIAL_RENAMES.get(name, name), "default", "acc"
    if table == IT_PERF:
        eval_set = f"{name}_cot_chat" if cot_chat else name
        return eval_set, "default", IT_METRICS.get(eval_set, "reported")
    fmt = "default"
    for suffix, f in _FORMAT_SUFFIXES:
        if name.endswith(suffix):
            name, fmt = name[: -len(suffix)], f
            break
    return name, fmt, ("rougeL" if name in GENERATION_SETS else "acc")


def default_results_dir() -> Path:
    """``$AMURO_PAPER_RESULTS``; else the copy committed in a source checkout
    (``tests/data/paper_results``, byte-identical to the release); else
    ``shared/paper/results`` next to the repository (the workspace's). The first of the last two
    that holds the tables, or the committed copy's path when neither does."""
    env = os.environ.get("AMURO_PAPER_RESULTS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo / "tests" / "data" / "paper_results",
                  repo.parent / "shared" / "paper" / "results"]
    return next((c for c in candidates if (c / ALL_PERF).is_file()), candidates[0])


def _read_table(results_dir: Path, table: str) -> pd.DataFrame:
    path = results_dir / table
    if not path.is_file():
        raise FileNotFoundError(f"released results table not found: {path}")
    frame = pd.read_csv(path, index_col=0)
    expected = {"model_id", "eval dataset", "Performance"}
    if not expected <= set(frame.columns):
        raise ValueError(f"{path}: expected columns {sorted(expected)}, got {list(frame.columns)}")
    return frame.rename(columns={"eval dataset": "eval_dataset"})


def _ingest(results_dir: Path) -> tuple[list[ResultRecord], list[dict[str, str | None]]]:
    records: list[ResultRecord] = []
    provenance: list[dict[str, str | None]] = []
    for table in TABLES:
        frame = _read_table(results_dir, table)
        for row in frame.itertuples(index=False):
            model_id = str(row.model_id)
            if (table, model_id) in DROPPED_MODEL_IDS:
                warnings.warn(
                    f"{table}: dropping {model_id!r}: {DROPPED_MODEL_IDS[(table, model_id)]}",
                    stacklevel=3,
                )
                continue
            parsed = parse_model_id(model_id, table)
            eval_set, fmt, metric = parse_eval_dataset(
                str(row.eval_dataset), table, parsed.cot_chat
            )
            std = getattr(row, "std", None)
            records.append(ResultRecord(
                model=parsed.model, revision=parsed.revision, step=parsed.step,
                finetune=parsed.finetune, learning_rate=parsed.learning_rate,
                epochs=parsed.epochs, seed=PAPER_SEED if parsed.finetune else None,
                eval_set=eval_set, format=fmt, shots=parsed.shots, metric=metric,
                value=float(row.Performance),
                stderr=None if std is None or pd.isna(std) else float(std),
            ))
            provenance.append({
                "source": table, "model_id": model_id,
                "defect": DEFECTS.get(eval_set) if table == ALL_PERF else None,
            })
    return records, provenance


#: Columns that identify a result; the release must have at most one row per key.
KEY_COLUMNS: tuple[str, ...] = (
    "model", "step", "revision", "finetune", "learning_rate", "epochs", "eval_set", "format",
    "shots", "metric",
)


def load_paper_records(results_dir: str | os.PathLike[str] | None = None) -> list[ResultRecord]:
    """All rows of the three released tables as records (see the module doc for the mapping)."""
    records, _ = _ingest(Path(results_dir) if results_dir else default_results_dir())
    return records


def load_paper_frame(results_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """:func:`~amuro_study.records.to_frame` of the release plus provenance columns.

    Extra columns: ``source`` (CSV file), ``model_id`` (the raw id, for traceability only;
    nothing downstream parses it) and ``defect`` (why the set is known to be broken, or ``None``).
    Raises ``ValueError`` if two rows map to the same key (:data:`KEY_COLUMNS`).
    """
    records, provenance = _ingest(Path(results_dir) if results_dir else default_results_dir())
    frame = to_frame(records)
    extra = pd.DataFrame(provenance, index=frame.index)
    frame = pd.concat([frame, extra], axis=1)
    frame["defect"] = frame["defect"].astype(object).where(frame["defect"].notna(), None)
    dup = frame.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        raise ValueError(
            "release rows with the same key:\n"
            + frame.loc[dup, ["source", "model_id", "eval_set", "format"]].to_string()
        )
    return frame
