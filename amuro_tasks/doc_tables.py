"""The tables of ``docs/data.md``, generated from the family declarations (a test keeps the
document equal to them): where each set's data comes from, and which split each protocol
scores. Run ``python -m amuro_tasks.doc_tables`` to print them."""

from __future__ import annotations

from amuro_tasks.families import SPECS
from amuro_tasks.family import DatasetSpec, Split


def _splits(split: Split | None) -> str:
    if split is None:
        return ""
    return " + ".join((split,) if isinstance(split, str) else split)


def _source(spec: DatasetSpec) -> str:
    where = f"`{spec.path}`" + (f" `{spec.config}`" if spec.config else "")
    if spec.github:
        return (f"{where}: the authors' JSON files, github.com/{spec.github} at "
                f"`{spec.revision[:12]}`")
    if spec.hub_files:
        return f"{where}: its parquet conversion at `{spec.revision[:12]}`"
    if spec.revision:
        return f"{where} at `{spec.revision[:12]}`"
    return f"{where}, `main` (resolved to its commit when read)"


def source_table() -> str:
    """One row per set: the data read under ``AMURO_DATA=hub``."""
    rows = ["| set | read from (`AMURO_DATA=hub`) |", "|---|---|"]
    rows += [f"| `{s.name}` | {_source(s)} |" for s in SPECS.values()]
    return "\n".join(rows)


def split_table() -> str:
    """One row per set: the split scored under each protocol, by the paper, by lm-eval, why."""
    rows = ["| set | `paper` (default) | `upstream` | the paper scored | lm-eval 0.4.13 scores | "
            "why |", "|---|---|---|---|---|---|"]
    for s in SPECS.values():
        paper = _splits(s.eval_split)
        upstream = _splits(s.split_for("upstream"))
        rows.append(f"| `{s.name}` | {paper} | {upstream} | {s.paper_scored or paper} | "
                    f"{s.upstream_scored or 'no task'} | {s.split_why} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(source_table() + "\n\n" + split_table())
