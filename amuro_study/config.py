"""The study configuration: one YAML file, parsed into typed dataclasses and validated up front.

Every problem is reported before any work starts, as a :class:`StudyConfigError` whose message
begins with the dotted key that is wrong (``finetune.tasks[1]: unknown fine-tuning task ...``).
Task, set and format names are checked against the registries of :mod:`amuro_tasks`.

Schema (see ``examples/demo.yaml`` and ``docs/study.md``)::

    name: my-study                       # optional, a label
    output_dir: runs/my-study            # where units, models, results and the report go
    model: allenai/OLMo-1B-hf            # Hub id or local directory (not with `pretrain`)
    revisions: [step1000, main]          # or `steps: [1000, 342000, main]` (resolved on the Hub)
    pretrain: {...}                      # demo only: build and pre-train a tiny model instead
    data: hub                            # amuro_data: hub | fixtures | a local mirror directory
    offline: false                       # set HF_*_OFFLINE for the run
    finetune:
      tasks: [mnli, xsum]                # the paper's tasks, tulu, or any set with a train split
      learning_rates: {mnli: [2e-6], xsum: [2e-7]}   # or one list for every task; default: paper's
      seed: 42
      ...                                # any other option of `amuro-sft --help` (the recipe)
      by_task: {tulu: {sample_fraction: 0.05}}   # options of one task only
    eval:
      sets: auto                         # or a list; an item may be {name: xsum, formats: [...]}
      formats: [default, instruct, io]
      shots: [4]
      fewshot_seeds: [1234]              # shot sets: each seed draws another pool (k > 0 shots)
      shot_sampling: fixed               # or per_document, or [fixed, per_document]
      limit: null
      splits: paper                      # or upstream (lm-eval's): which split of each set
      on_invalid: error                  # or skip (per set: {name: xsum, on_invalid: skip})
    backend:
      eval: hf                           # or vllm
      shared_prefix: true                # hf: shared prompt prefixes computed once (amuro-hf)
      device: cpu
      executor: local                    # or slurm
      ...
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from amuro_sft.hub import branch_for_step, check_model_exists, list_branches, revision_step
from amuro_sft.tasks import eval_sets, is_known_task, trainable_tasks
from amuro_tasks import include_path
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.family import DEFAULT_PROTOCOL, PROTOCOLS
from amuro_tasks.loading import DEFAULT_FEWSHOT_SEED
from amuro_tasks.prompts import FORMATS
from amuro_tasks.scoring import SCORING_MODES
from amuro_tasks.settings import (
    GPU_MAX_BATCH_SIZE,
    lm_eval_model,
    recommended_eval_kwargs,
    recommended_model_args,
)
from amuro_tasks.shots import DEFAULT_SHOT_MODE, SHOT_MODES
from amuro_tasks.specs import SPECS

if TYPE_CHECKING:
    from amuro_sft.recipe import SFTRecipe

log = logging.getLogger("amuro")

EVAL_BACKENDS = ("hf", "vllm")
ON_INVALID = ("error", "skip")
EXECUTORS = ("local", "slurm")


class StudyConfigError(AmuroConfigError):
    """A study configuration is invalid; the message starts with the offending key."""


# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class RevisionSpec:
    """One pre-training checkpoint to study: a Hub revision or a local sub-directory."""

    revision: str
    step: int | None = None


@dataclass(frozen=True)
class WorldSpec:
    """Demo only: the synthetic world (:mod:`amuro_study.demo_world`) that the study's data and
    the demo pre-training corpus come from, written to ``<output_dir>/world`` when the config
    is read.

    ``pretrain_sets``: the sets whose solved training examples are in the pre-training corpus
    (the base checkpoints can learn those tasks in pre-training; the others only by
    fine-tuning)."""

    seed: int = 0
    train_rows: int = 400
    eval_rows: int = 150
    label_noise: float = 0.1
    pretrain_sets: tuple[str, ...] = ("xsum",)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists)."""
        return {"seed": self.seed, "train_rows": self.train_rows, "eval_rows": self.eval_rows,
                "label_noise": self.label_noise, "pretrain_sets": list(self.pretrain_sets)}


WORLD_DIR = "world"
"""The synthetic world's folder under ``output_dir`` (its data source)."""


@dataclass(frozen=True)
class PretrainSpec:
    """Demo only: build a tiny OLMo-architecture model and pre-train it on the fixture texts,
    or, with ``world``, on the corpus of a synthetic world whose data the study then uses.

    Checkpoints are saved after each step in ``save_steps`` (0 = the random initialisation).
    """

    name: str = "amuro-tiny"
    save_steps: tuple[int, ...] = (0, 20, 40)
    seed: int = 0
    vocab_size: int = 512
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    block_size: int = 64
    batch_size: int = 8
    learning_rate: float = 3e-3
    world: WorldSpec | None = None

    @property
    def max_steps(self) -> int:
        """The last step trained."""
        return max(self.save_steps)


