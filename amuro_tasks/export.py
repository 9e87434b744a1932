"""``python -m amuro_tasks export-upstream DIR``: amuro's tasks as a folder for upstream lm-eval.

Writes ONE folder, ``DIR/amuro/``, to drop into ``lm_eval/tasks/`` of an unmodified lm-eval 0.4.x
(or to pass as ``--include_path``), with no dependency on amuro:

* ``amuro_<set>_<format>.yaml``: lm-eval's own loading (``dataset_path``, ``dataset_name``,
  ``dataset_kwargs``, ``test_split``, ``fewshot_split``, ``process_docs``), the prompt as lm-eval
  ``doc_to_text`` Jinja (the template string of the family declaration, verbatim), the shot pool
  through ``fewshot_config`` (``process_docs`` + the ``first_n`` sampler);
* ``_amuro_<kind>_template_yaml``: the scoring keys, one template per scoring kind;
* ``utils.py``: generated per-set ``process_docs`` hooks and the ROUGE-L metric;
* ``amuro_rows.py``: a byte-identical copy of :mod:`amuro_tasks.rows` (standard library only), so
  that rows become docs, and shots are chosen, by the plugin's own code;
* ``README.md``: upstream's task-README template, with what the export cannot express.

Left out, and said so in the README: the ``default`` format of sets whose ``default`` *is* an
upstream task's prompt (ARC, OpenBookQA, HellaSwag, BoolQ, SciQ-MC: use upstream's tasks), the
paper's ``first_token`` scoring (it needs the model's tokenizer when the data is built), and
amuro's ``AMURO_DATA`` switch and ``--metadata`` options (the export reads the Hub; the shot seed
and pool size are constants in ``utils.py``).

``--local-data SOURCE`` (``fixtures`` or an ``AMURO_DATA`` mirror directory) also writes
``DIR/amuro_local_data/``: one Hugging Face dataset folder per Hub dataset (its files and a
README ``configs:`` section naming configs and splits), and points the exported YAMLs at it, so
that stock lm-eval runs the export offline (amuro's CI proof does exactly this).
"""

from __future__ import annotations

import argparse
import os
import pprint
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amuro_tasks import rows
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.families import FAMILIES, SPECS, get_family
from amuro_tasks.family import FORMATS, DatasetSpec, Family, Kind
from amuro_tasks.loading import DEFAULT_FEWSHOT_SEED, FEWSHOT_POOL_SIZE, FIXTURE_DIR, split_names
from amuro_tasks.tasks import all_tasks, task_name, task_tags
from amuro_tasks.yaml_gen import Function, dump_yaml, family_file, fewshot_config, scoring_config

FOLDER = "amuro"
LOCAL_DATA_FOLDER = "amuro_local_data"
ROWS_FILE = "amuro_rows.py"
ALLOWED_IMPORTS = frozenset({"datasets", "jinja2", "lm_eval", "rouge_score"})
"""Third-party packages the exported Python may import (besides the standard library)."""
MIN_LM_EVAL = "0.4.10"
"""The first lm-eval that reads ``fewshot_config.process_docs`` (the exported shot pools)."""
README_LINE = (
    "| [amuro](amuro/README.md) | Prompt-format variants of the evaluation suite of \"Amuro & "
    "Char\" (Sun & Dredze, 2024): NLI, paraphrase, summarization and question generation sets, "
    "ARC, OpenBookQA, HellaSwag, BoolQ, SciQ and LLMBar, each in a fine-tuning format, an "
    "instruction format and raw input. | English |"
)
"""The row to add to ``lm_eval/tasks/README.md``."""


# --------------------------------------------------------------------------- what is exported
def exported(spec: DatasetSpec, fmt: str) -> bool:
    """Whether task (``spec``, ``fmt``) is exported: not when it would duplicate an upstream
    task (the ``default`` format of a set whose ``default`` prompt is upstream's)."""
    return not (fmt == "default" and spec.upstream_task)


def exported_tasks() -> list[tuple[DatasetSpec, str]]:
    """Every exported (set, format), in declaration order."""
    return [(spec, fmt) for spec, fmt in all_tasks() if exported(spec, fmt)]


