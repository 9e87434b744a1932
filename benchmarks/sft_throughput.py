"""SFT throughput: TRL's plain SFTTrainer defaults vs amuro-sft's tuned configuration.

Both runs train the same model (same initial weights) on the same examples -- the MNLI training
rows rendered by the evaluation template -- for the same number of optimizer steps, 8 examples
per step, and report training tokens/s (non-padding tokens) and, on GPU, model FLOPs utilisation.

(a) plain: ``SFTConfig`` defaults (per-example padding to the longest in the batch, gradient
    checkpointing on, bf16 autocast on GPU, TRL's fused AdamW);
(b) tuned: ``amuro_sft.build_sft_config`` of a default recipe (padding-free batches with
    per-sequence attention via ``position_ids``, no gradient checkpointing, bf16 autocast over
    fp32 weights, fused AdamW, FlashAttention-2 when installed).

CPU: a tiny OLMo-architecture model. GPU: an OLMo-1B-shaped model with random weights.

    python benchmarks/sft_throughput.py                 # auto: tiny on CPU, 1B shape on GPU
    python benchmarks/sft_throughput.py --steps 30 --shape olmo1b --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("AMURO_DATA", "fixtures")

#: Dense bf16 peak FLOP/s (no sparsity), by device-name substring.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}

SHAPES = {
    "tiny": dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4),
    # allenai/OLMo-1B-hf: d_model 2048, 16 layers, 16 heads, MLP 8192, vocab 50304, tied embeddings
    "olmo1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=16, tie_word_embeddings=True),
}


def make_examples(n: int, fmt: str = "default") -> list[dict[str, str]]:
    """``n`` MNLI training examples (fixture rows, cycled) rendered by the evaluation template."""
    from amuro_tasks.loading import load_training_docs
    from amuro_tasks.prompts import render_example

    docs = load_training_docs("mnli_matched", n=None, seed=42)
    return [render_example("nli", fmt, docs[i % len(docs)]) for i in range(n)]


def make_model(shape: str, vocab_size: int, tokenizer, out: Path) -> Path:
    """Save a random model of ``shape`` (fp32) with ``tokenizer`` to ``out``."""
    from transformers import OlmoConfig, OlmoForCausalLM

    torch.manual_seed(0)
    kw = dict(SHAPES[shape])
    config = OlmoConfig(
        vocab_size=vocab_size, max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id, **{"tie_word_embeddings": False, **kw},
    )
    OlmoForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class Timer:
    """A ``TrainerCallback`` timing optimizer steps after a warm-up, and the tokens they saw."""

    def __init__(self, warmup: int) -> None:
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if state.global_step == warmup:
                    timer.t0, timer.tok0 = time.perf_counter(), state.num_input_tokens_seen
                timer.t1, timer.tok1 = time.perf_counter(), state.num_input_tokens_seen
                timer.steps = state.global_step - warmup

        self.callback = _CB()
        self.t0 = self.t1 = 0.0
        self.tok0 = self.tok1 = 0
        self.steps = 0

    @property
    def tokens_per_s(self) -> float:
        return (self.tok1 - self.tok0) / (self.t1 - self.t0)


def flops_per_token(model, mean_len: float) -> float:
    """Training FLOPs per token: 6 x parameters (embeddings excluded, LM head included) plus
    attention scores, 6 x layers x hidden x mean sequence length (causal: half of 12 L H S)."""
    cfg = model.config
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    if cfg.tie_word_embeddings:
        n += model.get_input_embeddings().weight.numel()
    return 6 * n + 6 * cfg.num_hidden_layers * cfg.hidden_size * mean_len


def run_one(kind: str, model_dir: Path, examples, steps: int, warmup: int, gpu: bool,
            work: Path) -> dict:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from amuro_sft import build_sft_config, recipe_from_options
    from amuro_sft.train import _make_trainer_class, pick_attn_implementation

    tok = AutoTokenizer.from_pretrained(model_dir)
    total = steps + warmup
    if kind == "plain":
        args = SFTConfig(output_dir=str(work / kind), max_steps=total,
                         per_device_train_batch_size=8, report_to="none", save_strategy="no",
                         logging_steps=10_000, include_num_input_tokens_seen="non_padding",
                         use_cpu=not gpu, bf16=gpu, disable_tqdm=True, seed=42)
        attn = "sdpa"
    else:
        recipe = recipe_from_options({
            "model_name_or_path": str(model_dir), "task": "mnli", "output_dir": str(work / kind),
            "max_steps": total, "use_cpu": not gpu, "disable_tqdm": True,
            "logging_steps": 10_000, "save_strategy": "no"})
        args = build_sft_config(recipe, work / kind, processes=1)
        attn = pick_attn_implementation(recipe)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation=attn)
    timer = Timer(warmup)
    trainer_cls = SFTTrainer if kind == "plain" else _make_trainer_class()
    trainer = trainer_cls(model=model, args=args,
                                    train_dataset=datasets.Dataset.from_list(examples),
                                    processing_class=tok, callbacks=[timer.callback])
    lengths = [len(r["input_ids"]) for r in trainer.train_dataset]
    out = trainer.train()
    mean_len = sum(lengths) / len(lengths)
    res = {
        "config": kind, "attn": attn, "bf16": bool(args.bf16),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "padding_free": bool(args.padding_free),
        "optim": getattr(args.optim, "value", str(args.optim)),
        "timed_steps": timer.steps, "tokens_per_s": timer.tokens_per_s,
        "mean_seq_len": mean_len, "train_loss": out.training_loss,
    }
    if gpu:
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        res["device"] = name
        res["mfu"] = (flops_per_token(model, mean_len) * timer.tokens_per_s / peak
                      if peak else None)
    del trainer, model
    if gpu:
        torch.cuda.empty_cache()
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default=None,
                   help="model shape (default: olmo1b on GPU, tiny on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved plain/tuned rounds; medians are reported (default 3 on CPU, "
                        "1 on GPU)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU only: torch threads (1 keeps a shared machine's noise down)")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    gpu = torch.cuda.is_available() and not a.cpu
    shape = a.shape or ("olmo1b" if gpu else "tiny")
    steps = a.steps or (40 if gpu else 30)
    repeats = a.repeats or (1 if gpu else 3)
    if not gpu:
        torch.set_num_threads(a.threads)

    from amuro_tasks.tiny_model import build_tokenizer, fixture_corpus

    tok = build_tokenizer(fixture_corpus(), vocab_size=512)
    vocab = 50304 if shape == "olmo1b" else len(tok)
    examples = make_examples(8 * (steps + a.warmup))
    rounds: dict[str, list[dict]] = {"plain": [], "tuned": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = make_model(shape, vocab, tok, work / "model")
        for _ in range(repeats):
            for kind in ("plain", "tuned"):
                rounds[kind].append(run_one(kind, model_dir, examples, steps, a.warmup, gpu, work))
    results = []
    for runs in rounds.values():
        ranked = sorted(runs, key=lambda r: r["tokens_per_s"])
        median = dict(ranked[len(ranked) // 2])
        median["tokens_per_s_all"] = [round(r["tokens_per_s"], 1) for r in runs]
        results.append(median)
    plain, tuned = results
    ratio = tuned["tokens_per_s"] / plain["tokens_per_s"]
    device = torch.cuda.get_device_name(0) if gpu else f"CPU ({os.cpu_count()} cores)"
    print(f"SFT throughput, {shape} model, MNLI examples, {steps} timed steps x 8 examples, "
          f"{device}, torch {torch.__version__}, median of {repeats} interleaved rounds"
          + ("" if gpu else f", {torch.get_num_threads()} thread(s)"))
    print(f"{'config':8} {'tokens/s':>12} {'MFU':>7} {'loss':>8}  settings")
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        print(f"{r['config']:8} {r['tokens_per_s']:12.1f} {mfu:>7} {r['train_loss']:8.4f}  "
              f"attn={r['attn']} bf16={r['bf16']} grad_ckpt={r['gradient_checkpointing']} "
              f"padding_free={r['padding_free']} optim={r['optim']} "
              f"rounds={r['tokens_per_s_all']}")
    print(f"ratio tuned/plain tokens/s: {ratio:.2f}x")
    if a.json:
        a.json.write_text(json.dumps({"shape": shape, "device": device, "steps": steps,
                                      "repeats": repeats, "results": results, "ratio": ratio},
                                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
