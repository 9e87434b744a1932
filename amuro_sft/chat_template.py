"""A chat template for base checkpoints that ship none (OLMo-1B, Pythia): the TULU-2 format.

Role markers are plain text (``<|user|>``, ``<|assistant|>``, ``<|system|>``), so no token is added
to the vocabulary: a base model would start with untrained embeddings for new special tokens.
Every assistant turn ends with the tokenizer's EOS token, which is how the model learns to stop.
The assistant content *and* its EOS sit inside ``{% generation %}`` markers, so TRL's
``assistant_only_loss`` trains on exactly those tokens (``return_assistant_tokens_mask``).

The template is saved with the tokenizer, so an instruction-tuned output directory can be
evaluated with ``lm_eval --apply_chat_template``.
"""

from __future__ import annotations

TULU_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""TULU-2's conversation format, with generation markers around each assistant reply + EOS."""

ROLES = ("system", "user", "assistant")


def ensure_chat_template(tokenizer, *, override: bool = True) -> bool:
    """Install :data:`TULU_CHAT_TEMPLATE` on ``tokenizer``; return whether it was installed.

    With ``override=False`` a template the checkpoint already has is kept; it then must carry
    ``{% generation %}`` markers for the assistant-only loss (TRL checks this).
    """
    if tokenizer.chat_template and not override:
        return False
    tokenizer.chat_template = TULU_CHAT_TEMPLATE
    return True
