"""The types a task family is declared with (one file per family in ``amuro_tasks/families/``).

A :class:`Family` is everything amuro knows about one kind of evaluation: its prompts in the
paper's three formats, its evaluation sets (:class:`EvalSet`: Hugging Face id, config, splits,
row normaliser with its label words), its tag, its scoring :class:`Kind`, the input field
fine-tuning truncates and its default number of shots. Everything else -- the lm-eval task YAMLs,
the upstream export, ``amuro-sft``'s training examples, the study's registries -- is derived from
these declarations by import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from amuro_tasks.rows import Normalizer, RowRules
from amuro_tasks.sources import DataRef

FORMATS: tuple[str, ...] = ("default", "instruct", "io")
"""The paper's three prompt formats (Table 3): the fine-tuning format, an instruction, raw input."""

PROTOCOLS: tuple[str, ...] = ("paper", "upstream")
"""Which split of a set is scored: ``paper`` (the split the paper scored, where it is labelled;
a labelled substitute where it is not) or ``upstream`` (the split lm-eval's own task for the
dataset scores). Task names are the same under both; ``docs/data.md`` has the table."""
DEFAULT_PROTOCOL = "paper"
"""The protocol used when none is chosen (``amuro_split`` metadata, the study's ``eval.splits``):
amuro reproduces the paper, and its analyses compare with the paper's released scores."""


@dataclass(frozen=True)
class Kind:
    """How a family's tasks are scored in lm-eval."""

    name: str
    output_type: str
    """lm-eval ``output_type``: ``multiple_choice`` or ``generate_until``."""
    metrics: tuple[str, ...]
    """lm-eval metrics, the first one the set's headline metric."""
    first_token: bool = False
    """``amuro_scoring=first_token`` (the paper's scoring) applies: a fixed set of label words."""


KINDS: dict[str, Kind] = {k.name: k for k in (
    # a fixed label set (NLI, paraphrase): rank the verbalised labels, or the paper's first token
    Kind("classification", "multiple_choice", ("acc",), first_token=True),
    # each document brings its own options (ARC, HellaSwag...): lm-eval's acc and acc_norm
    Kind("multiple_choice", "multiple_choice", ("acc", "acc_norm")),
    # two fixed options "Output (a)"/"Output (b)" (LLMBar): acc
    Kind("pairwise", "multiple_choice", ("acc",)),
    # greedy generation scored by ROUGE-L F1 against the target
    Kind("generation", "generate_until", ("rougeL",)),
)}


