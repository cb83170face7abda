"""Extractive prompt compression: the twin of compress.pyx (keep the two in step).

Three steps, each a function both twins compute alike:

1. `split_chunks(text, max_chars)` cuts context into chunks that cover it end
   to end, as int64 rows (start, end, kind). Whitespace stays with the chunk it
   follows, so joining kept chunks in order reads naturally.
   - A line whose first non-blank characters are three backticks opens a code
     block; it runs to the end of the next such line (or of the text): one
     chunk of kind CODE, never split, never dropped by the policy.
   - Everything else is prose (kind PROSE), in paragraphs: runs of non-blank
     lines with the blank lines after them. A paragraph of at most max_chars is
     one chunk (a few-shot example stays whole); a longer one is cut into
     sentences: after a newline, after `.`, `!` or `?` (closing quotes and
     brackets included) followed by whitespace, unless the next word starts
     with a-z ("e.g. the"), and after the ideographic full stop and the
     fullwidth `!` and `?` (U+3002, U+FF01, U+FF1F).
   - A piece still longer than max_chars is cut after its last whitespace
     within max_chars (or at max_chars when there is none).
   Whitespace here is ASCII: space, tab, LF, VT, FF, CR.
2. `chunk_stats(table, text, spans, query, max_tokens)`: per chunk, the token
   estimate (count_tokens) and the cosine of its static embedding with the
   query's (0 for code).
3. `select_chunks(scores, tokens, protected, budget)`: protected chunks are
   kept and their tokens spent first; then by score, highest first (ties: the
   earlier chunk), each chunk that still fits the budget is kept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .embed import EmbedTable, embed
from .tokens import count_tokens

PROSE, CODE = 0, 1
_WS = frozenset(" \t\n\r\x0b\x0c")
_CLOSERS = frozenset(")]\"'\u201d\u2019")
_ENDERS = frozenset(".!?")
_CJK_ENDERS = frozenset("\u3002\uff01\uff1f")

I64 = npt.NDArray[np.int64]


def _skip_ws(text: str, k: int, b: int) -> int:
    while k < b and text[k] in _WS:
        k += 1
    return k


def _line_end(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j + 1


def _is_fence(text: str, i: int) -> bool:
    k = i
    while k < len(text) and text[k] in " \t":
        k += 1
    return text.startswith("```", k)


def _piece(s: int, e: int, text: str, max_chars: int, out: list[tuple[int, int, int]]) -> None:
    while e - s > max_chars:
        cut = -1
        w = s + max_chars - 1
        while w > s:
            if text[w] in _WS:
                cut = w
                break
            w -= 1
        cut = s + max_chars if cut < 0 else _skip_ws(text, cut, e)
        out.append((s, cut, PROSE))
        s = cut
    if s < e:
        out.append((s, e, PROSE))


def _sentences(text: str, a: int, b: int, max_chars: int,
               out: list[tuple[int, int, int]]) -> None:
    start = k = a
    while k < b:
        c = text[k]
        e = -1
        if c == "\n":
            e = _skip_ws(text, k + 1, b)
        elif c in _ENDERS or c in _CJK_ENDERS:
            j = k + 1
            while j < b and text[j] in _CLOSERS:
                j += 1
            if c in _CJK_ENDERS or j == b:
                e = _skip_ws(text, j, b)
            elif text[j] in _WS:
                e = _skip_ws(text, j, b)
                if e < b and "a" <= text[e] <= "z":
                    e = -1  # "e.g. the": an abbreviation, not a sentence end
        if e >= 0:
            _piece(start, e, text, max_chars, out)
            start = k = e
        else:
            k += 1
    if start < b:
        _piece(start, b, text, max_chars, out)


def _flush(text: str, a: int, b: int, max_chars: int, out: list[tuple[int, int, int]]) -> None:
    if b - a <= max_chars:
        out.append((a, b, PROSE))
    else:
        _sentences(text, a, b, max_chars, out)


def split_chunks(text: str, max_chars: int) -> I64:
    """int64[n, 3]: (start, end, kind) of each chunk, covering text in order."""
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    out: list[tuple[int, int, int]] = []
    n = len(text)
    i, para = 0, -1
    has_content = closed = False
    while i < n:
        j = _line_end(text, i)
        if _is_fence(text, i):
            if para >= 0:
                _flush(text, para, i, max_chars, out)
                para = -1
            end, k = n, j
            while k < n:
                m = _line_end(text, k)
                if _is_fence(text, k):
                    end = m
                    break
                k = m
            out.append((i, end, CODE))
            i = end
            continue
        if para < 0:
            para, has_content, closed = i, False, False
        if all(ch in _WS for ch in text[i:j]):
            closed = closed or has_content
        else:
            if closed:
                _flush(text, para, i, max_chars, out)
                para, closed = i, False
            has_content = True
        i = j
    if para >= 0:
        _flush(text, para, n, max_chars, out)
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def _spans(spans: npt.ArrayLike, n: int) -> I64:
    s = np.ascontiguousarray(spans, dtype=np.int64)
    if s.ndim != 2 or s.shape[1] != 3:
        raise ValueError("spans must have shape (n, 3)")
    if s.shape[0] and (s[:, 0].min() < 0 or (s[:, 1] < s[:, 0]).any() or s[:, 1].max() > n):
        raise ValueError("spans must lie within the text")
    return s


def chunk_stats(table: EmbedTable, text: str, spans: npt.ArrayLike, query: npt.ArrayLike,
                max_tokens: int) -> tuple[npt.NDArray[np.float32], I64]:
    """(float32 cosine with `query` per chunk (0 for code), int64 token estimate per chunk)."""
    if not isinstance(table, EmbedTable):
        raise TypeError("table must be a routecore._fast._pure.embed.EmbedTable")
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    q = np.ascontiguousarray(query, dtype=np.float32)
    if q.shape != (table.dim,):
        raise ValueError("query must have one value per embedding dimension")
    s = _spans(spans, len(text))
    q64 = q.astype(np.float64)
    scores = np.zeros(s.shape[0], dtype=np.float32)
    tokens = np.zeros(s.shape[0], dtype=np.int64)
    for r, (a, b, kind) in enumerate(s.tolist()):
        sub = text[a:b]
        tokens[r] = count_tokens(sub)
        if kind == PROSE:
            v = embed(table, sub, max_tokens).astype(np.float64)
            scores[r] = float(v @ q64)
    return scores, tokens


def select_chunks(scores: npt.ArrayLike, tokens: npt.ArrayLike, protected: npt.ArrayLike,
                  budget: int) -> npt.NDArray[np.uint8]:
    """uint8[n]: 1 for each chunk kept (see the module docstring)."""
    sc = np.ascontiguousarray(scores, dtype=np.float64)
    tk = np.ascontiguousarray(tokens, dtype=np.int64)
    pr = np.ascontiguousarray(protected, dtype=np.uint8)
    if sc.ndim != 1 or tk.shape != sc.shape or pr.shape != sc.shape:
        raise ValueError("scores, tokens and protected must be 1-D of one length")
    keep = np.zeros(sc.shape[0], dtype=np.uint8)
    left = int(budget)
    for i in range(sc.shape[0]):
        if pr[i]:
            keep[i] = 1
            left -= int(tk[i])
    for i in np.argsort(-sc, kind="stable").tolist():
        if not pr[i] and int(tk[i]) <= left:
            keep[i] = 1
            left -= int(tk[i])
    return keep
