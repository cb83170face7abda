"""Static sentence embedding: the twin of embed.pyx (keep the two in step).

A text becomes WordPiece token ids of a BERT-style vocabulary (the one the
shipped vectors were distilled with), and its embedding is the L2-normalised
mean of those tokens' vectors (a zero vector when no token is known).

Tokenizing, as the BERT tokenizer does it (uncased):
1. A text that is not pure ASCII first goes through `normalize_unicode`
   (both twins call this one function: the Unicode tables are the
   interpreter's): control and format characters and U+FFFD dropped,
   whitespace to a space, CJK ideographs and non-ASCII punctuation set apart
   by spaces, NFD with combining diacritical marks removed, lower-cased.
2. The ASCII walk: tab, newline, carriage return and space separate words;
   other ASCII control characters are dropped; each ASCII punctuation
   character is a word of its own; A-Z are lower-cased; every other code
   point belongs to the word.
3. Each word of at most WORDPIECE_MAX_CHARS code points is split greedily,
   longest vocabulary piece first, continuation pieces spelt "##piece"; a
   word with no complete split (or a longer word) contributes no token, as
   model2vec drops the unknown token.
4. Only the first `max_tokens` ids count.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

WORDPIECE_MAX_CHARS = 100
CONTINUATION = "##"
# Combining diacritical marks (the accents BERT's strip_accents removes after NFD).
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
# CJK ideographs (BERT's _is_chinese_char): each one a word of its own.
_CJK = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
        "\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f")
_ASCII_PUNCT = frozenset(range(33, 48)) | frozenset(range(58, 65)) | frozenset(
    range(91, 97)) | frozenset(range(123, 127))
# The ASCII walk in two regex passes: drop controls and lower-case A-Z, then
# words are runs of anything but separators and ASCII punctuation.
_ASCII_TABLE = {**{c: None for c in range(32) if c not in (9, 10, 13)}, 127: None,
                **{c: c + 32 for c in range(65, 91)}}
_WORDS = re.compile(r"[^\t\n\r !-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def _class(cps: list[int]) -> str:
    """A regex character class body for sorted code points, as ranges."""
    out, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        out.append(f"{re.escape(chr(cps[i]))}-{re.escape(chr(cps[j]))}")
        i = j + 1
    return "".join(out)


@functools.cache
def _unicode_rules() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    # Built once, on first use (one scan of the BMP, ~40 ms; the embedder's loader
    # calls it at router construction): never at import.
    drop: list[int] = []
    space: list[int] = []
    punct: list[int] = []
    category = unicodedata.category
    for cp in range(0x10000):
        ch = chr(cp)
        cat = category(ch)
        if cat[0] == "C" or cp == 0xFFFD:
            if ch not in "\t\n\r":
                drop.append(cp)
        elif ch.isspace():
            if ch != " ":  # the ASCII space maps to itself: fewer matches, cheaper sub
                space.append(cp)
        elif cat[0] == "P" and cp > 127:
            punct.append(cp)
    # Astral code points of category C (unassigned, private use) are dropped too.
    return (re.compile(f"[{_class(drop)}\U000e0000-\U0010ffff]"),
            re.compile(f"[\t\n\r{_class(space)}]"),
            re.compile(f"([{_class(punct)}{_CJK}])"), re.compile(f"[{_MARKS}]"))


def normalize_unicode(text: str) -> str:
    """Step 1 above, for a text that is not pure ASCII."""
    drop, space, apart, marks = _unicode_rules()
    # split with a capturing group keeps the separators: joining with spaces sets
    # them apart (about 2x faster than sub with a template).
    text = " ".join(apart.split(space.sub(" ", drop.sub("", text))))
    return marks.sub("", unicodedata.normalize("NFD", text)).lower()


class EmbedTable:
    """A vocabulary (token strings in id order) and its vectors (float32[V, d])."""

    __slots__ = ("dim", "max_piece", "n_tokens", "vectors", "vocab")

    def __init__(self, tokens: Sequence[str], vectors: npt.ArrayLike) -> None:
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(tokens) or vecs.shape[1] < 1:
            raise ValueError("vectors must have shape (len(tokens), dim) with dim >= 1")
        vocab: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str) or not tok or tok == CONTINUATION:
                raise ValueError(f"token {i} must be a non-empty str other than '##'")
            if tok in vocab:
                raise ValueError(f"token {i} ({tok!r}) is a duplicate")
            vocab[tok] = i
        self.vocab = vocab
        self.vectors = vecs
        self.n_tokens, self.dim = vecs.shape
        pieces = (len(t) - 2 if t.startswith(CONTINUATION) else len(t) for t in tokens)
        self.max_piece = min(WORDPIECE_MAX_CHARS, max(pieces, default=1))


def _wordpiece(word: str, vocab: dict[str, int], max_piece: int) -> list[int]:
    if len(word) > WORDPIECE_MAX_CHARS:
        return []
    ids: list[int] = []
    start = 0
    while start < len(word):
        end = min(len(word), start + max_piece)
        while end > start:
            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            tid = vocab.get(piece)
            if tid is not None:
                ids.append(tid)
                break
            end -= 1
        else:
            return []
        start = end
    return ids


def _check(table: object, max_tokens: int) -> EmbedTable:
    if not isinstance(table, EmbedTable):
        raise TypeError("table must be a routecore._fast._pure.embed.EmbedTable")
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    return table


def embed_ids(table: EmbedTable, text: str, max_tokens: int) -> npt.NDArray[np.int32]:
    """The first max_tokens known token ids of text, int32."""
    t = _check(table, max_tokens)
    if not text.isascii():
        text = normalize_unicode(text)
    ids: list[int] = []
    for word in _WORDS.findall(text.translate(_ASCII_TABLE)):
        ids.extend(_wordpiece(word, t.vocab, t.max_piece))
        if len(ids) >= max_tokens:
            del ids[max_tokens:]
            break
    return np.array(ids, dtype=np.int32)


def embed(table: EmbedTable, text: str, max_tokens: int) -> npt.NDArray[np.float32]:
    """float32[dim]: the L2-normalised mean of the token vectors (zeros if none)."""
    ids = embed_ids(table, text, max_tokens)
    if ids.shape[0] == 0:
        return np.zeros(table.dim, dtype=np.float32)
    v = table.vectors[ids].astype(np.float64).sum(axis=0) / ids.shape[0]
    norm = float(np.sqrt(v @ v))
    out: npt.NDArray[np.float32] = (v / norm if norm > 0 else v).astype(np.float32)
    return out


