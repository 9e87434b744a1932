"""What ``amuro-sft`` can train on, and the paper's per-task choices.

* The paper's four supervised tasks (``mnli``, ``paws``, ``xsum``, ``socialiqa``;
  :data:`amuro_tasks.suite.FINETUNE_TASKS`) with their in-domain (ID) and out-of-domain (OOD)
  evaluation sets and the learning rates the paper picked (Appendix A).
* ``tulu``: instruction tuning on the TULU-v2 mixture (5 epochs in the paper).
* Any other amuro evaluation set whose dataset has a labelled ``train`` split distinct from the
  split it is scored on (``rte``, ``qqp``, ``boolq``, ``arc_easy``, ...): the task is named after
  the set, trains on that split, and its ID set is the set itself (no OOD sets). The paper picked
  no learning rate for these, so one must be given.
"""

from __future__ import annotations

from amuro_tasks.specs import SPECS
from amuro_tasks.suite import FINETUNE_TASKS, INSTRUCT_SUITE

TULU = "tulu"
"""The instruction-tuning task (TULU-v2 mixture, conversations)."""

PAPER_TASKS: tuple[str, ...] = (*FINETUNE_TASKS, TULU)
"""The paper's fine-tuning tasks: its four supervised tasks and TULU instruction tuning."""

PAPER_LR: dict[str, float] = {
    "mnli": 2e-6, "paws": 2e-6, "socialiqa": 2e-6, "xsum": 2e-7, TULU: 2e-6,
}
"""The learning rate the paper picked per task from :data:`PAPER_LR_GRID` (Appendix A)."""

PAPER_LR_GRID: tuple[float, ...] = (2e-5, 2e-6, 2e-7)
"""The paper's learning-rate grid."""

DEFAULT_EPOCHS = 3.0
"""Epochs of supervised fine-tuning (the paper's 3)."""
PAPER_EPOCHS: dict[str, float] = {TULU: 5.0}
"""Epochs where the paper trained longer than :data:`DEFAULT_EPOCHS`: TULU, 5."""


def _dataset(name: str) -> tuple[str, str | None]:
    return SPECS[name].path, SPECS[name].config


def _is_set_task(name: str) -> bool:
    """A set with a labelled ``train`` split that is not the split it is scored on, and not the
    training data of one of the paper's tasks (``mnli_mismatched`` trains as ``mnli``)."""
    if name not in SPECS or name in FINETUNE_TASKS:
        return False
    spec = SPECS[name]
    scored = [s for side in (spec.eval_split, spec.upstream_split or ())
              for s in ((side,) if isinstance(side, str) else side)]
    paper_data = {_dataset(t.train_set) for t in FINETUNE_TASKS.values()}
    return spec.fewshot_split == "train" and "train" not in scored \
        and _dataset(name) not in paper_data


def set_tasks() -> tuple[str, ...]:
    """Evaluation sets trained on as tasks of their own (see :func:`_is_set_task`)."""
    return tuple(name for name in SPECS if _is_set_task(name))


def trainable_tasks() -> tuple[str, ...]:
    """Every task name ``amuro-sft`` accepts: the paper's tasks first, then other sets."""
    return (*PAPER_TASKS, *set_tasks())


def is_known_task(task: str) -> bool:
    """Whether ``task`` is one of :func:`trainable_tasks`."""
    return task in PAPER_TASKS or _is_set_task(task)


def train_set(task: str) -> str | None:
    """The evaluation set whose dataset's ``train`` split a task trains on (``None``: TULU)."""
    if task == TULU:
        return None
    if task in FINETUNE_TASKS:
        return FINETUNE_TASKS[task].train_set
    return task


def eval_sets(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(ID sets, OOD sets)`` a model fine-tuned on ``task`` is scored on: the paper's pairs
    for its four tasks, the OLMo evaluation suite for TULU (§3.3), the set itself otherwise."""
    if task == TULU:
        return INSTRUCT_SUITE, ()
    if task in FINETUNE_TASKS:
        spec = FINETUNE_TASKS[task]
        return spec.id_sets, spec.ood_sets
    return (task,), ()


def default_epochs(task: str) -> float:
    """The paper's number of epochs for ``task``."""
    return PAPER_EPOCHS.get(task, DEFAULT_EPOCHS)
