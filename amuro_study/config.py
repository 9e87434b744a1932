"""The study configuration: one YAML file, parsed into typed dataclasses and validated up front.

Every problem is reported before any work starts, as a :class:`StudyConfigError` whose message
begins with the dotted key that is wrong (``finetune.tasks[1]: unknown fine-tuning task ...``).
Task, set and format names are checked against the registries of :mod:`amuro_tasks`.

Schema (see ``examples/demo.yaml`` and ``docs/study.md``)::

    name: my-study                       # optional, a label
    output_dir: runs/my-study            # where units, models, results and the report go
    model: allenai/OLMo-1B-hf            # Hub id or local directory (not with `pretrain`)
    revisions: [step1000-tokens4B, main] # or `steps: [1000, 342000]` (resolved on the Hub)
    pretrain: {...}                      # demo only: build and pre-train a tiny model instead
    data: hub                            # amuro_data: hub | fixtures | a local mirror directory
    offline: false                       # set HF_*_OFFLINE for the run
    finetune:
      tasks: [mnli, xsum]
      learning_rates: {mnli: [2e-6], xsum: [2e-7]}   # or one list for every task; default: paper's
      seed: 42
      ...                                # num_train_examples, epochs, max_steps, format, ...
    eval:
      sets: auto                         # or a list; an item may be {name: xsum, formats: [...]}
      formats: [default, instruct, io]
      shots: [4]
      limit: null
    backend:
      eval: hf                           # or vllm
      shared_prefix: true                # hf: shared prompt prefixes computed once (amuro-hf)
      device: cpu
      executor: local                    # or slurm
      ...
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from amuro_tasks import include_path
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.prompts import FORMATS
from amuro_tasks.settings import (
    GPU_MAX_BATCH_SIZE,
    lm_eval_model,
    recommended_eval_kwargs,
    recommended_model_args,
)
from amuro_tasks.specs import SPECS
from amuro_tasks.suite import FINETUNE_TASKS, INSTRUCT_SUITE

TULU = "tulu"
"""Instruction tuning on TULU-v2 (``amuro-sft --task tulu``), the paper's second arm."""
STUDY_FINETUNE_TASKS: tuple[str, ...] = (*FINETUNE_TASKS, TULU)

EVAL_BACKENDS = ("hf", "vllm")
EXECUTORS = ("local", "slurm")
SCORING_MODES = ("choice", "first_token")
_STEP_REVISION = re.compile(r"^step(\d+)(?:-tokens\d+[KMBT]?)?$")


class StudyConfigError(AmuroConfigError):
    """A study configuration is invalid; the message starts with the offending key."""


# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class RevisionSpec:
    """One pre-training checkpoint to study: a Hub revision or a local sub-directory."""

    revision: str
    step: int | None = None


@dataclass(frozen=True)
class PretrainSpec:
    """Demo only: build a tiny OLMo-architecture model and pre-train it on the fixture texts.

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

    @property
    def max_steps(self) -> int:
        """The last step trained."""
        return max(self.save_steps)


@dataclass(frozen=True)
class FinetuneSpec:
    """What to fine-tune each checkpoint on, and the shared recipe (passed to ``amuro_sft``)."""

    tasks: tuple[str, ...] = ()
    learning_rates: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    """Per task; ``(None,)`` means the paper's learning rate for that task."""
    seed: int = 42
    format: str = "default"
    num_train_examples: int | None = 6000
    epochs: float | None = None
    max_steps: int = -1
    effective_batch_size: int = 8
    max_length: int = 2048


@dataclass(frozen=True)
class EvalSetSpec:
    """One evaluation set and the prompt formats it is scored in."""

    name: str
    formats: tuple[str, ...]


@dataclass(frozen=True)
class EvalSpec:
    """Which sets, formats and shot counts every checkpoint (base and fine-tuned) is scored on."""

    sets: tuple[EvalSetSpec, ...] = ()
    shots: tuple[int, ...] = (4,)
    limit: int | float | None = None
    scoring: str = "choice"


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
    workers: int = 1
    """Local executor: units run at once (separate processes when > 1)."""
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    trust_remote_code: bool = False
    shared_prefix: bool = True
    """hf backend: compute each shared prompt prefix once (lm-eval model ``amuro-hf``, identical
    scores); false: lm-eval's own ``hf`` model."""

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


def revision_step(revision: str) -> int | None:
    """The pre-training step of a Hub revision named ``step{N}`` or ``step{N}-tokens{M}B``.

    These names are the Hub repositories' documented branch scheme (OLMo, Pythia); ``main`` and
    commit hashes have no step (give one with ``{revision: ..., step: N}``).
    """
    match = _STEP_REVISION.match(revision)
    return int(match.group(1)) if match else None


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
        if step is None:  # every analysis orders and plots checkpoints by step
            raise _err(key, f"revision {rev!r} has no step in its name; give one: "
                            f"{{revision: {rev}, step: N}} (the paper takes OLMo-1B's main as "
                            "step 750000)")
        out.append(RevisionSpec(rev, step))
    _unique([r.revision for r in out], "revisions")
    return tuple(out)