@dataclass(frozen=True)
class FinetuneSpec:
    """What to fine-tune each checkpoint on: tasks x learning rates, and the recipe.

    The recipe is ``amuro_sft``'s (any option of ``amuro-sft --help``), validated by
    ``amuro_sft`` itself at parse time for every task and learning rate; the study sets the
    model, revision, output folder and data source of each fine-tune."""

    tasks: tuple[str, ...] = ()
    learning_rates: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    """Per task, as declared; ``(None,)`` means the paper's learning rate for that task."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The recipe options of the section (typed), plus what the study decides for every
    fine-tune (``data_source``, ``trust_remote_code``)."""
    recipes: Mapping[tuple[str, float], SFTRecipe] = field(default_factory=dict, compare=False,
                                                         repr=False)
    """The validated recipe of each ``(task, learning rate)`` (the rate resolved), in order."""

    def recipe(self, task: str, learning_rate: float) -> SFTRecipe:
        """The recipe of one fine-tune (model and output folder still to be set)."""
        return self.recipes[(task, learning_rate)]


@dataclass(frozen=True)
class EvalSetSpec:
    """One evaluation set, the prompt formats it is scored in, and what an invalid row does."""

    name: str
    formats: tuple[str, ...]
    on_invalid: str = "error"
    """``error`` stops the set at its first invalid row; ``skip`` drops (and counts) them."""


@dataclass(frozen=True)
class EvalSpec:
    """Which sets, formats and shot counts every checkpoint (base and fine-tuned) is scored on."""

    sets: tuple[EvalSetSpec, ...] = ()
    shots: tuple[int, ...] = (4,)
    limit: int | float | None = None
    scoring: str = "choice"
    splits: str = DEFAULT_PROTOCOL
    """Split protocol: ``paper`` (the split the paper scored, where labelled) or ``upstream``
    (lm-eval's); see ``docs/data.md``."""
    fewshot_seeds: tuple[int, ...] = (DEFAULT_FEWSHOT_SEED,)
    """Shot sets: each seed shuffles the shot split into another pool (``amuro_fewshot_seed``),
    so every k-shot evaluation is run once per seed; 0-shot ones once."""
    shot_sampling: tuple[str, ...] = (DEFAULT_SHOT_MODE,)
    """``fixed`` (one shot set for every document, the paper's) and/or ``per_document`` (a
    seeded draw from the pool for each document): ``amuro_shots``, see ``amuro_tasks.shots``."""

    @property
    def skip_invalid(self) -> tuple[str, ...]:
        """Sets whose invalid rows are skipped (``on_invalid: skip``)."""
        return tuple(s.name for s in self.sets if s.on_invalid == "skip")


