"""Build a tiny causal LM and its tokenizer locally: no hub, seconds on a CPU.

The one helper that tests, benchmarks and the offline demo share. The tokenizer is a byte-level
BPE trained with ``tokenizers`` on the fixture texts (or a corpus you pass); the model is an
OLMo-architecture (``OlmoConfig``) network with random weights, saved in the ordinary
``save_pretrained`` layout so ``lm_eval --model hf --model_args pretrained=DIR`` and TRL load it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from amuro_tasks.loading import FIXTURE_DIR

SPECIAL_TOKENS = {"eos": "<|endoftext|>", "pad": "<|padding|>"}


def fixture_corpus(root: Path = FIXTURE_DIR) -> Iterator[str]:
    """The texts a tiny tokenizer (and the demo's pre-training) learn from.

    Every string value of every fixture row, then every fixture *training* row rendered in each
    prompt format with its completion, so label words appear as they follow a prompt.
    """
    yield from _raw_strings(root)
    yield from _rendered_training_examples()


def _rendered_training_examples() -> Iterator[str]:
    from amuro_tasks.loading import load_training_docs
    from amuro_tasks.prompts import FORMATS, render_example
    from amuro_tasks.specs import SPECS

    for spec in SPECS.values():
        if spec.fewshot_split != "train":
            continue
        for doc in load_training_docs(spec.name, n=None, source="fixtures", on_invalid="skip"):
            for fmt in FORMATS:
                example = render_example(spec.family, fmt, doc)
                yield example["prompt"] + example["completion"]


def _raw_strings(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            for value in json.loads(line).values():
                if isinstance(value, str):
                    yield value
                elif isinstance(value, list):
                    yield from (v for v in value if isinstance(v, str))


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=SPECIAL_TOKENS["eos"],
        bos_token=SPECIAL_TOKENS["eos"],  # OLMo uses EOS as BOS
        pad_token=SPECIAL_TOKENS["pad"],
        model_max_length=2048,
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    model_vocab_size: int | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised OLMo-architecture LM and its tokenizer to ``out_dir``.

    Defaults give a ~0.1M-parameter model that runs anywhere in seconds. Larger shapes (for
    speed benchmarks) set the sizes; ``model_vocab_size`` pads the embedding beyond the tiny
    tokenizer's vocabulary so the output layer has a real model's width.
    """
    import torch
    from transformers import OlmoConfig, OlmoForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer(corpus if corpus is not None else fixture_corpus(), vocab_size)
    torch.manual_seed(seed)
    config = OlmoConfig(
        vocab_size=max(len(tokenizer), model_vocab_size or 0),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = OlmoForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