def _parse_steps(value: Any, key: str) -> tuple[int, ...]:
    steps = tuple(_int(s, f"{key}[{i}]", 0) for i, s in enumerate(_list(value, key)))
    _unique(steps, key)
    return steps


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


_FINETUNE_KEYS = ("tasks", "learning_rates", "seed", "format", "num_train_examples", "epochs",
                  "max_steps", "effective_batch_size", "max_length")


def _parse_finetune(value: Any) -> FinetuneSpec:
    data = _mapping(value, "finetune")
    _check_keys(data, _FINETUNE_KEYS, "finetune")
    tasks = tuple(_list(data.get("tasks", []), "finetune.tasks", allow_empty=True))
    for i, task in enumerate(tasks):
        if task not in STUDY_FINETUNE_TASKS:
            raise _err(f"finetune.tasks[{i}]", f"unknown fine-tuning task {task!r}; known: "
                                               f"{', '.join(STUDY_FINETUNE_TASKS)}")
    _unique(tasks, "finetune.tasks")
    lrs_raw = data.get("learning_rates")
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
    kwargs: dict[str, Any] = {"tasks": tasks, "learning_rates": lrs}
    if "seed" in data:
        kwargs["seed"] = _int(data["seed"], "finetune.seed", 0)
    if "format" in data:
        kwargs["format"] = _choice(data["format"], "finetune.format", FORMATS)
        if TULU in tasks and kwargs["format"] != "default":
            raise _err("finetune.format", "task 'tulu' is conversational (chat template): "
                                          "only the default format applies; run other formats "
                                          "in a separate study")
    if "num_train_examples" in data and data["num_train_examples"] is not None:
        kwargs["num_train_examples"] = _int(data["num_train_examples"],
                                            "finetune.num_train_examples", 1)
    elif "num_train_examples" in data:
        kwargs["num_train_examples"] = None
    if data.get("epochs") is not None:
        kwargs["epochs"] = _float(data["epochs"], "finetune.epochs")
    if "max_steps" in data:
        steps = _int(data["max_steps"], "finetune.max_steps", -1)
        if steps == 0:
            raise _err("finetune.max_steps", "must be -1 (use epochs) or >= 1")
        kwargs["max_steps"] = steps
    for name in ("effective_batch_size", "max_length"):
        if name in data:
            kwargs[name] = _int(data[name], f"finetune.{name}", 1)
    return FinetuneSpec(**kwargs)


def _parse_formats(value: Any, key: str) -> tuple[str, ...]:
    formats = tuple(_choice(f, f"{key}[{i}]", FORMATS) for i, f in enumerate(_list(value, key)))
    _unique(formats, key)
    return formats


def auto_eval_sets(tasks: Sequence[str]) -> list[str]:
    """ID and OOD sets of every fine-tuning task: each fine-tuned model is then also scored on
    the other tasks' sets (the paper's cross-task evaluation)."""
    out: list[str] = []
    for task in tasks:
        if task == TULU:  # instruction tuning is scored on the OLMo evaluation suite (§3.3)
            names: tuple[str, ...] = INSTRUCT_SUITE
        else:
            spec = FINETUNE_TASKS[task]
            names = (*spec.id_sets, *spec.ood_sets)
        for name in names:
            if name not in out:
                out.append(name)
    return out


def _parse_eval(value: Any, finetune: FinetuneSpec) -> EvalSpec:
    data = _mapping(value, "eval")
    _check_keys(data, ("sets", "formats", "shots", "limit", "scoring"), "eval")
    formats = _parse_formats(data.get("formats", ["default"]), "eval.formats")
    raw_sets = data.get("sets", "auto")
    if raw_sets == "auto":
        if not finetune.tasks:
            raise _err("eval.sets", "'auto' needs finetune.tasks; list the sets instead")
        raw_sets = auto_eval_sets(finetune.tasks)
    sets: list[EvalSetSpec] = []
    for i, item in enumerate(_list(raw_sets, "eval.sets")):
        key = f"eval.sets[{i}]"
        if isinstance(item, Mapping):
            _check_keys(item, ("name", "formats"), key)
            if "name" not in item:
                raise _err(f"{key}.name", "missing required key")
            name = item["name"]
            set_formats = (_parse_formats(item["formats"], f"{key}.formats")
                           if "formats" in item else formats)
        else:
            name, set_formats = item, formats
        if name not in SPECS:
            raise _err(key, f"unknown evaluation set {name!r}; known: {', '.join(sorted(SPECS))}")
        for fmt in set_formats:
            if not task_yaml_exists(name, fmt):
                raise _err(key, f"no lm-eval task amuro_{name}_{fmt} is shipped")
        sets.append(EvalSetSpec(name, set_formats))
    _unique([s.name for s in sets], "eval.sets")
    shots = tuple(_int(s, f"eval.shots[{i}]", 0)
                  for i, s in enumerate(_list(data.get("shots", [4]), "eval.shots")))
    _unique(shots, "eval.shots")
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
    return EvalSpec(tuple(sets), shots, limit, scoring)


