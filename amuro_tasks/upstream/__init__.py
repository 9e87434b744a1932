"""The pieces of ``python -m amuro_tasks export-upstream`` (:mod:`amuro_tasks.export`).

* :mod:`.plan`: which tasks are exported and how each set loads its data (Hub or local folders);
* :mod:`.hooks`: the generated ``utils.py`` (per-set ``process_docs`` hooks, ROUGE-L);
* :mod:`.readme`: the folder's README in upstream's task template;
* :mod:`.local_data`: local Hugging Face dataset folders from the fixtures or a mirror.
"""
