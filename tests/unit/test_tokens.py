"""Unit tests for routecore.routing.tokens."""

from __future__ import annotations

import pytest

from routecore.domain import Message
from routecore.errors import InvalidRequest
from routecore.routing.tokens import count_chat_tokens, count_tokens


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


# cl100k_base counts (tiktoken) of catalogue-style sentences.
@pytest.mark.parametrize(
    ("text", "real"),
    [
        ("Impossible de créer le répertoire de sauvegarde : vérifiez les permissions.", 19),
        ("No se pudo abrir el archivo de configuración; compruebe la ruta especificada.", 18),
        ("Die Datei konnte nicht gelesen werden, überprüfen Sie die Rechte des Ordners.", 20),
    ],
)
def test_accented_latin_sentences_are_close_to_bpe(text: str, real: int) -> None:
    """French, Spanish and German sentences land within 25% of cl100k's count."""
    assert abs(count_tokens(text) - real) <= 0.25 * real


def test_accented_text_rule() -> None:
    """Accented text costs more per long word; a stray accent in English prose does not."""
    from routecore._fast import _constants as K

    english = "Please summarize the following document and highlight important findings. " * 8
    # One accented letter in ~500 Latin letters: below the threshold, costs only its letter.
    stray = english + "café"
    assert count_tokens(stray) - count_tokens(english + "cafe") <= 2
    # Dense accents (well above ACCENTED_TEXT_PERMILLE): every word past the knee pays more.
    dense = "Veuillez vérifier les paramètres avant de réessayer cette opération demandée. " * 8
    plain = "Veuillez verifier les parametres avant de reessayer cette operation demandee. " * 8
    acc = sum(ord(c) > 127 for c in dense)
    extra_acc = acc * K.ACC_MILLI / 1000
    assert count_tokens(dense) - count_tokens(plain) > extra_acc + 1
