"""``python -m amuro_tasks path`` prints the folder for ``lm_eval --include_path``;
``python -m amuro_tasks export-upstream DIR`` writes the tasks for upstream lm-eval to DIR/amuro/
(see :mod:`amuro_tasks.export`)."""

from __future__ import annotations

import argparse
import sys

from amuro_tasks import include_path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "export-upstream":
        from amuro_tasks.export import main as export_main

        export_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m amuro_tasks")
    parser.add_argument("command", choices=["path", "export-upstream"],
                        help="path: print the task folder; export-upstream DIR: write the tasks "
                             "for upstream lm-eval to DIR/amuro/ (see export-upstream --help)")
    parser.parse_args(argv)
    print(include_path())


if __name__ == "__main__":
    main()
