"""``amuro-eval``: the ``lm_eval`` command with amuro's task folder on the include path.

Every argument is forwarded to lm-eval unchanged and ``--include_path`` is added; for an
evaluation run without ``--device``/``--batch_size``, amuro's recommended settings are added
(:mod:`amuro_tasks.settings`: the best device and its batching), and lm-eval's ``hf`` model
(``--model hf``, or no ``--model``) runs as ``amuro-hf``, which computes the prompt prefix that
a task's documents share once (:mod:`amuro_tasks.prefix_lm`; same arguments, same scores; opt out
with ``--model_args ...,shared_prefix=False``). Sub-commands
work too: ``amuro-eval ls tasks``, ``amuro-eval validate --tasks ...``. lm-eval 0.4 takes a
single include path on its command line, so to combine amuro's tasks with your own use the
Python API (:func:`amuro_tasks.task_manager` accepts extra paths).
"""

from __future__ import annotations

import sys

from amuro_tasks import include_path


def with_include_path(argv: list[str]) -> list[str]:
    """``argv`` with amuro's task folder as ``--include_path``."""
    argv = list(argv)
    if any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        raise SystemExit(
            "amuro-eval sets --include_path itself and lm-eval's command line takes only one; "
            "to add your own task folder use lm_eval.simple_evaluate(task_manager="
            "amuro_tasks.task_manager(include_path=[...]))"
        )
    if argv and argv[0] == "ls":  # `ls tasks` takes the option after the listing kind
        return argv[:2] + ["--include_path", include_path()] + argv[2:]
    return argv + ["--include_path", include_path()]


def _has(argv: list[str], option: str, short: str | None = None) -> bool:
    """Whether ``option`` (or its one-letter ``short`` form: ``-b 8``, ``-b8``) is given."""
    return any(a == option or a.startswith(option + "=")
               or (short is not None and a.startswith(short) and not a.startswith("--"))
               for a in argv)


def with_recommended_settings(argv: list[str]) -> list[str]:
    """For an evaluation run, amuro's fast defaults where the user set nothing.

    ``--device``: CUDA when available, else CPU; the device's recommended batching (see
    :mod:`amuro_tasks.settings`); lm-eval's ``hf`` model as ``amuro-hf`` (shared prefixes
    computed once; ``shared_prefix=False`` in ``--model_args`` turns that off). Explicit
    options always win.
    """
    if argv and argv[0] in ("ls", "validate"):
        return list(argv)
    if _has(argv, "--config", "-C"):  # a config file may set device and batch size itself,
        return list(argv)             # and lm-eval lets the command line override it
    from amuro_tasks.settings import default_device, recommended_eval_kwargs

    argv = with_shared_prefix_model(argv)
    if not _has(argv, "--device"):
        argv += ["--device", default_device()]
    device = _value(argv, "--device")[1]  # type: ignore[index]
    if not _has(argv, "--batch_size", "-b"):
        for key, value in recommended_eval_kwargs(device).items():
            if not _has(argv, f"--{key}"):
                argv += [f"--{key}", str(value)]
    return argv


def _value(argv: list[str], option: str) -> tuple[int, str] | None:
    """Index and value of ``option`` given as ``option value`` or ``option=value``."""
    for i, a in enumerate(argv):
        if a == option and i + 1 < len(argv):
            return i + 1, argv[i + 1]
        if a.startswith(option + "="):
            return i, a.split("=", 1)[1]
    return None


def with_shared_prefix_model(argv: list[str]) -> list[str]:
    """``argv`` with lm-eval's ``hf`` model (named, or lm-eval's default) as ``amuro-hf``."""
    from amuro_tasks.settings import SHARED_PREFIX_MODEL, lm_eval_model

    argv = list(argv)
    found = _value(argv, "--model") or _value(argv, "-M")
    if found is None and _has(argv, "--model", "-M"):  # -Mvllm
        return argv
    if found is None:
        return argv + ["--model", SHARED_PREFIX_MODEL]
    i, name = found
    model = lm_eval_model(name)
    if model != name:
        argv[i] = model if argv[i] == name else f"--model={model}"
    return argv


def amuro_help() -> str:
    """What ``amuro-eval`` adds to lm-eval's command line (printed before lm-eval's help)."""
    from amuro_tasks.settings import default_device, recommended_eval_kwargs

    device = default_device()
    batch = " ".join(f"--{k} {v}" for k, v in recommended_eval_kwargs(device).items())
    return (f"amuro-eval: lm-eval's command line with amuro's tasks (amuro_*). amuro adds:\n"
            f"  --include_path {include_path()}\n"
            f"  --device {device} {batch}\n"
            "    (to a run that sets neither; on a GPU: --device cuda --batch_size auto)\n"
            "  --model amuro-hf for lm-eval's hf model (or no --model): the same model, the\n"
            "    few-shot prefix shared by a task's documents computed once; opt out with\n"
            "    --model_args ...,shared_prefix=False\n"
            "Everything else is lm-eval's own:\n")


def main(argv: list[str] | None = None) -> None:
    """Run lm-eval's CLI with amuro's tasks available and amuro's recommended settings."""
    from lm_eval.__main__ import cli_evaluate

    from amuro_tasks.quiet_git import quiet_git_hash

    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(amuro_help(), flush=True)
    args = with_recommended_settings(with_include_path(argv))
    if "amuro-hf" in args or "--model=amuro-hf" in args:
        import amuro_tasks.prefix_lm  # noqa: F401  (registers amuro-hf with lm-eval)
    sys.argv = ["lm_eval", *args]
    with quiet_git_hash():  # no "fatal: not a git repository" outside a git checkout
        cli_evaluate()


if __name__ == "__main__":
    main()
