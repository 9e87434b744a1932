"""amuro's recommended evaluation settings: the fast path that ``amuro-eval`` and the study use.

Measured against lm-eval at its best (its ``hf`` model, one call, batch 16 / ``auto``) in
``benchmarks/eval_throughput.py`` (results in ``benchmarks/README.md``);
``tests/test_eval_settings.py`` and ``tests/test_prefix_lm.py`` show both give the same scores.

* one model load for every set and format of a checkpoint (one ``simple_evaluate`` call), with a
  task manager that indexes amuro's tasks only (``include_defaults=False``: indexing lm-eval's
  built-in task folders takes ~9 s on a 2-core machine);
* batching: on a GPU ``batch_size="auto"`` (lm-eval finds the largest batch that fits, up to
  ``max_batch_size``); on a CPU a fixed 16, because ``auto`` probes with five max-length forward
  passes at the largest size per call, which costs more than it saves there (measured: 3.6x
  slower than a batch of 8 on the demo's workload). lm-eval sorts requests by length, so batches
  hold similar lengths and little padding;
* each set's data is loaded and validated once per process and shared by its three formats
  (``amuro_tasks.loading.load_docs`` is memoised);
* every document of a task gets the same 4 shots (a fixed pool; the default ``amuro_shots=fixed``),
  so the 4-shot prefix, about four fifths of each prompt, is shared (per-document shots share
  nothing: lm-eval's path serves them whole): on the hf backend amuro runs lm-eval's ``hf`` model as
  ``amuro-hf`` (:mod:`amuro_tasks.prefix_lm`, :func:`lm_eval_model`), which computes each shared
  prefix once for ``loglikelihood`` and greedy ``generate_until`` (identical scores; opt out
  with the model argument ``shared_prefix=False``); the vLLM backend reuses it with
  ``enable_prefix_caching=True`` (added to its model args by :func:`recommended_model_args`).
"""

from __future__ import annotations

from typing import Any

CPU_BATCH_SIZE = 16
GPU_MAX_BATCH_SIZE = 256
SHARED_PREFIX_MODEL = "amuro-hf"
"""lm-eval model name of :class:`amuro_tasks.prefix_lm.SharedPrefixHFLM` (registered when that
module is imported); it takes every argument of lm-eval's ``hf`` model."""
HF_MODEL_NAMES = ("hf", "hf-auto", "huggingface")
"""lm-eval's names for its ``hf`` model."""


def device_kind(device: str | None) -> str:
    """``cuda`` for any CUDA device string, else ``cpu``."""
    return "cuda" if device and device.startswith("cuda") else "cpu"


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu`` (lm-eval's own default is ``cuda``)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def recommended_settings(device: str | None = None) -> dict[str, Any]:
    """``device`` (default :func:`default_device`) and its batching, as keyword arguments of
    ``lm_eval.simple_evaluate``: what ``amuro-eval`` adds on the command line."""
    device = device or default_device()
    return {"device": device, **recommended_eval_kwargs(device)}


def recommended_eval_kwargs(device: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``lm_eval.simple_evaluate`` (batching) on ``device``."""
    if device_kind(device) == "cuda":
        return {"batch_size": "auto", "max_batch_size": GPU_MAX_BATCH_SIZE}
    return {"batch_size": CPU_BATCH_SIZE}


def recommended_model_args(backend: str) -> dict[str, Any]:
    """Extra model arguments per lm-eval backend (``hf`` needs none; ``vllm`` caches prefixes)."""
    return {"enable_prefix_caching": True} if backend == "vllm" else {}


def lm_eval_model(backend: str, shared_prefix: bool = True) -> str:
    """The lm-eval model that runs amuro's ``backend``: the hf backend as ``amuro-hf`` (shared
    prefixes computed once) unless ``shared_prefix`` is false; any other backend as itself.
    Importing :mod:`amuro_tasks.prefix_lm` registers ``amuro-hf`` with lm-eval."""
    return SHARED_PREFIX_MODEL if shared_prefix and backend in HF_MODEL_NAMES else backend