def split_label(split: str | tuple[str, ...]) -> str:
    """The lm-eval split name of a declared split; several splits scored as one (LLMBar's
    ``Adversarial_*``) become one split named by their common prefix (``Adversarial``)."""
    if isinstance(split, str):
        return split
    label = os.path.commonprefix(list(split)).rstrip("_")
    if not label:
        raise AmuroConfigError(f"splits {split} share no prefix to name them as one split")
    return label


def pool_mode(spec: DatasetSpec) -> str:
    """How a set's shot pool is chosen (as the plugin's :func:`amuro_tasks.loading.load_docs`):
    ``split`` (from its own split, never a scored input), ``carve`` (carved out of the scored
    split) or ``pooled`` (several splits, LLMBar)."""
    if not isinstance(spec.eval_split, str) or not isinstance(spec.fewshot_split, str | None):
        return "pooled"
    return "carve" if spec.fewshot_split is None else "split"


@dataclass(frozen=True)
class DataSource:
    """How the exported YAMLs of one set load their data (lm-eval's own loading keys)."""

    path: str
    name: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    test_split: str = ""
    fewshot_split: str = ""

    def yaml_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {"dataset_path": self.path}
        if self.name is not None:
            keys["dataset_name"] = self.name
        if self.kwargs:
            keys["dataset_kwargs"] = self.kwargs
        return keys | {"test_split": self.test_split, "fewshot_split": self.fewshot_split}

    def load_kwargs(self, split: str) -> dict[str, Any]:
        """``datasets.load_dataset`` arguments of one split, as lm-eval loads it."""
        return {"path": self.path, "name": self.name, "split": split, **self.kwargs}


def _splits_of(spec: DatasetSpec) -> dict[str, tuple[str, ...]]:
    """lm-eval split name -> the declared split(s) it holds, for the scored and shot sides."""
    sides = [spec.eval_split] + ([spec.fewshot_split] if spec.fewshot_split is not None else [])
    return {split_label(s): split_names(s) for s in sides}


def hub_source(spec: DatasetSpec) -> DataSource:
    """The set on the Hugging Face Hub, loaded as the plugin's ``AMURO_DATA=hub`` loads it."""
    kwargs: dict[str, Any] = {}
    if spec.revision:
        kwargs["revision"] = spec.revision
    name = spec.config
    if spec.hub_data_files:
        files = {label: [spec.hub_data_files.format(config=spec.config, split=s) for s in members]
                 for label, members in _splits_of(spec).items()}
        kwargs["data_files"] = {label: f if len(f) > 1 else f[0] for label, f in files.items()}
        name = None
    elif spec.data_dir:
        kwargs["data_dir"] = spec.data_dir
        name = None
    elif any(len(members) > 1 for members in _splits_of(spec).values()):
        raise AmuroConfigError(f"{spec.name}: several splits scored as one need hub_data_files")
    return DataSource(spec.path, name, kwargs, split_label(spec.eval_split),
                      split_label(spec.fewshot_split or spec.eval_split))


def local_source(spec: DatasetSpec, root: Path) -> DataSource:
    """The set in a local dataset folder written by :func:`write_local_datasets`."""
    return DataSource(str(root / spec.path.replace("/", "__")), spec.config or "default", {},
                      split_label(spec.eval_split),
                      split_label(spec.fewshot_split or spec.eval_split))


# --------------------------------------------------------------------------- YAML files
def template_name(kind: Kind) -> str:
    return f"_amuro_{kind.name}_template_yaml"


def _template(kind: Kind) -> dict[str, Any]:
    return scoring_config(kind, Function("utils.process_results_rouge"))


def _task(spec: DatasetSpec, fmt: str, source: DataSource) -> dict[str, Any]:
    family = get_family(spec.family)
    task: dict[str, Any] = {
        "include": template_name(family.scoring),
        "task": task_name(spec.name, fmt),
        "tag": task_tags(spec, fmt),
        **source.yaml_keys(),
        "process_docs": Function(f"utils.eval_docs_{spec.name}"),
        "fewshot_config": {**fewshot_config(family.scoring),
                           "process_docs": Function(f"utils.shots_{spec.name}")},
    }
    if family.default_shots:
        task["num_fewshot"] = family.default_shots
    task["doc_to_text"] = family.prompts[fmt]
    return task