@dataclass(frozen=True)
class Prompts:
    """One Jinja template per format; the completion (``" " + target``) is not part of it.

    Templates never end in whitespace: the space lives in the completion, which is what
    lm-eval's ``target_delimiter: " "`` produces and what TRL's prompt/completion boundary
    detection needs. They render in a sandbox with ``StrictUndefined`` (a missing field is an
    error, never an empty string).
    """

    default: str
    instruct: str
    io: str

    def __getitem__(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise KeyError(fmt)
        return getattr(self, fmt)

    def as_dict(self) -> dict[str, str]:
        return {fmt: self[fmt] for fmt in FORMATS}


Split = str | tuple[str, ...]


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set as a family file declares it: its real source and how its rows
    become validated docs."""

    name: str
    path: str
    """Hugging Face dataset id."""
    config: str | None
    eval_split: Split
    """Split scored under the ``paper`` protocol (the default); a tuple of splits is scored as
    one set (LLMBar's four Adversarial_*)."""
    normalize: Normalizer
    """Raw row (the dataset's own schema) -> doc; holds the label words (the verbaliser)."""
    fewshot_split: Split | None = "train"
    """Split(s) the few-shot pool is drawn from; ``None`` carves it out of the eval split."""
    upstream_split: Split | None = None
    """Split scored under the ``upstream`` protocol, where it differs from ``eval_split`` (the
    split lm-eval's own task for this dataset scores: ``test`` for ARC, OpenBookQA, SciQ)."""
    paper_scored: str = ""
    """What the paper scored, as evidence says (docs table); empty: ``eval_split``."""
    upstream_scored: str = ""
    """What lm-eval 0.4.13's own task for the dataset scores (docs table); empty: no such task."""
    split_why: str = ""
    """Why the protocols score what they score (docs table)."""
    revision: str | None = None
    """The Hub commit the data is pinned to (a 40-hex hash, from a cited source), or ``None`` for
    ``main``, resolved to its commit when loaded; with ``github``, the GitHub commit."""
    hub_files: tuple[str, ...] = ()
    """Glob patterns of one split's files at ``revision`` (``{config}``, ``{split}`` and
    ``{split_path}`` -- the split name with ``_`` read as ``/`` -- filled in), for datasets whose
    Hub repository holds only a loading script, which ``datasets`` >= 4 refuses: their parquet
    conversion, or the authors' files (``github``). Several patterns: the files of every
    pattern that matches (e.g. the old and the new layout of a parquet conversion)."""
    github: str | None = None
    """``owner/repo`` on GitHub whose files at commit ``revision`` hold the data (``hub_files``
    relative to it): LLMBar, whose Hub repository is a loading script over these files."""
    skip_if_empty: tuple[str, ...] = ()
    """Raw columns *documented* as sometimes empty; such rows are dropped (and counted)."""
    fewshot_max_words: dict[str, int] | None = field(default=None, hash=False)
    """Doc fields capped (in words) for rows to be eligible as shots, so that 4 shots and a
    typical scored input fit a 2048-token window. The scored input itself is never shortened by
    amuro; when shots + input exceed the model's window, lm-eval drops tokens from the *left* of
    the context (the first shot goes first), as for every upstream task."""
    upstream_task: str | None = None
    """The upstream lm-eval task whose prompt and choices the ``default`` format reproduces (so
    the export leaves that format out)."""
    notes: str = ""


@dataclass(frozen=True)
class DatasetSpec(EvalSet):
    """An :class:`EvalSet` bound to its family (what :func:`amuro_tasks.specs.get_spec` returns)."""

    family: str = ""
    kind: str = ""

    @property
    def is_classification(self) -> bool:
        """A fixed label set, so the paper's ``first_token`` scoring applies."""
        return KINDS[self.kind].first_token

    @property
    def metric(self) -> str:
        """The headline metric (``acc`` or ``rougeL``)."""
        return KINDS[self.kind].metrics[0]

    def split_for(self, protocol: str = DEFAULT_PROTOCOL) -> Split:
        """The split(s) scored under ``protocol`` (one of :data:`PROTOCOLS`)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"split protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if protocol == "upstream" and self.upstream_split is not None:
            return self.upstream_split
        return self.eval_split

    @property
    def ref(self) -> DataRef:
        """Where this set's data lives (:func:`amuro_tasks.sources.open_split` reads it)."""
        return DataRef(self.path, self.config, self.revision, self.hub_files, self.github)

    @property
    def fixture_key(self) -> str:
        """Folder of this dataset in a local mirror: ``<owner>__<name>/<config or default>``."""
        return self.ref.mirror_key

    @property
    def rules(self) -> RowRules:
        """What :mod:`amuro_tasks.rows` needs to turn this set's rows into docs."""
        source = self.path + (f", config {self.config}" if self.config else "")
        return RowRules(self.name, self.normalize, source, self.skip_if_empty,
                        self.fewshot_max_words)


@dataclass(frozen=True)
class Family:
    """A task family: prompts, sets, tags, scoring, fine-tuning and shot defaults."""

    name: str
    title: str
    """Human-readable name (documentation)."""
    kind: str
    """Key of :data:`KINDS`."""
    prompts: Prompts
    sets: tuple[EvalSet, ...]
    truncate_field: str | None = None
    """Doc field ``amuro-sft`` shortens when an example does not fit ``max_length`` (the long
    input: document, context, premise...); ``None`` for families never fine-tuned on."""
    default_shots: int = 4
    """Shots when the user asks for none; 0 leaves lm-eval's ``num_fewshot`` unset (zero-shot,
    and ``--num_fewshot`` still applies: lm-eval never overrides a YAML's explicit 0)."""
    format_groups: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Extra tags ``amuro_<group>_<format>`` over several sets (LLMBar's two sets). Tags, not
    lm-eval groups: a group matched by ``--tasks 'amuro_*'`` together with its own members is
    refused by lm-eval as a duplicate."""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"family {self.name!r}: unknown kind {self.kind!r}")
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.name!r}: duplicate set names {names}")
        for members in self.format_groups.values():
            unknown = set(members) - set(names)
            if unknown:
                raise ValueError(f"family {self.name!r}: group members {unknown} are not its sets")
        bound = tuple(
            DatasetSpec(**{f.name: getattr(s, f.name) for f in fields(EvalSet)},
                        family=self.name, kind=self.kind)
            for s in self.sets
        )
        object.__setattr__(self, "specs", bound)

    specs: tuple[DatasetSpec, ...] = field(init=False, repr=False, compare=False)
    """The family's sets, bound to it."""

    @property
    def tag(self) -> str:
        """Tag of every task of the family (all sets, all formats)."""
        return f"amuro_{self.name}"

    @property
    def scoring(self) -> Kind:
        return KINDS[self.kind]
