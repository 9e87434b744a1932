"""The paper's classification scoring: the label whose *first sub-token* has the highest logit.

lm-eval's ``multiple_choice`` compares the log-likelihood of each whole label. The paper instead
takes the next-token logits after the prompt and picks the label whose first sub-token scores
highest. Both share one softmax denominator, so ranking labels by the log-probability of their
first sub-token is exactly ranking by its logit: we get the paper's scoring from lm-eval's own
machinery by replacing each choice with the text of its first sub-token. Enable it with
``--metadata '{"amuro_scoring": "first_token"}'``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from amuro_tasks.errors import AmuroConfigError
from amuro_tasks.prompts import TARGET_DELIMITER

SCORING_MODES = ("choice", "first_token")


_STUB = "Answer:"
"""A context to tokenize labels after, as lm-eval does (it encodes context + continuation and
splits): tokenizing ``" yes"`` alone gives SentencePiece tokenizers a spurious ``"▁"`` piece."""


def _continuation_ids(tokenizer: Any, continuation: str) -> list[int]:
    stub = tokenizer(_STUB, add_special_tokens=False)["input_ids"]
    whole = tokenizer(_STUB + continuation, add_special_tokens=False)["input_ids"]
    if whole[: len(stub)] != stub:
        raise AmuroConfigError(
            f"first_token scoring: the tokenizer merges {continuation!r} into the prompt's last "
            "token; use the default 'choice' scoring"
        )
    return whole[len(stub):]


def first_token_choices(choices: Sequence[str], tokenizer: Any) -> list[str]:
    """Each choice cut to the text of its first sub-token (as it follows the delimiter)."""
    out: list[str] = []
    for word in choices:
        ids = _continuation_ids(tokenizer, TARGET_DELIMITER + word)
        if not ids:
            raise AmuroConfigError(f"label {word!r} tokenizes to nothing")
        piece = tokenizer.decode(ids[:1])
        piece = piece[len(TARGET_DELIMITER):] if piece.startswith(TARGET_DELIMITER) else piece
        again = _continuation_ids(tokenizer, TARGET_DELIMITER + piece)
        if again != ids[:1]:
            raise AmuroConfigError(
                f"first_token scoring: the first sub-token of {word!r} ({piece!r}, id {ids[0]}) "
                f"does not re-tokenize to itself ({again}); use the default 'choice' scoring"
            )
        out.append(piece)
    if len(set(out)) != len(out):
        raise AmuroConfigError(
            f"first_token scoring: labels {list(choices)} share a first sub-token ({out}); "
            "they cannot be told apart, use the default 'choice' scoring"
        )
    return out


@lru_cache(maxsize=8)
def load_tokenizer(name: str, revision: str | None, trust_remote_code: bool) -> Any:
    """The tokenizer of the model being evaluated (``trust_remote_code`` only when asked)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        name, revision=revision, trust_remote_code=trust_remote_code
    )


def tokenizer_from_metadata(metadata: Mapping[str, Any]) -> Any:
    """The tokenizer named by lm-eval's model_args/metadata (``tokenizer`` or ``pretrained``)."""
    name = metadata.get("tokenizer") or metadata.get("pretrained")
    if not isinstance(name, str):
        raise AmuroConfigError(
            "amuro_scoring=first_token needs the model's tokenizer: pass a model path with "
            "--model_args pretrained=... or add \"tokenizer\": \"<path or hub id>\" to --metadata"
        )
    trust = str(metadata.get("trust_remote_code", False)).lower() == "true"
    return load_tokenizer(name, metadata.get("revision"), trust)