# --------------------------------------------------------------------------- utils.py
_UTILS_HEAD = '''"""lm-eval hooks of the amuro tasks: each set's scored docs and shot pool; ROUGE-L.

Generated by amuro's ``python -m amuro_tasks export-upstream`` from its family declarations
(``amuro_tasks/families/*.py``); regenerate rather than edit. Imports only the standard library,
``datasets`` and ``rouge_score``. Rows become docs through ``amuro_rows.py``, a verbatim copy of
amuro's ``amuro_tasks/rows.py``.

For every set, lm-eval calls ``eval_docs_<set>`` (``process_docs``: the validated scored docs) and
``shots_<set>`` (``fewshot_config.process_docs``: the shot pool, shown in order by the ``first_n``
sampler, so every document and every model gets the same shots). The pool is the first
``POOL_SIZE`` rows of the shot split, in the order of ``Dataset.shuffle(seed=FEWSHOT_SEED)``, that
are valid, short enough and whose input is not a scored document's: to know the scored inputs,
``shots_<set>`` reads the scored split again through ``datasets`` (``SCORED``, the same arguments as
the set's YAML; served from the local cache).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
from pathlib import Path

import datasets


def _require_fewshot_process_docs() -> None:
    """The shot pool is built by ``fewshot_config.process_docs``, which lm-eval reads since 0.4.10;
    older versions apply the scored split's ``process_docs`` to the shot split instead, which
    would silently change the shots, so they are refused."""
    try:
        from lm_eval.config.task import FewshotConfig
    except ImportError:
        names = set()
    else:
        names = {f.name for f in dataclasses.fields(FewshotConfig)}
    if "process_docs" not in names:
        raise ImportError(MIN_LM_EVAL_MESSAGE)


MIN_LM_EVAL_MESSAGE = (
    "the amuro tasks need lm-eval >= 0.4.10 (fewshot_config.process_docs builds their shot "
    "pool); this lm-eval would show other shots"
)
_require_fewshot_process_docs()


def _load_rows():
    """``amuro_rows.py`` next to this file (lm-eval loads task modules by path, not as a
    package)."""
    name = __name__ + "_amuro_rows"
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("amuro_rows.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rows = _load_rows()
Normalizer, RowRules = rows.Normalizer, rows.RowRules
'''

