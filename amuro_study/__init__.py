"""amuro_study: study runner, result records, analyses and reports.

Runner (``amuro study plan|run|report``, ``amuro demo``; see docs/study.md):

* :mod:`amuro_study.config` -- the study YAML as validated dataclasses;
* :mod:`amuro_study.plan` -- the grid as typed units with stable ids, and its cost;
* :mod:`amuro_study.store` -- one folder per unit, atomic ``result.json`` (done iff it exists);
* :mod:`amuro_study.runner` -- run one unit / a whole study, collect result records;
* :mod:`amuro_study.executors` -- local (in-process or processes) and SLURM (submitit);
* :mod:`amuro_study.evaluate` -- lm-eval ``simple_evaluate`` -> :class:`ResultRecord`;
* :mod:`amuro_study.pretrain_demo` -- the offline demo's tiny pre-training run.

Analysis: :mod:`amuro_study.records`, :mod:`amuro_study.analysis`, :mod:`amuro_study.report`,
:mod:`amuro_study.paper_results`.
"""