@dataclass(frozen=True)
class SlurmSpec:
    """Options for the SLURM executor (``submitit``); ``extra`` goes to ``update_parameters``."""

    partition: str | None = None
    timeout_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 64
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendSpec:
    """How units run: evaluation engine, devices, executor."""

    eval: str = "hf"
    device: str = "cpu"
    batch_size: int | str = "recommended"
    """``recommended`` (per device, ``amuro_tasks.settings``), ``auto[:N]`` or a fixed size."""
    dtype: str = "auto"
    num_gpus: int = 1
    """GPUs per unit: fine-tunes use ``accelerate launch`` when > 1; vllm: tensor parallel."""
    per_device_batch_size: int = 8
    executor: str = "local"
    workers: int | None = None
    """Units at once. Local executor: 1 unless set (separate processes when > 1); SLURM: the
    job array's ``array_parallelism`` when set, else as many as the cluster schedules."""
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    trust_remote_code: bool = False
    shared_prefix: bool = True
    """hf backend: compute each shared prompt prefix once (lm-eval model ``amuro-hf``, identical
    scores); false: lm-eval's own ``hf`` model."""
    cpu_threads: int | None = None
    """torch's CPU threads in each unit's process (``None``: torch's default, one per core).
    Tiny CPU models run fastest on one: threads only wait for each other on such small
    tensors, and far longer on a machine shared with other jobs."""

    @property
    def lm_eval_model(self) -> str:
        """The lm-eval model name that runs ``eval`` (``amuro-hf`` for hf, see above)."""
        return lm_eval_model(self.eval, self.shared_prefix)

    def model_args(self, pretrained: str, revision: str | None) -> dict[str, Any]:
        """lm-eval ``model_args`` (a dict: paths with commas stay intact)."""
        args: dict[str, Any] = {"pretrained": pretrained, "dtype": self.dtype}
        if revision is not None:
            args["revision"] = revision
        if self.trust_remote_code:
            args["trust_remote_code"] = True
        if self.eval == "vllm":
            if importlib.util.find_spec("vllm") is None:
                raise RuntimeError("backend.eval is 'vllm' but vllm is not installed "
                                   "(pip install 'amuro[vllm]')")
            args["tensor_parallel_size"] = self.num_gpus
        return args | recommended_model_args(self.eval)

    def batch_kwargs(self) -> dict[str, Any]:
        """lm-eval batching arguments: the device's recommended ones, or what the config says."""
        if self.batch_size == "recommended":
            return recommended_eval_kwargs(self.device)
        if str(self.batch_size).startswith("auto"):
            return {"batch_size": self.batch_size, "max_batch_size": GPU_MAX_BATCH_SIZE}
        return {"batch_size": self.batch_size}


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: checkpoints x fine-tunes x evaluations, and how to run them."""

    output_dir: Path
    model: str
    revisions: tuple[RevisionSpec, ...] = ()
    steps: tuple[int, ...] = ()
    """Hub steps still to be resolved to branch names (see :func:`resolve_steps`)."""
    steps_main: bool = False
    """``main`` was listed under ``steps`` (the final checkpoint: no branch to resolve)."""
    pretrain: PretrainSpec | None = None
    name: str = "study"
    data: str = "hub"
    offline: bool = False
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    backend: BackendSpec = field(default_factory=BackendSpec)
    source: Path | None = None
    """The YAML file this was read from, if any."""

    @property
    def is_local_model(self) -> bool:
        """Whether ``model`` names a local directory (checkpoints are its sub-directories)."""
        return self.pretrain is None and Path(self.model).is_dir()


# --------------------------------------------------------------------------- helpers
def _err(key: str, message: str) -> StudyConfigError:
    return StudyConfigError(f"{key}: {message}")


def _check_keys(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in data:
        if key not in known:
            path = f"{where}.{key}" if where else str(key)
            raise _err(path, f"unknown key; known keys: {', '.join(known)}")


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _err(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(key, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _err(key, f"must be >= {minimum}, got {value}")
    return value


def _float(value: Any, key: str, positive: bool = True) -> float:
    if isinstance(value, bool):
        raise _err(key, f"must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _err(key, f"must be a number, got {value!r}") from None
    if not math.isfinite(out) or (positive and out <= 0):
        raise _err(key, f"must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return out


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(key, f"must be a non-empty string, got {value!r}")
    return value


def _list(value: Any, key: str, allow_empty: bool = False) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _err(key, f"must be a list, got {value!r}")
    if not value and not allow_empty:
        raise _err(key, "must not be empty")
    return list(value)


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _err(key, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def _unique(items: Sequence[Any], key: str) -> None:
    seen: set[Any] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise _err(f"{key}[{i}]", f"duplicate entry {item!r}")
        seen.add(item)


def task_yaml_exists(eval_set: str, fmt: str) -> bool:
    """Whether ``amuro_<eval_set>_<fmt>`` is one of the shipped lm-eval task YAMLs."""
    return any(Path(include_path()).rglob(f"amuro_{eval_set}_{fmt}.yaml"))


# --------------------------------------------------------------------------- sections
def _parse_revisions(value: Any) -> tuple[RevisionSpec, ...]:
    out = []
    for i, item in enumerate(_list(value, "revisions")):
        key = f"revisions[{i}]"
        if isinstance(item, Mapping):
            _check_keys(item, ("revision", "step"), key)
            if "revision" not in item:
                raise _err(f"{key}.revision", "missing required key")
            rev = _str(item["revision"], f"{key}.revision")
            step = item.get("step")
            step = revision_step(rev) if step is None else _int(step, f"{key}.step", 0)
        elif isinstance(item, str) and item.strip():
            rev, step = item, revision_step(item)
        else:
            raise _err(key, f"must be a revision name (string) or a mapping, got {item!r}")
        if step is None and rev != MAIN:  # every analysis orders and plots checkpoints by step
            raise _err(key, f"revision {rev!r} has no step in its name; give one: "
                            f"{{revision: {rev}, step: N}}")
        out.append(RevisionSpec(rev, step))
    _unique([r.revision for r in out], "revisions")
    return _place_main(out, "revisions")


MAIN = "main"
"""The final checkpoint's revision, accepted wherever step names are."""


def _place_main(revisions: Sequence[RevisionSpec], key: str) -> tuple[RevisionSpec, ...]:
    """``main`` given without a step is placed at :data:`~amuro_study.records.PAPER_MAIN_STEP`
    (750,000: the paper's convention for OLMo-1B, whose last step is 738,020), after every other
    checkpoint; a model pre-trained beyond that needs ``{revision: main, step: N}``."""
    from amuro_study.records import PAPER_MAIN_STEP

    steps = [r.step for r in revisions if r.step is not None and r.revision != MAIN]
    out = []
    for i, rev in enumerate(revisions):
        if rev.revision == MAIN and rev.step is None:
            if steps and max(steps) >= PAPER_MAIN_STEP:
                raise _err(f"{key}[{i}]", f"main would be placed at step {PAPER_MAIN_STEP:,} "
                                          f"(the paper's convention), not after step "
                                          f"{max(steps):,}; give its step: "
                                          "{revision: main, step: N}")
            rev = RevisionSpec(MAIN, PAPER_MAIN_STEP)
        out.append(rev)
    return tuple(out)