_UTILS_BODY = '''

def _order(n: int) -> list[int]:
    """The row order of ``Dataset.shuffle(seed=FEWSHOT_SEED)`` on ``n`` rows."""
    return list(datasets.Dataset.from_dict({"i": list(range(n))}).shuffle(seed=FEWSHOT_SEED)["i"])


def _dataset(docs: list[dict], where: str, what: str) -> datasets.Dataset:
    if not docs:
        raise rows.AmuroDataError(f"{where}: no usable {what}")
    return datasets.Dataset.from_list(docs)


def _scored_list(name: str, dataset: datasets.Dataset) -> list[dict]:
    rules, (split, _) = RULES[name], SPLITS[name]
    if len(dataset) == 0:
        raise rows.AmuroDataError(f"{name}/{split}: the split is empty")
    if POOL_FROM[name] == "carve":
        return rows.carve(rules, split, dataset, _order(len(dataset)), POOL_SIZE, ON_INVALID)[0]
    return list(rows.iter_docs(rules, split, dataset.to_list(), None, ON_INVALID))


@functools.cache
def _scored_inputs(name: str) -> tuple[dict, ...]:
    """The scored docs of a set whose shots come from another split (read via ``SCORED``)."""
    return tuple(eval_docs(name, datasets.load_dataset(**SCORED[name])).to_list())


def _shot_list(name: str, dataset: datasets.Dataset) -> list[dict]:
    rules, (_, split) = RULES[name], SPLITS[name]
    if POOL_FROM[name] == "carve":
        return rows.carve(rules, split, dataset, _order(len(dataset)), POOL_SIZE, ON_INVALID)[1]
    if POOL_FROM[name] == "pooled":
        candidates = list(rows.iter_docs(rules, split, dataset.to_list(), None, "skip"))
        return rows.pooled(candidates, _order(len(candidates)), POOL_SIZE)
    return rows.shot_pool(rules, split, dataset, _order(len(dataset)), _scored_inputs(name),
                          POOL_SIZE)


_MEMO: dict[tuple[str, str, str], datasets.Dataset] = {}


def _memoised(side: str, name: str, dataset: datasets.Dataset, build) -> datasets.Dataset:
    """lm-eval calls ``process_docs`` again each time it reads a split, and every format of a
    set loads the same data: build once per (set, split content)."""
    fingerprint = getattr(dataset, "_fingerprint", None)  # the content hash of ``datasets``
    if fingerprint is None:
        return build()
    key = (side, name, fingerprint)
    if key not in _MEMO:
        _MEMO[key] = build()
    return _MEMO[key]


def eval_docs(name: str, dataset: datasets.Dataset) -> datasets.Dataset:
    """``process_docs`` of set ``name``: its validated scored docs."""
    return _memoised("eval", name, dataset, lambda: _dataset(
        _scored_list(name, dataset), f"{name}/{SPLITS[name][0]}", "rows"))


def shot_docs(name: str, dataset: datasets.Dataset) -> datasets.Dataset:
    """``fewshot_config.process_docs`` of set ``name``: its shot pool, in order."""
    return _memoised("shots", name, dataset, lambda: _dataset(
        _shot_list(name, dataset), f"{name}/{SPLITS[name][1]}", "few-shot rows"))


@functools.cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def process_results_rouge(doc: dict, results: list[str]) -> dict[str, float]:
    """ROUGE-L F1 (``rouge_score``, Porter stemmer) of the stripped generation against the
    ``target``."""
    return {"rougeL": _rouge().score(doc["target"], results[0].strip())["rougeL"].fmeasure}
'''


def _constant(name: str, value: Any, comment: str) -> str:
    text = pprint.pformat(value, width=100, sort_dicts=False)
    lines = textwrap.wrap(comment, width=96)
    return "\n" + "".join(f"#: {line}\n" for line in lines) + f"{name} = {text}\n"


def utils_py(sources: dict[str, DataSource]) -> str:
    """The exported ``utils.py`` for the sets in ``sources`` (set -> how its YAMLs load it)."""
    specs = [SPECS[name] for name in sources]
    parts = [
        _UTILS_HEAD,
        _constant("FEWSHOT_SEED", DEFAULT_FEWSHOT_SEED, "seed of the shot pool (amuro's default)"),
        _constant("POOL_SIZE", FEWSHOT_POOL_SIZE, "rows in the shot pool (up to 16-shot runs)"),
        _constant("ON_INVALID", "error", "a row that fails validation stops the task ('skip': "
                                         "drop such rows)"),
        _constant("RULES", {s.name: s.rules for s in specs},
                  "set -> how its raw rows become docs (amuro_tasks/families/*.py)"),
        _constant("SPLITS", {s.name: (sources[s.name].test_split, sources[s.name].fewshot_split)
                             for s in specs}, "set -> (scored split, shot split)"),
        _constant("POOL_FROM", {s.name: pool_mode(s) for s in specs},
                  "set -> shots from another split ('split'), carved out of the scored split "
                  "('carve'), or from several splits ('pooled')"),
        _constant("SCORED", {s.name: sources[s.name].load_kwargs(sources[s.name].test_split)
                             for s in specs if pool_mode(s) == "split"},
                  "set -> datasets.load_dataset arguments of its scored split"),
        _UTILS_BODY,
    ]
    for spec in specs:
        parts.append(
            f"\n\ndef eval_docs_{spec.name}(dataset: datasets.Dataset) -> datasets.Dataset:\n"
            f"    return eval_docs({spec.name!r}, dataset)\n"
            f"\n\ndef shots_{spec.name}(dataset: datasets.Dataset) -> datasets.Dataset:\n"
            f"    return shot_docs({spec.name!r}, dataset)\n")
    return "".join(parts)


