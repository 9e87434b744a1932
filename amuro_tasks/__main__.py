"""``python -m amuro_tasks path`` prints the folder for ``lm_eval --include_path``."""

from __future__ import annotations

import argparse

from amuro_tasks import include_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m amuro_tasks")
    parser.add_argument("command", choices=["path"], help="path: print the task folder")
    parser.parse_args(argv)
    print(include_path())


if __name__ == "__main__":
    main()