def _parse_steps(value: Any, key: str) -> tuple[int, ...]:
    steps = tuple(_int(s, f"{key}[{i}]", 0) for i, s in enumerate(_list(value, key)))
    _unique(steps, key)
    return steps


def _parse_hub_steps(value: Any) -> tuple[tuple[int, ...], bool]:
    """``steps``: integers, and ``main`` (the final checkpoint, which needs no branch)."""
    items = _list(value, "steps")
    with_main = MAIN in items
    if items.count(MAIN) > 1:
        raise _err(f"steps[{len(items) - 1 - items[::-1].index(MAIN)}]", "duplicate entry 'main'")
    steps = tuple(_int(s, f"steps[{i}]", 0) for i, s in enumerate(items) if s != MAIN)
    _unique(steps, "steps")
    if not steps and not with_main:
        raise _err("steps", "must not be empty")
    return steps, with_main


def _parse_world(value: Any) -> WorldSpec:
    from amuro_study.demo_world import WORLD_SETS

    data = _mapping(value, "pretrain.world")
    _check_keys(data, [f.name for f in fields(WorldSpec)], "pretrain.world")
    kwargs: dict[str, Any] = {}
    for name in ("seed", "train_rows", "eval_rows"):
        if name in data:
            kwargs[name] = _int(data[name], f"pretrain.world.{name}",
                                0 if name == "seed" else 20)
    if "label_noise" in data:
        noise = _float(data["label_noise"], "pretrain.world.label_noise", positive=False)
        if not 0 <= noise < 1:
            raise _err("pretrain.world.label_noise", f"must be in [0, 1), got {noise}")
        kwargs["label_noise"] = noise
    if "pretrain_sets" in data:
        key = "pretrain.world.pretrain_sets"
        items = _list(data["pretrain_sets"], key, allow_empty=True)
        for i, item in enumerate(items):
            _choice(item, f"{key}[{i}]", WORLD_SETS)
        _unique(items, key)
        kwargs["pretrain_sets"] = tuple(items)
    return WorldSpec(**kwargs)


def _parse_pretrain(value: Any) -> PretrainSpec:
    data = _mapping(value, "pretrain")
    known = [f.name for f in fields(PretrainSpec)]
    _check_keys(data, known, "pretrain")
    kwargs: dict[str, Any] = {}
    for name in known:
        if name not in data:
            continue
        key = f"pretrain.{name}"
        if name == "save_steps":
            kwargs[name] = tuple(sorted(_parse_steps(data[name], key)))
        elif name == "world":
            kwargs[name] = _parse_world(data[name])
        elif name == "name":
            kwargs[name] = _str(data[name], key)
        elif name == "learning_rate":
            kwargs[name] = _float(data[name], key)
        else:
            kwargs[name] = _int(data[name], key, 0 if name == "seed" else 1)
    spec = PretrainSpec(**kwargs)
    if spec.hidden_size % spec.num_heads:
        raise _err("pretrain.hidden_size", f"must be a multiple of num_heads ({spec.num_heads})")
    return spec


#: Recipe options a study sets itself for every fine-tune, and the key that says how.
_SET_BY_STUDY: dict[str, str] = {
    "task": "finetune.tasks", "lr_sweep": "finetune.learning_rates",
    "model_name_or_path": "model", "model_revision": "revisions", "output_dir": "output_dir",
    "data_source": "data",
}
#: Old study keys and the recipe option that replaced them.
_RENAMED_KEYS: dict[str, str] = {"epochs": "num_train_epochs"}


def _recipe_key(option: str | None, task: str, lrs_key: str) -> str:
    """The study key to blame for a recipe error about ``option``."""
    if option is None:
        return "finetune"
    if option in ("learning_rate", "lr_sweep"):
        return lrs_key
    if option == "task":
        return f"finetune.tasks ({task})"
    return _SET_BY_STUDY.get(option, f"finetune.{option}")


