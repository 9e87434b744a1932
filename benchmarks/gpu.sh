#!/usr/bin/env bash
# The evaluation and SFT benchmarks on one GPU, in under 8 minutes (budgeted by timeouts below),
# offline (models are built locally with random weights; data are the fixtures).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: benchmarks/gpu-results
#
# Writes OUT_DIR/eval_gpu.json (lm-eval at its best vs amuro-hf, plus vLLM with prefix caching
# when vllm is importable), OUT_DIR/sft_gpu.json, OUT_DIR/env.txt and one log per benchmark.
# A step that fails or runs out of time is reported and the next one still runs; the exit status
# is non-zero if any failed. Record the figures in benchmarks/README.md with the GPU named.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/gpu-results}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 AMURO_DATA=fixtures TOKENIZERS_PARALLELISM=false

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c 'import torch, transformers, lm_eval; print("torch", torch.__version__, "cuda",
torch.version.cuda, "| transformers", transformers.__version__, "| lm_eval", lm_eval.__version__)'
  python -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null || echo "vllm: not installed"
  python -c 'import flash_attn; print("flash_attn", flash_attn.__version__)' 2>/dev/null \
    || echo "flash_attn: not installed"
} | tee "$OUT/env.txt"

status=0
run() {  # run NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit}s)"
  local start=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep -E 'classification|summarization|vLLM|plain|tuned|ratio' "$OUT/$name.log" || true
  echo "== $name: exit $rc after $((SECONDS - start))s (log: $OUT/$name.log)"
  [ "$rc" -eq 0 ] || status=1
}

# Evaluation: the OLMo-1B shape, bf16, batch auto, every fixture document (24 per task).
run eval 300 python benchmarks/eval_throughput.py --device cuda --shape olmo-1b --limit 24 \
  --no-context --json "$OUT/eval_gpu.json"
# SFT: plain TRL defaults vs amuro-sft's configuration, OLMo-1B shape, 40 optimizer steps.
run sft 150 python benchmarks/sft_throughput.py --json "$OUT/sft_gpu.json"

exit $status
