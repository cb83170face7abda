"""Unit tests for routecore.tokens."""

from __future__ import annotations

import pytest

from routecore.domain import Message
from routecore.errors import InvalidRequest
from routecore.tokens import count_chat_tokens, count_tokens


def test_empty_text_has_no_tokens() -> None:
    """The empty string counts as zero tokens and any other text as at least one."""
    assert count_tokens("") == 0
    assert count_tokens(".") >= 1


def test_english_sentence_is_close_to_bpe() -> None:
    """A plain English sentence lands within a token or two of cl100k's count (10)."""
    assert 8 <= count_tokens("The quick brown fox jumps over the lazy dog today.") <= 12


def test_chat_accounting() -> None:
    """A chat costs 3 per message plus role and content, plus 3 for the reply."""
    msgs = [Message("system", "Be brief."), Message("user", "Hi there")]
    want = 3 + sum(3 + count_tokens(m.role) + count_tokens(m.content) for m in msgs)
    assert count_chat_tokens(msgs) == want
    assert count_chat_tokens([]) == 3


def test_rejects_non_str() -> None:
    """Non-str text and non-Message items raise InvalidRequest."""
    with pytest.raises(InvalidRequest):
        count_tokens(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        count_chat_tokens([("user", "hi")])  # type: ignore[list-item]