# --------------------------------------------------------------------------- README
_CITATION = """@article{sun2024amuro,
  title   = {Amuro \\& Char: Analyzing the Relationship between Pre-Training and Fine-Tuning of
             Large Language Models},
  author  = {Sun, Kaiser and Dredze, Mark},
  journal = {arXiv preprint arXiv:2408.06663},
  year    = {2024}
}"""


def _md(value: str) -> str:
    """A template as a table cell: line breaks as ``\\n``, pipes escaped."""
    return "`" + value.replace("\n", "\\n").replace("|", "\\|") + "`"


def _splits_md(split: str | tuple[str, ...]) -> str:
    """The lm-eval split, and the declared splits it holds when several are scored as one."""
    if isinstance(split, str):
        return f"`{split}`"
    return f"`{split_label(split)}` (" + ", ".join(f"`{s}`" for s in split) + ")"


def readme(sources: dict[str, DataSource]) -> str:
    """The exported folder's README, in upstream's task-README template."""
    tasks = exported_tasks()
    families = [f for f in FAMILIES if any(s.family == f.name for s, _ in tasks)]
    left_out = [(s, s.upstream_task) for s, fmt in all_tasks() if not exported(s, fmt)]
    tags = sorted({t for s, f in tasks for t in task_tags(s, f)})
    lines = [
        "# amuro: prompt-format variants of the \"Amuro & Char\" evaluation suite",
        "",
        "### Paper",
        "",
        "Title: `Amuro & Char: Analyzing the Relationship between Pre-Training and Fine-Tuning "
        "of Large Language Models`",
        "",
        "Abstract: https://arxiv.org/abs/2408.06663",
        "",
        "The paper fine-tunes checkpoints of a pre-training run (OLMo-1B) on NLI (MNLI), "
        "paraphrase (PAWS), summarization (XSum) and question generation (SocialIQA), and "
        "evaluates them in- and out-of-domain, each set in three prompt formats (Table 3): the "
        "fine-tuning format (`default`), a human-readable instruction (`instruct`) and the raw "
        "input (`io`), to measure what fine-tuning teaches, what it makes the model forget, and "
        "how sensitive the model is to the prompt format. Instruction-tuned checkpoints are "
        "evaluated on ARC, OpenBookQA, HellaSwag, BoolQ and SciQ (§3.3), and here also on LLMBar "
        "(Zeng et al., 2024).",
        "",
        "Homepage: https://github.com/KaiserWhoLearns/AmuroCharPTFTRelationship",
        "",
        "### Citation",
        "",
        "```bibtex",
        _CITATION,
        "```",
        "",
        "The datasets' own papers: MNLI (Williams et al., 2018), RTE and QQP and STS-B via GLUE "
        "(Wang et al., 2018), GPT3NLI (pietrolesci/gpt3_nli), PAWS (Zhang et al., 2019), XSum "
        "(Narayan et al., 2018), XL-Sum (Hasan et al., 2021), CNN/DailyMail (Hermann et al., "
        "2015; See et al., 2017), SocialIQA (Sap et al., 2019), SciQ (Welbl et al., 2017), "
        "TweetQA (Xiong et al., 2019), ARC (Clark et al., 2018), OpenBookQA (Mihaylov et al., "
        "2018), HellaSwag (Zellers et al., 2019), BoolQ (Clark et al., 2019), LLMBar (Zeng et al.,"
        " 2024).",
        "",
        "### Groups, Tags, and Tasks",
        "",
        "#### Groups",
        "",
        "* None: the sets are reported per task, never averaged.",
        "",
        "#### Tags",
        "",
        "* `amuro_<set>`: one set in its formats; `amuro_default`, `amuro_instruct`, `amuro_io`: "
        "every task in one format; one tag per family: "
        + ", ".join(f"`{f.tag}`" for f in families) + ".",
        "* `amuro_llmbar_<format>`: both LLMBar sets in one format.",
        "* the paper's experiments (`default` format): `amuro_mnli_id`/`_ood`, `amuro_paws_id`/"
        "`_ood`, `amuro_xsum_id`/`_ood`, `amuro_socialiqa_id`/`_ood`, and Figure 4's "
        "`amuro_pretraining_learned` / `amuro_finetuning_learned`.",
        "",
        "All tags: " + ", ".join(f"`{t}`" for t in tags) + ".",
        "",
        "#### Tasks",
        "",
        "Task names are `amuro_<set>_<format>`. Data as in each task's YAML (`dataset_path`, "
        "`dataset_name`, `dataset_kwargs`, `test_split`, `fewshot_split`):",
        "",
        "| set | family | dataset (config) | scored split | shots from | metric | tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in families:
        for spec in family.specs:
            names = [task_name(spec.name, f) for f in FORMATS if exported(spec, f)]
            shots = (_splits_md(spec.fewshot_split) if spec.fewshot_split is not None
                     else "carved out of the scored split")
            lines.append(
                f"| `{spec.name}` | {family.title} | `{spec.path}`"
                f"{f' (`{spec.config}`)' if spec.config else ''} | {_splits_md(spec.eval_split)}"
                f" | {shots} | {', '.join(family.scoring.metrics)} | "
                + ", ".join(f"`{n}`" for n in names) + " |")
    lines += [
        "",
        "Notes on the sets:",
        "",
        *(f"* `{spec.name}`: {spec.notes}" for f in families for spec in f.specs if spec.notes),
        "",
        "### Prompts",
        "",
        "Each task's `doc_to_text` is the template below (Jinja over the fields of the docs built "
        "by `utils.py`); the answer follows after one space (`target_delimiter: \" \"`), shots "
        "are separated by a blank line (`fewshot_delimiter`).",
        "",
        "| family | format | template |",
        "|---|---|---|",
    ]
    for family in families:
        for fmt in FORMATS:
            if any(exported(s, fmt) for s in family.specs):
                lines.append(f"| {family.title} | `{fmt}` | {_md(family.prompts[fmt])} |")
    lines += [
        "",
        "### Data, shots and scoring",
        "",
        f"* Requires lm-eval >= {MIN_LM_EVAL}: the shot pool is built by "
        "`fewshot_config.process_docs`, which older versions do not read (they would apply the "
        "scored split's `process_docs` to the shot split); `utils.py` refuses to load there.",
        "* Every row is validated as it becomes a doc (`amuro_rows.py`): a hidden gold label "
        "(`-1`, `None`, `\"\"`), a missing field or an empty input stops the task with an error "
        "naming the set, the split and the row (set `ON_INVALID = \"skip\"` in `utils.py` to "
        "drop such rows; a few documented defects -- XSum's empty documents, SciQ rows without "
        "a support passage for question generation -- are always dropped and counted in the "
        "log).",
        f"* Shots (`num_fewshot: 4`; LLMBar is zero-shot unless `--num_fewshot` is given): a "
        f"fixed pool of {FEWSHOT_POOL_SIZE} rows, the first valid rows of the shot split in the "
        f"order of `Dataset.shuffle(seed={DEFAULT_FEWSHOT_SEED})`, shown in order by the "
        "`first_n` sampler: every document and every model sees the same shots. A shot is never "
        "a scored row, nor a row whose input equals a scored row's (train/test duplicates); "
        "sets with a single split (GPT3NLI) have the pool carved out and not scored. "
        "Summarization shots are documents of at most 200 words (CNN: 150) so that 4 shots fit "
        "a 2048-token window.",
        "* To keep scored inputs out of the pool, `shots_<set>` reads the set's scored split "
        "once more through `datasets` (`SCORED` in `utils.py`: the same arguments as the YAML; "
        "served from the local cache). If you point a YAML at other data, change `SCORED` too.",
        "* Classification and multiple choice: lm-eval's `multiple_choice` (log-likelihood of "
        "each verbalised option, `acc`; ARC/OpenBookQA/HellaSwag/BoolQ/SciQ also `acc_norm`).",
        "* Generation: greedy, at most 60 tokens, stopping at a blank line or `###`; ROUGE-L F1 "
        "of the stripped generation against the reference (`rouge_score`, Porter stemmer).",
        "",
        "### Not in this folder, and why",
        "",
        "* The `default` format of " + ", ".join(
            f"`{s.name}` (upstream `{up}`)" for s, up in left_out)
        + ": its prompt and choices are upstream's, so the task would duplicate an upstream "
        "one. Run the upstream task (`--num_fewshot 0` gives the same contexts, choices and "
        "gold for every document; with shots, upstream samples them per document).",
        "* The paper's own classification scoring (`first_token`: the label whose first "
        "sub-token has the highest logit) is not exported: it replaces each label by its first "
        "sub-token, which needs the model's tokenizer while the data is built, and a task "
        "folder cannot see it. Every exported classification task scores lm-eval's standard "
        "`choice` (whole-label log-likelihood). amuro's own plugin offers both.",
        "* amuro's data switch (`AMURO_DATA`: Hub, its synthetic fixtures or a local mirror) "
        "and its `--metadata` options (shot seed, pool size, skipping invalid rows) are not "
        "exported: the YAMLs read the Hub (`HF_ENDPOINT` or a local `dataset_path` serve a "
        "mirror), and `FEWSHOT_SEED`, `POOL_SIZE`, `ON_INVALID` are constants in `utils.py`.",
        "* LLMBar's four `Adversarial_*` splits are scored as one split, `Adversarial` "
        "(`dataset_kwargs.data_files`), so its errors name that split and the row's index in it.",
        "",
        "### Checklist",
        "",
        "For adding novel benchmarks/datasets to the library:",
        "* [x] Is the task an existing benchmark in the literature?",
        "  * [x] Have you referenced the original paper that introduced the task?",
        "  * [x] If yes, does the original paper provide a reference implementation? If so, "
        "have you checked against the reference implementation and documented how to run such "
        "a test?",
        "    The authors' code is public (homepage above). The `default` prompts of the four "
        "fine-tuning families are the paper's Table 3 strings with the release's `\\n ` before "
        "every `###` after the first (compare the Prompts table with Table 3). To see exactly "
        "what a model is shown, run e.g. `lm_eval --model hf --model_args "
        "pretrained=EleutherAI/pythia-70m --tasks amuro_rte_default,amuro_xsum_io --limit 2 "
        "--log_samples --output_path out` and read `arguments` in `out/*/samples_*.jsonl`: four "
        "shots separated by blank lines, then the prompt of the table, then each choice after "
        "one space. amuro checks in its CI that stock lm-eval on this folder gives per-sample "
        "results identical to amuro's own plugin.",
        "",
        "If other tasks on this dataset are already supported:",
        "* [x] Is the \"Main\" variant of this task clearly denoted?",
        "    `*_default` for the NLI, paraphrase, summarization, question generation and LLMBar "
        "sets; for ARC, OpenBookQA, HellaSwag, BoolQ and SciQ the main variant is upstream's "
        "task (see above).",
        "* [x] Have you provided a short sentence in a README on what each new variant adds / "
        "evaluates?",
        "    `*_instruct`: the same input in a human-readable instruction; `*_io`: the raw input "
        "only; together they measure prompt-format sensitivity (the paper's Table 3).",
        "* [x] Have you noted which, if any, published evaluation setups are matched by this "
        "variant?",
        "    The paper's 4-shot protocol (its Table 3 formats); shots come from the training "
        "split and are never scored, whereas the authors' release used the first four scored "
        "rows; RTE, QQP and TweetQA are scored on labelled held-out splits (the release used "
        "train or hidden-label test splits).",
        "",
        "### Adding this folder to lm-eval",
        "",
        "Copy `amuro/` into `lm_eval/tasks/` and add this row to `lm_eval/tasks/README.md`:",
        "",
        README_LINE,
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- local datasets
def write_local_datasets(source: str, root: Path) -> dict[str, Path]:
    """Hugging Face dataset folders, one per Hub dataset of the exported sets, from ``source``
    (``fixtures`` or an ``AMURO_DATA`` mirror: ``<owner>__<name>/<config>/<split>.jsonl``).

    Each folder holds copies of the split files and a ``README.md`` whose ``configs:`` section
    maps config names and (exported) split names to them, so that
    ``datasets.load_dataset(folder, config)`` reads them offline. Returns dataset id -> folder.
    """
    import yaml

    src_root = FIXTURE_DIR if source == "fixtures" else Path(source)
    configs: dict[str, dict[str, dict[str, list[str]]]] = {}
    for spec in {s.name: s for s, _ in exported_tasks()}.values():
        config = spec.config or "default"
        by_split = configs.setdefault(spec.path, {}).setdefault(config, {})
        for label, members in _splits_of(spec).items():
            files = []
            for member in members:
                found = [src_root / spec.fixture_key / f"{member}{ext}"
                         for ext in (".jsonl", ".parquet")]
                path = next((p for p in found if p.is_file()), None)
                if path is None:
                    raise AmuroConfigError(f"{spec.name}/{member}: no {found[0]} (or .parquet)")
                target = root / spec.path.replace("/", "__") / config / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                files.append(f"{config}/{path.name}")
            by_split[label] = files
    folders = {}
    for path, by_config in configs.items():
        folder = root / path.replace("/", "__")
        card = {"configs": [
            {"config_name": config,
             "data_files": [{"split": split, "path": files if len(files) > 1 else files[0]}
                            for split, files in by_split.items()]}
            for config, by_split in by_config.items()]}
        (folder / "README.md").write_text(
            "---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n\n"
            f"Local copy of `{path}` ({source}) for amuro's exported lm-eval tasks.\n")
        folders[path] = folder
    return folders


# --------------------------------------------------------------------------- the export
def export_upstream(out_dir: str | Path, local_data: str | None = None) -> Path:
    """Write ``out_dir/amuro/`` (see the module docstring), replacing an earlier export there;
    returns that folder.

    ``local_data`` (``fixtures`` or a mirror directory) also writes ``out_dir/amuro_local_data/``
    and points the YAMLs at it instead of the Hub.
    """
    out = Path(out_dir).resolve()
    folder = out / FOLDER
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    specs = list({s.name: s for s, _ in exported_tasks()}.values())
    if local_data is not None:
        root = out / LOCAL_DATA_FOLDER
        if root.exists():
            shutil.rmtree(root)
        write_local_datasets(local_data, root)
        sources = {s.name: local_source(s, root) for s in specs}
    else:
        sources = {s.name: hub_source(s) for s in specs}
    header = ("Generated by amuro's `python -m amuro_tasks export-upstream` from {file}; "
              "see README.md.")
    for kind in {get_family(s.family).scoring.name: get_family(s.family).scoring
                 for s in specs}.values():
        (folder / template_name(kind)).write_text(
            dump_yaml(_template(kind), f"Scoring of the amuro tasks of kind {kind.name!r}."))
    for spec, fmt in exported_tasks():
        family: Family = get_family(spec.family)
        (folder / f"{task_name(spec.name, fmt)}.yaml").write_text(dump_yaml(
            _task(spec, fmt, sources[spec.name]), header.format(file=family_file(family))))
    (folder / "utils.py").write_text(utils_py(sources))
    shutil.copyfile(Path(rows.__file__), folder / ROWS_FILE)
    (folder / "README.md").write_text(readme(sources))
    return folder


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m amuro_tasks export-upstream DIR [--local-data SOURCE]``."""
    parser = argparse.ArgumentParser(prog="python -m amuro_tasks export-upstream",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="output directory: the tasks are written to DIR/amuro/")
    parser.add_argument("--local-data", metavar="SOURCE",
                        help="'fixtures' or an AMURO_DATA mirror directory: also write "
                             f"DIR/{LOCAL_DATA_FOLDER}/ and point the YAMLs at it (offline runs)")
    args = parser.parse_args(argv)
    folder = export_upstream(args.dir, args.local_data)
    n = len(exported_tasks())
    print(f"wrote {n} tasks to {folder}\n"
          f"use: lm_eval --include_path {folder} --tasks 'amuro_*' ..., or copy it into "
          "lm_eval/tasks/ and add this row to lm_eval/tasks/README.md:\n" + README_LINE)
    return folder


__all__ = ["README_LINE", "export_upstream", "exported_tasks", "hub_source",
           "local_source", "main", "utils_py", "write_local_datasets"]
