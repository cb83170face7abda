"""Token counting: a fast estimate of what an OpenAI BPE model would see.

Not a real BPE: one pass over the text's pre-tokenizer runs (words, digit
groups, punctuation, whitespace; per-script rates for non-Latin text), tuned
against tiktoken's cl100k_base. bench/tokens.py measures the error per kind
of text. Use it for budgets, routing and context-window checks, not billing.
"""

from __future__ import annotations

from collections.abc import Sequence

from routecore import _fast
from routecore.domain import Message
from routecore.errors import InvalidRequest

__all__ = ["count_chat_tokens", "count_tokens"]


def count_tokens(text: str) -> int:
    """Estimated tokens in `text` (0 for the empty string).

    Raises InvalidRequest if `text` is not a str.
    """
    if not isinstance(text, str):
        raise InvalidRequest(f"text must be a str, not {type(text).__name__}")
    return int(_fast.count_tokens(text))


def count_chat_tokens(messages: Sequence[Message]) -> int:
    """Estimated prompt tokens of a chat, with OpenAI's per-message accounting.

    Each message costs 3 tokens plus its role and content; the reply priming
    adds 3. Raises InvalidRequest if an item is not a Message with str fields.
    """
    roles: list[str] = []
    contents: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Message):
            raise InvalidRequest(f"messages[{i}] must be a Message, not {type(m).__name__}")
        if not isinstance(m.role, str) or not isinstance(m.content, str):
            raise InvalidRequest(f"messages[{i}]: role and content must be str")
        roles.append(m.role)
        contents.append(m.content)
    return int(_fast.count_chat_tokens(roles, contents))