_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")
_BATCH = re.compile(r"recommended|auto(:[1-9]\d*)?")
DTYPES = ("auto", "float32", "float16", "bfloat16")
_SLURM_KEYS = ("partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "extra")
_BACKEND_KEYS = ("eval", "device", "batch_size", "dtype", "num_gpus", "per_device_batch_size",
                 "executor", "workers", "slurm", "trust_remote_code", "shared_prefix")


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
    for name in ("num_gpus", "per_device_batch_size", "workers"):
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
        if "revisions" in data and "steps" in data:
            raise _err("steps", "give either 'revisions' or 'steps', not both")
        if "revisions" in data:
            revisions = _parse_revisions(data["revisions"])
        elif "steps" in data:
            steps = _parse_steps(data["steps"], "steps")
        else:
            raise _err("revisions", "missing required key (or give 'steps')")
        if steps and Path(model).is_dir():
            raise _err("steps", f"model {model!r} is a local directory: list its checkpoint "
                                "sub-directories under 'revisions'")
        if Path(model).is_dir():
            for i, rev in enumerate(revisions):
                if rev.revision != "main" and not (Path(model) / rev.revision).is_dir():
                    raise _err(f"revisions[{i}]",
                               f"no checkpoint directory {Path(model) / rev.revision}")
    data_source = _str(data.get("data", "hub"), "data")
    if data_source not in ("hub", "fixtures") and not Path(data_source).is_dir():
        raise _err("data", f"must be hub, fixtures or an existing directory, got {data_source!r}")
    offline = data.get("offline", False)
    if not isinstance(offline, bool):
        raise _err("offline", "must be true or false")
    if offline and data_source == "hub":
        raise _err("offline", "offline runs need data: fixtures or a local mirror directory")
    finetune = _parse_finetune(data.get("finetune"))
    evaluation = _parse_eval(data.get("eval"), finetune)
    backend = _parse_backend(data.get("backend"))
    if finetune.tasks and finetune.effective_batch_size % backend.num_gpus:
        raise _err("backend.num_gpus",
                   f"finetune.effective_batch_size {finetune.effective_batch_size} is not a "
                   f"multiple of backend.num_gpus {backend.num_gpus} (one process per GPU): "
                   "every fine-tune would fail")
    if backend.eval == "vllm" and backend.device == "cpu":
        raise _err("backend.eval", "vllm needs a GPU device (backend.device: cuda)")
    return StudyConfig(
        output_dir=output_dir, model=model, revisions=revisions, steps=steps, pretrain=pretrain,
        name=_str(data.get("name", "study"), "name"), data=data_source, offline=offline,
        finetune=finetune, eval=evaluation, backend=backend, source=source,
    )


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    path = Path(path)
    if not path.is_file():
        raise StudyConfigError(f"<config>: no such file {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise StudyConfigError(f"<config>: {path} is not valid YAML: {err}") from None
    return parse_config(data, source=path)


def resolve_steps(model: str, steps: Sequence[int], refs: Sequence[str] | None = None
                  ) -> tuple[RevisionSpec, ...]:
    """Map pre-training steps to the Hub branches of ``model`` (``step{N}-...`` or ``step{N}``).

    Branch names carry a token count that cannot be computed (``step10000-tokens41B``), so the
    branches are listed with ``huggingface_hub.list_repo_refs``; ``refs`` overrides the listing
    (tests). A step with no branch raises :class:`StudyConfigError` naming the nearest ones.
    """
    if refs is None:
        from huggingface_hub import list_repo_refs

        try:
            refs = [b.name for b in list_repo_refs(model).branches]
        except Exception as err:  # network, auth, unknown repo
            raise _err("steps", f"cannot list the branches of {model!r}: {err}") from None
    by_step: dict[int, str] = {}
    for name in refs:
        step = revision_step(name)
        if step is not None:
            by_step.setdefault(step, name)
    out = []
    for i, step in enumerate(steps):
        if step not in by_step:
            near = sorted(by_step, key=lambda s: abs(s - step))[:3]
            raise _err(f"steps[{i}]",
                       f"{model!r} has no branch for step {step}; nearest: "
                       + (", ".join(by_step[s] for s in sorted(near)) or "no step branches"))
        out.append(RevisionSpec(by_step[step], step))
    return tuple(out)