def _parse_finetune(value: Any, *, model: str, data: str, output_dir: Path,
                    backend: BackendSpec) -> FinetuneSpec:
    data_map = dict(_mapping(value, "finetune"))
    for old, new in _RENAMED_KEYS.items():
        if old in data_map:
            if new in data_map:
                raise _err(f"finetune.{old}", f"renamed {new}; give only {new}")
            log.warning("finetune.%s is deprecated: use finetune.%s", old, new)
            data_map[new] = data_map.pop(old)
    tasks = tuple(_list(data_map.pop("tasks", []), "finetune.tasks", allow_empty=True))
    for i, task in enumerate(tasks):
        if not isinstance(task, str) or not is_known_task(task):
            raise _err(f"finetune.tasks[{i}]", f"unknown fine-tuning task {task!r}; known: "
                                               f"{', '.join(trainable_tasks())}")
    _unique(tasks, "finetune.tasks")
    by_task_raw = dict(_mapping(data_map.pop("by_task", None), "finetune.by_task"))
    for task in by_task_raw:
        if task not in tasks:
            raise _err(f"finetune.by_task.{task}",
                       f"not one of finetune.tasks ({', '.join(tasks) or 'none'})")
    lrs_raw = data_map.pop("learning_rates", None)
    if "learning_rate" in data_map:
        if lrs_raw is not None:
            raise _err("finetune.learning_rate", "give either learning_rate or learning_rates")
        lrs_raw = [data_map.pop("learning_rate")]
    lrs: dict[str, tuple[float | None, ...]] = {}
    if lrs_raw is None:
        lrs = {t: (None,) for t in tasks}
    elif isinstance(lrs_raw, Mapping):
        for task in lrs_raw:
            if task not in tasks:
                raise _err(f"finetune.learning_rates.{task}",
                           f"not one of finetune.tasks ({', '.join(tasks) or 'none'})")
        for task in tasks:
            key = f"finetune.learning_rates.{task}"
            raw = lrs_raw.get(task)
            items = [None] if raw is None else (raw if isinstance(raw, list) else [raw])
            if not items:
                raise _err(key, "an empty list would plan no fine-tune for this task; give "
                                "learning rates, or null for the paper's")
            lrs[task] = tuple(
                None if v is None else _float(v, f"{key}[{i}]") for i, v in enumerate(items)
            )
            _unique(lrs[task], key)
    else:
        items = _list(lrs_raw, "finetune.learning_rates")
        if not items and tasks:
            raise _err("finetune.learning_rates", "an empty list would plan no fine-tune; give "
                                                  "learning rates, or null for the paper's")
        values = tuple(_float(v, f"finetune.learning_rates[{i}]") for i, v in enumerate(items))
        _unique(values, "finetune.learning_rates")
        lrs = {t: values for t in tasks}
    if not tasks and not data_map:
        return FinetuneSpec(tasks, lrs, {})
    by_task: dict[str, dict[str, Any]] = {}
    from amuro_sft.config import RecipeError
    from amuro_sft.recipe import OPTION_OWNER, check_options, recipe_from_options, suggest

    for key in data_map:
        if key in _SET_BY_STUDY:
            raise _err(f"finetune.{key}", f"set by the study for every fine-tune (see "
                                          f"{_SET_BY_STUDY[key]})")
        if key not in OPTION_OWNER:
            known = ["tasks", "learning_rates", *OPTION_OWNER]
            raise _err(f"finetune.{key}", "unknown key" + suggest(str(key), known)
                       + " (the recipe's options are those of amuro-sft --help)")
    try:
        options = check_options(data_map)
    except RecipeError as err:
        raise _err(f"finetune.{err.option}", err.message) from None
    for task, raw in by_task_raw.items():  # one task's own recipe options (TULU's sample...)
        where = f"finetune.by_task.{task}"
        for key in _mapping(raw, where):
            if key in _SET_BY_STUDY or key in ("tasks", "learning_rates", "by_task"):
                raise _err(f"{where}.{key}", "not a per-task option (learning rates: "
                                             "finetune.learning_rates.<task>)")
            if key not in OPTION_OWNER:
                raise _err(f"{where}.{key}", "unknown key" + suggest(str(key), list(OPTION_OWNER)))
        try:
            by_task[task] = check_options(dict(raw))
        except RecipeError as err:
            raise _err(f"{where}.{err.option}", err.message) from None
    if not tasks:  # options checked, nothing to fine-tune
        return FinetuneSpec(tasks, lrs, options)
    options.setdefault("trust_remote_code", backend.trust_remote_code)
    options["data_source"] = data
    options.setdefault("per_device_train_batch_size", backend.per_device_batch_size)
    recipes: dict[tuple[str, float], SFTRecipe] = {}
    for task in tasks:
        lrs_key = (f"finetune.learning_rates.{task}" if isinstance(lrs_raw, Mapping)
                   else "finetune.learning_rates")
        for lr in lrs[task]:
            try:
                recipe = recipe_from_options(
                    {**options, **by_task.get(task, {}), "task": task, "learning_rate": lr,
                     "model_name_or_path": model, "output_dir": str(output_dir / "units")},
                    processes=backend.num_gpus)
            except RecipeError as err:
                key = _recipe_key(err.option, task, lrs_key)
                if err.option in by_task.get(task, {}):
                    key = f"finetune.by_task.{task}.{err.option}"
                raise _err(key, err.message) from None
            key = (task, recipe.learning_rate)
            if key in recipes:
                raise _err(lrs_key, f"learning rate {recipe.learning_rate:g} twice for {task} "
                                    "(null is the paper's rate)")
            recipes[key] = recipe
    return FinetuneSpec(tasks, lrs, options, recipes)


