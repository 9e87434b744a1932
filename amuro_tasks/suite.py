"""How the evaluation sets relate in the paper's study: fine-tuning tasks, ID/OOD sets, groups.

Paper, Table 1 and §5: each supervised fine-tuning task has in-domain (ID) and out-of-domain
(OOD) evaluation sets; Figure 4 splits datasets into those learned during pre-training and those
learned only with fine-tuning. Task tags in the YAMLs and the study runner both read from here;
what each set *is* (data, prompts, scoring) is declared in its family (``amuro_tasks/families/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from amuro_tasks.families import get_spec


@dataclass(frozen=True)
class FineTuneTask:
    """A supervised fine-tuning task of the paper and the sets it is evaluated on."""

    name: str
    train_set: str
    """Evaluation set whose dataset provides the training split."""
    id_sets: tuple[str, ...]
    ood_sets: tuple[str, ...]

    @property
    def kind(self) -> str:
        """``classification`` or ``generation`` (for the cross-task MRC analysis, §6.2): the
        scoring kind of the training set's family."""
        return get_spec(self.train_set).kind


FINETUNE_TASKS: dict[str, FineTuneTask] = {
    t.name: t
    for t in (
        FineTuneTask("mnli", "mnli_matched", ("mnli_matched", "mnli_mismatched"),
                     ("rte", "gpt3nli")),
        FineTuneTask("paws", "paws", ("paws",), ("qqp", "stsb")),
        FineTuneTask("xsum", "xsum", ("xsum", "xlsum"), ("cnn",)),
        FineTuneTask("socialiqa", "socialiqa", ("socialiqa",), ("sciq", "tweetqa")),
    )
}

#: §3.3: the six sets instruction-tuned checkpoints are scored on (LLMBar comes on top of them).
INSTRUCT_SUITE: tuple[str, ...] = (
    "arc_easy", "arc_challenge", "openbookqa", "hellaswag", "boolq", "sciq_mc",
)

#: Figure 4 / Table 5 of the paper: learned during pre-training vs only with fine-tuning.
PRETRAINING_LEARNED: tuple[str, ...] = (
    "arc_easy", "arc_challenge", "openbookqa", "hellaswag", "sciq_mc",
)
FINETUNING_LEARNED: tuple[str, ...] = (
    "boolq", "mnli_matched", "mnli_mismatched", "paws", "xsum", "xlsum", "socialiqa",
)


def study_tags(set_name: str) -> list[str]:
    """Tags (default format only) that place ``set_name`` in the study: ID/OOD, learned group."""
    tags = []
    for task in FINETUNE_TASKS.values():
        if set_name in task.id_sets:
            tags.append(f"amuro_{task.name}_id")
        if set_name in task.ood_sets:
            tags.append(f"amuro_{task.name}_ood")
    if set_name in PRETRAINING_LEARNED:
        tags.append("amuro_pretraining_learned")
    if set_name in FINETUNING_LEARNED:
        tags.append("amuro_finetuning_learned")
    return tags
