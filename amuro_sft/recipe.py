"""One fine-tuning recipe: parsed, validated, resolved and identified the same way everywhere.

:class:`SFTRecipe` holds the three dataclasses of :mod:`amuro_sft.config` (amuro's options,
TRL's ``SFTConfig`` with the paper's defaults, TRL's ``ModelConfig``). It is made by

* :func:`parse_cli` -- ``amuro-sft`` flags and ``--config recipe.yaml``, through ``TrlParser``;
* :func:`recipe_from_options` -- one flat mapping ``{option: value}`` (Python, a recipe file
  loaded with :func:`load_recipe`, a study's ``finetune:`` section);

and checked by :meth:`SFTRecipe.validate` in every case. :func:`check_options` gives a mapping
the types its dataclass fields declare, naming the offending key (YAML and Python values do not
go through argparse's conversions).

A recipe's *options* (:meth:`SFTRecipe.to_options`) are amuro's own options, the paper's recipe
values (:data:`RECIPE_CORE`, resolved for the task) and every other option set away from its
default; they are what a recipe file holds and what a study hashes. Its *identity*
(:meth:`SFTRecipe.identity`) is the options minus those that do not change what is trained
(:data:`NON_IDENTITY`: where outputs go, logging, checkpoints, the Hub, devices and the
per-device split of the batch).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from enum import Enum
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import yaml
from trl import ModelConfig, TrlParser

from amuro_sft.config import (
    SWEEP_VAL_EXAMPLES,
    AmuroArguments,
    AmuroSFTConfig,
    RecipeError,
    check_learning_rate,
    split_batch,
)
from amuro_sft.hub import check_model_exists
from amuro_sft.tasks import (
    PAPER_LR,
    TULU,
    default_epochs,
    is_known_task,
    train_set,
    trainable_tasks,
)
from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.prompts import FORMATS

PARTS: tuple[type, ...] = (AmuroArguments, AmuroSFTConfig, ModelConfig)
"""The recipe's dataclasses, in ``TrlParser`` order."""

RECIPE_CORE: tuple[str, ...] = (
    "learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type", "warmup_steps",
    "weight_decay", "max_grad_norm", "max_length", "seed",
)
"""The paper's recipe values: always spelled out in a recipe's options, defaults or not."""

NON_IDENTITY: frozenset[str] = frozenset({
    # where outputs go, what is logged and where, checkpoints, the Hub
    "output_dir", "keep_checkpoints", "logging_strategy", "logging_steps", "logging_first_step",
    "log_on_each_node", "logging_nan_inf_filter", "log_level", "log_level_replica",
    "include_num_input_tokens_seen", "disable_tqdm", "report_to", "run_name", "project",
    "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id", "save_strategy",
    "save_steps", "save_total_limit", "save_on_each_node", "save_only_model",
    "enable_jit_checkpoint", "push_to_hub", "hub_token", "hub_private_repo", "hub_model_id",
    "hub_strategy", "hub_always_push", "hub_revision", "resume_from_checkpoint", "debug",
    "skip_memory_metrics", "do_train", "do_eval", "do_predict", "local_rank",
    # devices and how a batch of `effective_batch_size` examples is split over them
    "use_cpu", "bf16", "tf32", "per_device_train_batch_size", "gradient_accumulation_steps",
    "per_device_eval_batch_size", "eval_accumulation_steps", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "ddp_timeout", "ddp_backend", "dataset_num_proc",
    "torch_empty_cache_steps",
})
"""Options that do not change what a run trains: they may differ between a run and its
resume, and between a study's fine-tune and the same recipe run by hand."""

UNSUPPORTED: dict[str, str] = {
    "use_peft": "amuro-sft fine-tunes every weight, as the paper does (no PEFT/LoRA)",
    "load_in_8bit": "quantized base models are not supported (fp32 master weights)",
    "load_in_4bit": "quantized base models are not supported (fp32 master weights)",
    "packing": "packing would make a batch count packed rows, not the recipe's examples; "
               "amuro's padding_free batches give the speed without it",
}
"""TRL options amuro-sft refuses (value ``True``), and why."""