def _parse_formats(value: Any, key: str) -> tuple[str, ...]:
    formats = tuple(_choice(f, f"{key}[{i}]", FORMATS) for i, f in enumerate(_list(value, key)))
    _unique(formats, key)
    return formats


def auto_eval_sets(tasks: Sequence[str]) -> list[str]:
    """ID and OOD sets of every fine-tuning task: each fine-tuned model is then also scored on
    the other tasks' sets (the paper's cross-task evaluation)."""
    out: list[str] = []
    for task in tasks:
        # the paper's ID/OOD pairs; TULU: the OLMo evaluation suite (§3.3); other sets: their own
        id_sets, ood_sets = eval_sets(task)
        for name in (*id_sets, *ood_sets):
            if name not in out:
                out.append(name)
    return out


def _parse_eval(value: Any, finetune: FinetuneSpec) -> EvalSpec:
    data = _mapping(value, "eval")
    _check_keys(data, ("sets", "formats", "shots", "fewshot_seeds", "shot_sampling", "limit",
                       "scoring", "splits", "on_invalid"), "eval")
    formats = _parse_formats(data.get("formats", ["default"]), "eval.formats")
    on_invalid = _choice(data.get("on_invalid", "error"), "eval.on_invalid", ON_INVALID)
    raw_sets = data.get("sets", "auto")
    if raw_sets == "auto":
        if not finetune.tasks:
            raise _err("eval.sets", "'auto' needs finetune.tasks; list the sets instead")
        raw_sets = auto_eval_sets(finetune.tasks)
    sets: list[EvalSetSpec] = []
    for i, item in enumerate(_list(raw_sets, "eval.sets")):
        key = f"eval.sets[{i}]"
        set_on_invalid = on_invalid
        if isinstance(item, Mapping):
            _check_keys(item, ("name", "formats", "on_invalid"), key)
            if "name" not in item:
                raise _err(f"{key}.name", "missing required key")
            name = item["name"]
            set_formats = (_parse_formats(item["formats"], f"{key}.formats")
                           if "formats" in item else formats)
            if "on_invalid" in item:
                set_on_invalid = _choice(item["on_invalid"], f"{key}.on_invalid", ON_INVALID)
        else:
            name, set_formats = item, formats
        if name not in SPECS:
            raise _err(key, f"unknown evaluation set {name!r}; known: {', '.join(sorted(SPECS))}")
        for fmt in set_formats:
            if not task_yaml_exists(name, fmt):
                raise _err(key, f"no lm-eval task amuro_{name}_{fmt} is shipped")
        sets.append(EvalSetSpec(name, set_formats, set_on_invalid))
    _unique([s.name for s in sets], "eval.sets")
    shots = tuple(_int(s, f"eval.shots[{i}]", 0)
                  for i, s in enumerate(_list(data.get("shots", [4]), "eval.shots")))
    _unique(shots, "eval.shots")
    seeds = tuple(_int(s, f"eval.fewshot_seeds[{i}]", 0) for i, s in enumerate(
        _list(data.get("fewshot_seeds", [DEFAULT_FEWSHOT_SEED]), "eval.fewshot_seeds")))
    _unique(seeds, "eval.fewshot_seeds")
    sampling_raw = data.get("shot_sampling", [DEFAULT_SHOT_MODE])
    if isinstance(sampling_raw, str):
        sampling_raw = [sampling_raw]
    sampling = tuple(_choice(m, f"eval.shot_sampling[{i}]", SHOT_MODES)
                     for i, m in enumerate(_list(sampling_raw, "eval.shot_sampling")))
    _unique(sampling, "eval.shot_sampling")
    limit = data.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise _err("eval.limit", f"must be a number of examples or a fraction, got {limit!r}")
        if isinstance(limit, float) and not 0 < limit < 1:
            # lm-eval reads a float >= 1.0 as a count (1.0 = one example), not as "all"
            raise _err("eval.limit", f"a fractional limit must be in (0, 1) (null scores every "
                                     f"example), got {limit}")
        if isinstance(limit, int) and limit < 1:
            raise _err("eval.limit", f"must be >= 1, got {limit}")
    scoring = _choice(data.get("scoring", "choice"), "eval.scoring", SCORING_MODES)
    splits = _choice(data.get("splits", DEFAULT_PROTOCOL), "eval.splits", PROTOCOLS)
    return EvalSpec(tuple(sets), shots, limit, scoring, splits, seeds, sampling)


