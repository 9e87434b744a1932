"""lm-eval hooks for amuro's boolq tasks: all logic lives in ``amuro_tasks``."""

from amuro_tasks.harness import doc_to_text, load_amuro_set, process_results_rouge

__all__ = ["load_amuro_set", "process_results_rouge", "doc_to_text_default", "doc_to_text_instruct", "doc_to_text_io"]

doc_to_text_default = doc_to_text("boolq", "default")
doc_to_text_instruct = doc_to_text("boolq", "instruct")
doc_to_text_io = doc_to_text("boolq", "io")