OPTION_OWNER: dict[str, type] = {f.name: cls for cls in PARTS for f in fields(cls) if f.init}
"""Every recipe option and the dataclass that declares it."""

RENAMED_OPTIONS: dict[str, str] = {
    "model": "model_name_or_path", "revision": "model_revision", "epochs": "num_train_epochs",
    "per_device_batch_size": "per_device_train_batch_size", "hub_branch": "hub_revision",
    "lr": "learning_rate", "cpu": "use_cpu",
}
"""amuro 0.1's option names and TRL's names that replaced them."""

_SEED_MAX = 2**32 - 1  # numpy's and torch's seeding accept [0, 2**32 - 1]


def world_size() -> int:
    """Processes taking part in training (``accelerate launch`` / ``torchrun`` set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


# ------------------------------------------------------------------------------ values
def _plain(value: Any) -> Any:
    """A JSON/YAML-ready copy of an option value (enums by value, configs as dicts)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _plain(value.to_dict())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field(name: str):
    return next(f for f in fields(OPTION_OWNER[name]) if f.name == name)


def option_default(name: str) -> Any:
    """The declared default of recipe option ``name`` (before any task-dependent resolution)."""
    f = _field(name)
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _kinds(hint: Any) -> tuple[list[Any], bool]:
    if typing.get_origin(hint) in (typing.Union, UnionType):
        args = list(typing.get_args(hint))
    else:
        args = [hint]
    return [a for a in args if a is not NoneType], NoneType in args or hint is Any


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, or raise ``ValueError``."""
    origin = typing.get_origin(kind) or kind
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return int(value.strip())
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    elif kind is str:
        if isinstance(value, str):
            return value
    elif origin is typing.Literal:
        if value in typing.get_args(kind):
            return value
    elif isinstance(origin, type) and issubclass(origin, Enum):
        if isinstance(value, origin):
            return value.value
        if isinstance(value, str) and value in {e.value for e in origin}:
            return value
    elif origin in (list, tuple):
        (item,) = typing.get_args(kind)[:1] or (Any,)
        items = value if isinstance(value, (list, tuple)) else [value]
        return [v if item is Any else _convert(v, item) for v in items]
    elif origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    else:  # configs TRL/transformers build themselves (AcceleratorConfig, ...): as given
        return value
    raise ValueError(f"not a {getattr(kind, '__name__', kind)}")


def _describe(kinds: Sequence[Any]) -> str:
    names = []
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if isinstance(origin, type) and issubclass(origin, Enum):
            names.append("one of " + ", ".join(e.value for e in origin))
        elif origin in (list, tuple):
            names.append("a list")
        else:
            names.append({bool: "true or false", int: "an integer", float: "a number",
                          str: "a string", dict: "a mapping"}.get(kind, str(kind)))
    return " or ".join(dict.fromkeys(names))


def coerce_option(name: str, value: Any) -> Any:
    """``value`` converted to the type option ``name`` declares, or a :class:`RecipeError`."""
    kinds, nullable = _kinds(_hints(OPTION_OWNER[name])[name])
    if value is None:
        if nullable:
            return None
        raise RecipeError(name, f"must be {_describe(kinds)}, not null")
    for kind in kinds:
        try:
            out = _convert(value, kind)
        except (ValueError, TypeError):
            continue
        choices = _field(name).metadata.get("choices")
        if choices is not None and out not in choices:
            raise RecipeError(name, f"must be one of {', '.join(map(str, choices))}; "
                                    f"got {value!r}")
        return out
    raise RecipeError(name, f"must be {_describe(kinds)}, got {value!r}")


def suggest(name: str, known: Sequence[str], prefix: str = "") -> str:
    """``"; did you mean X?"`` for a renamed option or the closest known name, or ``""``
    (``prefix``: how names are written, e.g. ``--`` on the command line)."""
    if name in RENAMED_OPTIONS:
        return f"; it is called {prefix}{RENAMED_OPTIONS[name]} now (TRL's name)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Give every option of a flat mapping its declared type; unknown keys are errors."""
    if not isinstance(options, Mapping):
        raise RecipeError(None, f"a recipe must be a mapping of options, got "
                                f"{type(options).__name__}")
    out = {}
    for name, value in options.items():
        if name not in OPTION_OWNER:
            raise RecipeError(str(name), "unknown option" + suggest(str(name), list(OPTION_OWNER))
                              + " (amuro-sft --help lists them all)")
        out[name] = coerce_option(name, value)
    return out