_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")
_BATCH = re.compile(r"recommended|auto(:[1-9]\d*)?")
DTYPES = ("auto", "float32", "float16", "bfloat16")
_SLURM_KEYS = ("partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "extra")
_BACKEND_KEYS = ("eval", "device", "batch_size", "dtype", "num_gpus", "per_device_batch_size",
                 "executor", "workers", "slurm", "trust_remote_code", "shared_prefix",
                 "cpu_threads")


def _parse_backend(value: Any) -> BackendSpec:
    data = _mapping(value, "backend")
    _check_keys(data, _BACKEND_KEYS, "backend")
    kwargs: dict[str, Any] = {}
    if "eval" in data:
        kwargs["eval"] = _choice(data["eval"], "backend.eval", EVAL_BACKENDS)
    if "executor" in data:
        kwargs["executor"] = _choice(data["executor"], "backend.executor", EXECUTORS)
    if "device" in data:
        device = _str(data["device"], "backend.device")
        if not _DEVICE.fullmatch(device):
            raise _err("backend.device", f"must be cpu, cuda, cuda:N or mps, got {device!r}")
        kwargs["device"] = device
    if "dtype" in data:
        kwargs["dtype"] = _choice(data["dtype"], "backend.dtype", DTYPES)
    if "batch_size" in data:
        bs = data["batch_size"]
        if isinstance(bs, str):
            if not _BATCH.fullmatch(bs):
                raise _err("backend.batch_size", "must be a positive integer, 'recommended', "
                                                 f"'auto' or 'auto:N', got {bs!r}")
            kwargs["batch_size"] = bs
        else:
            kwargs["batch_size"] = _int(bs, "backend.batch_size", 1)
    for name in ("num_gpus", "per_device_batch_size", "workers", "cpu_threads"):
        if name in data:
            kwargs[name] = _int(data[name], f"backend.{name}", 1)
    for name in ("trust_remote_code", "shared_prefix"):
        if name in data:
            if not isinstance(data[name], bool):
                raise _err(f"backend.{name}", "must be true or false")
            kwargs[name] = data[name]
    if "slurm" in data:
        raw = _mapping(data["slurm"], "backend.slurm")
        _check_keys(raw, _SLURM_KEYS, "backend.slurm")
        slurm: dict[str, Any] = {}
        if raw.get("partition") is not None:
            slurm["partition"] = _str(raw["partition"], "backend.slurm.partition")
        for name in ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb"):
            if name in raw:
                slurm[name] = _int(raw[name], f"backend.slurm.{name}",
                                   0 if name == "gpus_per_node" else 1)
        if "extra" in raw:
            slurm["extra"] = dict(_mapping(raw["extra"], "backend.slurm.extra"))
        kwargs["slurm"] = SlurmSpec(**slurm)
    return BackendSpec(**kwargs)


_TOP_KEYS = ("name", "output_dir", "model", "revisions", "steps", "pretrain", "data", "offline",
             "finetune", "eval", "backend")


def parse_config(data: Any, *, source: Path | None = None) -> StudyConfig:
    """Validate a config mapping (as read from YAML) into a :class:`StudyConfig`.

    Relative ``output_dir`` and local ``model`` paths are taken relative to the current
    directory. Raises :class:`StudyConfigError` naming the first bad key.
    """
    if not isinstance(data, Mapping):
        raise StudyConfigError(f"<config>: must be a mapping of keys, got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, "")
    if "output_dir" not in data:
        raise _err("output_dir", "missing required key")
    output_dir = Path(_str(data["output_dir"], "output_dir"))
    pretrain = _parse_pretrain(data["pretrain"]) if "pretrain" in data else None
    revisions: tuple[RevisionSpec, ...] = ()
    steps: tuple[int, ...] = ()
    steps_main = False
    if pretrain is not None:
        for key in ("model", "revisions", "steps"):
            if key in data:
                raise _err(key, "not allowed with 'pretrain' (its checkpoints are "
                                "pretrain.save_steps)")
        model = pretrain.name
    else:
        if "model" not in data:
            raise _err("model", "missing required key (a Hub id or a local directory)")
        model = _str(data["model"], "model")
        try:  # a path that does not exist would pass as a Hub id, and fail in every unit
            check_model_exists(model)
        except AmuroConfigError as err:
            raise _err("model", str(err)) from None
        if "revisions" in data and "steps" in data:
            raise _err("steps", "give either 'revisions' or 'steps', not both")
        if "revisions" in data:
            revisions = _parse_revisions(data["revisions"])
        elif "steps" in data:
            steps, steps_main = _parse_hub_steps(data["steps"])
        else:
            raise _err("revisions", "missing required key (or give 'steps')")
        if (steps or steps_main) and Path(model).is_dir():
            raise _err("steps", f"model {model!r} is a local directory: list its checkpoint "
                                "sub-directories under 'revisions'")
        if Path(model).is_dir():
            for i, rev in enumerate(revisions):
                if rev.revision != "main" and not (Path(model) / rev.revision).is_dir():
                    raise _err(f"revisions[{i}]",
                               f"no checkpoint directory {Path(model) / rev.revision}")
    if pretrain is not None and pretrain.world is not None:
        if "data" in data:
            raise _err("data", "not allowed with pretrain.world (the data is the synthetic "
                               f"world, written to {output_dir / WORLD_DIR})")
        from amuro_study.demo_world import write_world

        try:  # deterministic, a few hundred KB: written (once) when the config is read
            data_source = str(write_world(pretrain.world, output_dir / WORLD_DIR))
        except OSError as err:
            raise _err("output_dir", f"cannot write the demo world to {output_dir / WORLD_DIR}: "
                                     f"{err.strerror or err}") from None
    else:
        data_source = _str(data.get("data", "hub"), "data")
        if data_source not in ("hub", "fixtures") and not Path(data_source).is_dir():
            raise _err("data", "must be hub, fixtures or an existing directory, got "
                               f"{data_source!r}")
    offline = data.get("offline", False)
    if not isinstance(offline, bool):
        raise _err("offline", "must be true or false")
    if offline and data_source == "hub":
        raise _err("offline", "offline runs need data: fixtures or a local mirror directory")
    backend = _parse_backend(data.get("backend"))
    raw_finetune = _mapping(data.get("finetune"), "finetune")
    if raw_finetune.get("tasks"):
        from amuro_sft.config import EFFECTIVE_BATCH_SIZE, RecipeError, split_batch

        batch = raw_finetune.get("effective_batch_size", EFFECTIVE_BATCH_SIZE)
        try:  # a batch that is no int yet ("8") is the recipe's to parse and check
            if isinstance(batch, int) and not isinstance(batch, bool):
                split_batch(batch, 1, backend.num_gpus)
        except RecipeError as err:
            key = "backend.num_gpus" if batch >= 1 else "finetune.effective_batch_size"
            raise _err(key, f"{err.message}: every fine-tune would fail") from None
    finetune = _parse_finetune(raw_finetune, model=model, data=data_source,
                               output_dir=output_dir, backend=backend)
    evaluation = _parse_eval(data.get("eval"), finetune)
    if backend.eval == "vllm" and backend.device == "cpu":
        raise _err("backend.eval", "vllm needs a GPU device (backend.device: cuda)")
    return StudyConfig(
        output_dir=output_dir, model=model, revisions=revisions, steps=steps,
        steps_main=steps_main, pretrain=pretrain,
        name=_str(data.get("name", "study"), "name"), data=data_source, offline=offline,
        finetune=finetune, eval=evaluation, backend=backend, source=source,
    )


def load_config(path: str | Path, output_dir: str | Path | None = None) -> StudyConfig:
    """Read and validate a study YAML file; ``output_dir`` replaces the file's (before
    anything is derived from it, such as the demo world's folder)."""
    path = Path(path)
    if not path.is_file():
        raise StudyConfigError(f"<config>: no such file {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise StudyConfigError(f"<config>: {path} is not valid YAML: {err}") from None
    if output_dir is not None and isinstance(data, Mapping):
        data = {**data, "output_dir": str(output_dir)}
    return parse_config(data, source=path)


def resolve_steps(model: str, steps: Sequence[int], refs: Sequence[str] | None = None,
                  *, with_main: bool = False) -> tuple[RevisionSpec, ...]:
    """Map pre-training steps to the Hub branches of ``model`` (``step{N}-...`` or ``step{N}``),
    and ``main`` last when ``with_main`` (placed as :func:`_place_main` says).

    Branch names carry a token count that cannot be computed (``step10000-tokens41B``), so the
    branches are listed (``amuro_sft.hub.list_branches``); ``refs`` overrides the listing
    (tests). A step with no branch raises :class:`StudyConfigError` naming the nearest ones.
    """
    main = (RevisionSpec(MAIN),) if with_main else ()
    if not steps:
        return _place_main(main, "steps")
    if refs is None:
        try:
            refs = list_branches(model)
        except Exception as err:  # network, auth, unknown repo
            raise _err("steps", f"cannot list the branches of {model!r}: {err}") from None
    out = []
    for i, step in enumerate(steps):
        try:
            out.append(RevisionSpec(branch_for_step(model, step, refs), step))
        except AmuroConfigError as err:
            raise _err(f"steps[{i}]", str(err)) from None
    return _place_main([*out, *main], "steps")
