"""lm-eval hooks for amuro's qgen tasks: the logic lives in ``amuro_tasks.harness``,
the prompts in ``amuro_tasks/families/qgen.py``."""

from amuro_tasks.harness import (
    doc_to_text,
    load_amuro_set,
    process_results_rouge,
    quiet_custom_dataset_notice,
)

__all__ = ["load_amuro_set", "process_results_rouge", "doc_to_text_default", "doc_to_text_instruct", "doc_to_text_io"]

quiet_custom_dataset_notice()  # lm-eval's per-task custom_dataset notice

doc_to_text_default = doc_to_text("qgen", "default")
doc_to_text_instruct = doc_to_text("qgen", "instruct")
doc_to_text_io = doc_to_text("qgen", "io")
