"""Unit tests for routecore.routing.phrases."""

from __future__ import annotations

import pytest

from routecore import _fast
from routecore.errors import InvalidRequest
from routecore.routing.phrases import MAX_PHRASE_WORDS, PhraseMatcher


def _counts(phrases: list[str], text: str) -> dict[str, int]:
    m = PhraseMatcher(phrases)
    return dict(zip(phrases, m.counts(text).tolist(), strict=True))


def test_whole_words_and_multiword() -> None:
    """ "python" and "python function" match, the word fragment "pyth" does not."""
    got = _counts(["python", "python function", "pyth", "function"], "write a python function")
    assert got == {"python": 1, "python function": 1, "pyth": 0, "function": 1}


def test_case_and_punctuation_insensitive() -> None:
    """Case folds; hyphens and punctuation separate words on both sides."""
    phrases = ["step by step", "stack trace", "how are you", "tl;dr", "in french", "step-by-step"]
    text = "Step-by-step: read the Stack  Trace.\nHOW ARE YOU? TL;DR answer IN French!"
    assert _counts(phrases, text) == dict.fromkeys(phrases, 1)
    # "tl;dr" is the two words "tl dr": any separator between them matches.
    assert _counts(["tl;dr"], "tl dr, tl-dr, tl_dr, tldr") == {"tl;dr": 2}
    assert _counts(["über", "ΣΟΦΙΑ"], "ÜBER σοφια") == {"über": 1, "ΣΟΦΙΑ": 1}


def test_counts_every_occurrence_in_input_order() -> None:
    """Overlapping occurrences count; duplicates and same-word phrases share counts."""
    m = PhraseMatcher(["a a", "b", "A A", "zzz", "b"])
    assert len(m) == 5
    assert m.counts("a a a, b").tolist() == [2, 1, 2, 0, 1]
    assert m.counts("").tolist() == [0, 0, 0, 0, 0]
    assert m.counts("b").dtype.name == "int32"


def test_cjk_characters_are_words() -> None:
    """Every Han or kana character is a word, as in the features tokeniser."""
    assert _counts(["中文", "文", "中"], "请用中文回答") == {"中文": 1, "文": 1, "中": 1}


def test_validation_names_the_phrase() -> None:
    """Empty, wordless, too long or non-str phrases raise InvalidRequest naming it."""
    for bad in ["", "  ", "?!", "one two three four five"]:
        with pytest.raises(InvalidRequest, match="must have 1 to"):
            PhraseMatcher(["ok", bad])
    assert MAX_PHRASE_WORDS == 4
    PhraseMatcher(["one two three four"])
    with pytest.raises(InvalidRequest):
        PhraseMatcher([1])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest):
        PhraseMatcher("python")
    with pytest.raises(InvalidRequest):
        PhraseMatcher(["x"]).counts(b"x")  # type: ignore[arg-type]
    assert len(PhraseMatcher([])) == 0
    assert PhraseMatcher([]).counts("anything").tolist() == []


def test_core_errors() -> None:
    """The core rejects a bad n_max, an unsorted table and over-long phrases."""
    h = [_fast.phrase_hash("a"), _fast.phrase_hash("b")]
    for fn in (_fast.phrase_hitsPy, *([_fast.phrase_hitsC] if _fast.HAVE_EXTENSIONS else [])):
        with pytest.raises(ValueError):
            fn("a b", sorted(h), 0)
        with pytest.raises(ValueError):
            fn("a b", sorted(h), MAX_PHRASE_WORDS + 1)
        with pytest.raises(ValueError):
            fn("a b", sorted(h, reverse=True), 1)
        assert fn("a b a", sorted(h), 1).tolist() == [
            2 if sorted(h)[0] == h[0] else 1,
            1 if sorted(h)[0] == h[0] else 2,
        ]
    with pytest.raises(ValueError):
        _fast.phrase_hash("a b c d e")
