"""The exported folder's README, in upstream lm-eval's task-README template."""

from __future__ import annotations

from amuro_tasks.families import FAMILIES
from amuro_tasks.family import FORMATS
from amuro_tasks.loading import DEFAULT_FEWSHOT_SEED, FEWSHOT_POOL_SIZE
from amuro_tasks.tasks import all_tasks, task_name, task_tags
from amuro_tasks.upstream.plan import (
    MIN_LM_EVAL,
    README_LINE,
    DataSource,
    exported,
    exported_tasks,
    split_label,
)

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
        "* Data is read at a pinned commit where one is known (`dataset_kwargs.revision`): "
        "`allenai/ai2_arc`, and the parquet conversions of XSum and XL-Sum, whose Hub "
        "repositories hold only loading scripts (which `datasets` >= 4 refuses; the "
        "`data_files` patterns match both layouts such conversions have had). LLMBar's Hub "
        "repository is a loading script over the authors' JSON files on GitHub: the YAMLs "
        "read those files (`dataset_path: json`) at a pinned commit.",
        "* Scored splits are the ones the paper scored where labelled (amuro's `paper` split "
        "protocol): ARC, OpenBookQA and SciQ score `validation`, where upstream's tasks of "
        "these datasets score `test` (amuro's plugin offers both, `amuro_split`).",
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
        "* Per-document shots: the export has fixed shots only (`first_n`, amuro's default "
        "protocol and the paper's). amuro's plugin can also draw a seeded shot set per "
        "document from the same pool (`--metadata '{\"amuro_shots\": \"per_document\"}'`), "
        "which needs amuro's own lm-eval sampler; a folder for stock lm-eval cannot register "
        "one.",
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