# ------------------------------------------------------------------------------ the recipe
@dataclass
class SFTRecipe:
    """A fine-tuning recipe: amuro's options, TRL's training config and model config."""

    args: AmuroArguments
    training: AmuroSFTConfig
    model: ModelConfig

    # -------------------------------------------------------------- derived values
    @property
    def task(self) -> str:
        """The task trained on."""
        return str(self.args.task)

    @property
    def is_tulu(self) -> bool:
        """Instruction tuning (conversations, assistant-only loss)?"""
        return self.args.task == TULU

    @property
    def train_set(self) -> str | None:
        """The evaluation set whose ``train`` split is trained on (``None`` for TULU)."""
        return train_set(self.task)

    @property
    def output_dir(self) -> Path:
        """Where the run is written."""
        return Path(str(self.training.output_dir))

    @property
    def model_name(self) -> str:
        """Hub id or local directory of the base model."""
        return str(self.model.model_name_or_path)

    @property
    def revision(self) -> str | None:
        """The Hub revision asked for (``None``: the default branch)."""
        rev = self.model.model_revision
        return None if rev in (None, "", "main") else rev

    @property
    def learning_rate(self) -> float:
        """The learning rate used: the given one, else the paper's for the task."""
        if self.training.learning_rate is not None:
            return check_learning_rate(self.training.learning_rate)
        if self.task in PAPER_LR:
            return PAPER_LR[self.task]
        raise RecipeError("learning_rate", f"task {self.task!r} is not one of the paper's, so "
                                           "it has no default learning rate; give one (or a "
                                           "sweep: the paper's grid is 2e-5 2e-6 2e-7)")

    @property
    def num_train_epochs(self) -> float:
        """Epochs: the given number, else the paper's for the task (3; TULU 5)."""
        if self.training.num_train_epochs is not None:
            return float(self.training.num_train_epochs)
        return default_epochs(self.task)

    @property
    def val_examples(self) -> int:
        """Held-out validation rows (0 unless asked for; 500 in a sweep)."""
        if self.args.val_examples is not None:
            return int(self.args.val_examples)
        return SWEEP_VAL_EXAMPLES if self.args.lr_sweep else 0

    @property
    def hub_private(self) -> bool:
        """Whether a pushed repo is created private (amuro's default: yes)."""
        return True if self.training.hub_private_repo is None else self.training.hub_private_repo

    # -------------------------------------------------------------- checks
    def validate(self, processes: int | None = None) -> SFTRecipe:
        """Raise :class:`RecipeError` naming the first invalid option; return ``self``.

        Everything is checked before any data, model or accelerator is touched. ``processes``:
        the processes training will run on (default: ``WORLD_SIZE``)."""
        a, t, m = self.args, self.training, self.model
        if a.task is None:
            raise RecipeError("task", "required (e.g. mnli, paws, xsum, socialiqa, tulu)")
        if not is_known_task(a.task):
            raise RecipeError("task", f"unknown task {a.task!r}; known tasks: "
                                      f"{', '.join(trainable_tasks())}")
        if a.format not in FORMATS:
            raise RecipeError("format", f"unknown prompt format {a.format!r}; known formats: "
                                        f"{', '.join(FORMATS)}")
        if self.is_tulu and a.format != "default":
            raise RecipeError("format", "task 'tulu' is conversational (chat template): only "
                                        "the default format applies")
        if a.lr_sweep is not None:
            if not a.lr_sweep:
                raise RecipeError("lr_sweep", "must list at least one learning rate")
            if t.learning_rate is not None:
                raise RecipeError("lr_sweep", "give either --learning_rate or --lr_sweep")
        else:
            self.learning_rate  # noqa: B018 - checks the rate, or that the paper has one
        self._check_numbers()
        processes = world_size() if processes is None else processes
        _, accumulation = split_batch(a.effective_batch_size, t.per_device_train_batch_size,
                                      processes)
        if t.gradient_accumulation_steps not in (None, accumulation):
            raise RecipeError(
                "gradient_accumulation_steps",
                f"{t.gradient_accumulation_steps} disagrees with effective_batch_size "
                f"{a.effective_batch_size} (per device {t.per_device_train_batch_size} x "
                f"{processes} processes needs {accumulation}); leave it out: it is derived")
        for option, why in UNSUPPORTED.items():
            owner = t if option == "packing" else m
            if getattr(owner, option, False):
                raise RecipeError(option, why)
        from amuro_tasks.loading import data_source

        try:
            data_source(a.data_source)
        except AmuroConfigError as err:
            where = f"{a.data_source!r}" if a.data_source else "$AMURO_DATA"
            raise RecipeError("data_source", f"{where} is neither hub, fixtures nor an existing "
                                             "mirror directory") from err
        if not m.model_name_or_path:
            raise RecipeError("model_name_or_path", "required: a Hub id or a local directory")
        try:
            check_model_exists(str(m.model_name_or_path))
        except AmuroConfigError as err:
            raise RecipeError("model_name_or_path", str(err)) from None
        self._check_hub()
        self._check_trackers()
        return self

    def _check_numbers(self) -> None:
        a, t = self.args, self.training

        def integer(name: str, value: Any, lo: int, hi: int | None = None) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < lo \
                    or (hi is not None and value > hi):
                bound = f" and <= {hi}" if hi is not None else ""
                raise RecipeError(name, f"must be an integer >= {lo}{bound}, got {value!r}")

        if t.num_train_epochs is not None and not (
                isinstance(t.num_train_epochs, (int, float))
                and math.isfinite(t.num_train_epochs) and t.num_train_epochs > 0):
            raise RecipeError("num_train_epochs", f"must be a finite number > 0, got "
                                                  f"{t.num_train_epochs!r}")
        if isinstance(t.max_steps, bool) or not isinstance(t.max_steps, int) \
                or not (t.max_steps == -1 or t.max_steps >= 1):
            raise RecipeError("max_steps", f"must be -1 (train num_train_epochs) or >= 1, got "
                                           f"{t.max_steps!r} (0 would train nothing)")
        integer("seed", t.seed, 0, _SEED_MAX)
        integer("sample_seed", a.sample_seed, 0, _SEED_MAX)
        if t.data_seed is not None:
            integer("data_seed", t.data_seed, 0, _SEED_MAX)
        if a.num_train_examples is not None:
            integer("num_train_examples", a.num_train_examples, 1)
        if a.sample_fraction is not None and not (
                isinstance(a.sample_fraction, (int, float)) and 0 < a.sample_fraction <= 1):
            raise RecipeError("sample_fraction", f"must be in (0, 1], got {a.sample_fraction!r}")
        if a.val_examples is not None:
            integer("val_examples", a.val_examples, 0)
        if t.max_length is None:
            raise RecipeError("max_length", "required: examples are fitted to it")
        integer("max_length", t.max_length, 1)
        if not (isinstance(t.warmup_steps, (int, float)) and math.isfinite(t.warmup_steps)
                and t.warmup_steps >= 0):
            raise RecipeError("warmup_steps", f"must be >= 0 (< 1: a ratio of the steps), got "
                                              f"{t.warmup_steps!r}")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(t, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise RecipeError(name, f"must be a finite number >= 0, got {value!r}")
        if a.on_invalid not in ("error", "skip"):
            raise RecipeError("on_invalid", f"must be error or skip, got {a.on_invalid!r}")

    def _check_hub(self) -> None:
        t = self.training
        if t.push_to_hub:
            repo = t.hub_model_id
            if not repo or repo.count("/") != 1:
                raise RecipeError("hub_model_id", f"--push_to_hub needs the repo to push to as "
                                                  f"--hub_model_id OWNER/NAME, got {repo!r}")
        elif t.hub_revision is not None:
            raise RecipeError("hub_revision", "given without --push_to_hub (nothing is pushed "
                                              "without it)")

    def _check_trackers(self) -> None:
        wanted = [r for r in (self.training.report_to or []) if r not in ("none", "all")]
        if not wanted:
            return
        from transformers.integrations import get_available_reporting_integrations

        available = set(get_available_reporting_integrations())
        for name in wanted:
            if name not in available:
                raise RecipeError("report_to", f"{name} is not installed (pip install {name}); "
                                               f"installed trackers: "
                                               f"{', '.join(sorted(available)) or 'none'}")

    # -------------------------------------------------------------- options and identity
    def all_options(self) -> dict[str, Any]:
        """Every option of the three dataclasses, as plain values (secrets left out)."""
        out = {}
        for part in (self.args, self.model, self.training):
            for f in fields(part):
                if f.init and f.name != "hub_token":
                    out[f.name] = _plain(getattr(part, f.name))
        return out

    def to_options(self) -> dict[str, Any]:
        """The recipe as a flat mapping: amuro's options, :data:`RECIPE_CORE` (the learning rate
        and epochs resolved for the task) and every other option set away from its default.

        ``recipe_from_options(r.to_options())`` is the same recipe; written as YAML it is a
        recipe file for ``amuro-sft --config``."""
        defaults = _default_options()
        out = {}
        for name, value in self.all_options().items():
            if OPTION_OWNER[name] is AmuroArguments or name in RECIPE_CORE \
                    or value != defaults.get(name):
                out[name] = value
        if self.args.lr_sweep is None:
            out["learning_rate"] = self.learning_rate
        out["num_train_epochs"] = self.num_train_epochs
        out["val_examples"] = self.val_examples
        return out

    def identity(self) -> dict[str, Any]:
        """What defines the trained model: :meth:`to_options` minus :data:`NON_IDENTITY`."""
        from amuro_tasks.loading import data_source

        out = {k: v for k, v in self.to_options().items() if k not in NON_IDENTITY}
        out["data_source"] = data_source(self.args.data_source)
        return out

    def with_options(self, **changes: Any) -> SFTRecipe:
        """A copy with ``changes`` (option names as in :meth:`to_options`), not validated."""
        for name in changes:
            if name not in OPTION_OWNER:
                raise RecipeError(name, "unknown option" + suggest(name, list(OPTION_OWNER)))
        parts = {}
        for key, part in (("args", self.args), ("training", self.training),
                          ("model", self.model)):
            mine = {k: v for k, v in changes.items() if OPTION_OWNER[k] is type(part)}
            if key == "training" and "gradient_checkpointing" in mine \
                    and "activation_checkpointing" not in mine:
                mine["activation_checkpointing"] = None  # let the old name decide again
            parts[key] = replace(part, **mine) if mine else part
        return SFTRecipe(**parts)



@cache
def _default_options() -> dict[str, Any]:
    recipe = SFTRecipe(AmuroArguments(), AmuroSFTConfig(output_dir="."), ModelConfig())
    return recipe.all_options()


def recipe_from_options(options: Mapping[str, Any], *, validate: bool = True,
                        processes: int | None = None) -> SFTRecipe:
    """A recipe from one flat mapping of options (any option of ``amuro-sft --help``, by its
    field name), typed by :func:`check_options` and checked by :meth:`SFTRecipe.validate`."""
    typed = check_options(options)
    parts = []
    for cls in PARTS:
        kwargs = {k: v for k, v in typed.items() if OPTION_OWNER[k] is cls}
        try:
            parts.append(cls(**kwargs))
        except RecipeError:
            raise
        except (ValueError, TypeError) as err:  # TRL's / transformers' own checks
            raise RecipeError(None, str(err)) from None
    recipe = SFTRecipe(*parts)
    return recipe.validate(processes) if validate else recipe


def load_recipe(path: str | os.PathLike[str], **overrides: Any) -> SFTRecipe:
    """A recipe from a YAML file (the format of ``amuro-sft --config``), with ``overrides``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RecipeError(None, f"cannot read recipe {path}: {err}") from None
    if not isinstance(data, Mapping):
        raise RecipeError(None, f"recipe {path} must be a mapping of options")
    data = {k: v for k, v in data.items() if k != "env"}
    return recipe_from_options({**data, **overrides})


def write_recipe(recipe: SFTRecipe, path: str | os.PathLike[str]) -> Path:
    """Write ``recipe.to_options()`` as a YAML recipe file (atomically)."""
    from amuro_sft.atomic import atomic_write_text

    text = yaml.safe_dump(recipe.to_options(), sort_keys=False, default_flow_style=False)
    return atomic_write_text(path, "# amuro-sft --config <this file>\n" + text)


# ------------------------------------------------------------------------------ command line
class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's layout and show every option's default."""


def make_parser(prog: str = "amuro-sft", description: str | None = None) -> TrlParser:
    """``TrlParser`` over the recipe's dataclasses (``--help`` text from their metadata)."""
    parser = TrlParser(PARTS, prog=prog, description=description, formatter_class=_Formatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log amuro's progress")
    return parser


def parse_cli(argv: Sequence[str], parser: TrlParser | None = None
              ) -> tuple[SFTRecipe, argparse.Namespace]:
    """Parse ``amuro-sft`` arguments (TRL's flags, ``--config FILE``) into a checked recipe.

    A ``--config`` file's options are typed and checked first (:func:`check_options`), so a bad
    value names its key; flags given too override the file, as with ``trl sft``."""
    argv = list(argv)
    parser = parser or make_parser()
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise RecipeError("config", "expects a recipe file")
        path = Path(argv[i + 1])
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RecipeError("config", f"cannot read {path}: {err}") from None
        if not isinstance(data, Mapping):
            raise RecipeError("config", f"{path} must be a mapping of options")
        try:
            check_options({k: v for k, v in data.items() if k != "env"})
        except RecipeError as err:
            raise RecipeError(err.option, f"{err.message} (in {path})") from None
    *parts, extra, remaining = parser.parse_args_and_config(argv, return_remaining_strings=True)
    if remaining:
        unknown = [a for a in remaining if a.startswith("-")] or remaining
        name = unknown[0].lstrip("-").split("=")[0].replace("-", "_")
        raise RecipeError(None, f"unrecognized arguments: {' '.join(remaining)}"
                                + suggest(name, list(OPTION_OWNER), "--"))
    return SFTRecipe(*parts).validate(), extra


def option_flag(option: str | None) -> str:
    """How the command line spells an option (``--sample_fraction``)."""
    return f"--{option}" if option else ""


def main_error(err: RecipeError, prog: str = "amuro-sft") -> int:
    """Print a recipe error as a usage error; return the exit status (2)."""
    where = f"{option_flag(err.option)}: " if err.option else ""
    print(f"{prog}: error: {where}{err.message}", file=sys.stderr)
    return 2
