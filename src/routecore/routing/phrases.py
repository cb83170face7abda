"""Whole-word, case-insensitive phrase counting for the rule-based classifier.

A *word* is what the feature extractor (routecore.routing.features) calls a word: a
maximal run of word characters (``str.isalnum()`` or ``"_"``), except that
every Han or kana character is a word of its own. Everything else separates
words: spaces, punctuation, hyphens, apostrophes. So

- matching is whole-word: the phrase ``"pyth"`` does not match ``"python"``;
- hyphens and punctuation split words on both sides: the text ``"Step-by-step"``
  is the three words ``step by step`` and matches the phrase ``"step by step"``
  (and the phrase ``"step-by-step"`` is the same three words, so it matches
  ``"step by step"`` too); the phrase ``"tl;dr"`` is the two words ``tl dr``
  and matches ``"TL;DR"``, ``"tl dr"`` and ``"tl-dr"``;
- case-insensitive by a fixed lower-casing table (ASCII, Latin-1, Greek and
  Cyrillic basic letters; ``"Ü"`` matches ``"ü"``), the one the features use.

A phrase has 1 to MAX_PHRASE_WORDS words. Each occurrence counts, overlapping
ones too (``"a a a"`` holds the phrase ``"a a"`` twice). Phrases are matched
by a 64-bit hash of their words (routecore._fast.phrase_hash); two different
phrases collide with negligible probability (about 2**-64 per pair).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore._fast._constants import PHRASE_MAX_WORDS
from routecore.errors import InvalidRequest

__all__ = ["MAX_PHRASE_WORDS", "PhraseMatcher"]

MAX_PHRASE_WORDS = PHRASE_MAX_WORDS


class PhraseMatcher:
    """Counts occurrences of a fixed list of phrases in texts (immutable, thread-safe)."""

    __slots__ = ("_n", "_n_max", "_phrases", "_slot", "_slots", "_table")

    def __init__(self, phrases: Sequence[str]) -> None:
        """Raises InvalidRequest naming the phrase unless every phrase has 1..4 words.

        Duplicate phrases (or phrases with the same words, like "tl;dr" and
        "TL DR") are allowed; each gets the same count.
        """
        if isinstance(phrases, str):
            raise InvalidRequest("phrases must be a sequence of str, not a str")
        hashes: list[int] = []
        for i, p in enumerate(phrases):
            if not isinstance(p, str):
                raise InvalidRequest(f"phrase {i} must be a str, got {type(p).__name__}")
            try:
                hashes.append(_fast.phrase_hash(p))
            except ValueError:
                raise InvalidRequest(
                    f"phrase {i} ({p!r}) must have 1 to {MAX_PHRASE_WORDS} words "
                    "(runs of letters, digits or '_')"
                ) from None
        self._phrases = tuple(phrases)
        self._n = len(hashes)
        table, slot = np.unique(np.array(hashes, dtype=np.uint64), return_inverse=True)
        self._table: npt.NDArray[np.uint64] = np.ascontiguousarray(table, dtype=np.uint64)
        # table slot of each input phrase; None when the table is in input order.
        s = slot.reshape(-1).astype(np.intp)
        self._slots = s
        self._slot: npt.NDArray[np.intp] | None = None if np.array_equal(s, np.arange(self._n)) else s
        self._n_max = max((len(_fast._pure.word_hashes(p)) for p in self._phrases), default=1)

    @property
    def phrases(self) -> tuple[str, ...]:
        """The phrases, in input order."""
        return self._phrases

    def __len__(self) -> int:
        return self._n

    @property
    def slots(self) -> npt.NDArray[np.intp]:
        """The hash-table slot of each input phrase (phrases with the same words share
        one), for callers that aggregate `slot_hits` themselves."""
        return self._slots

    @property
    def n_slots(self) -> int:
        return len(self._table)

    def slot_hits(self, text: str) -> npt.NDArray[np.int32]:
        """Occurrences per table slot (int32[n_slots]): `counts` before it is spread
        back to input order, for hot paths that weight slots directly."""
        hits: npt.NDArray[np.int32] = _fast.phrase_hits(text, self._table, self._n_max)
        return hits

    def counts(self, text: str) -> npt.NDArray[np.int32]:
        """Occurrences of each phrase in text: int32[len(self)], in input order."""
        if not isinstance(text, str):
            raise InvalidRequest(f"text must be a str, got {type(text).__name__}")
        hits: npt.NDArray[np.int32] = _fast.phrase_hits(text, self._table, self._n_max)
        if self._slot is None:
            return hits
        return hits.take(self._slot)
