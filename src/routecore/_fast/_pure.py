"""Plain-Python twins of the compiled core (`_core.pyx`).

Every function here computes exactly what its C twin computes (same token
counts, same hashes, features equal within float32 rounding); the parity tests
in tests/parity prove it. The constants live in `_constants.py`, which the C
side mirrors in `constants.pxi`; keep both in step.

Character classes come from the interpreter's Unicode database (str.isalpha,
...), which is the very table the C side reads through Py_UNICODE_ISALPHA,
so both sides agree on any input. Lower-casing, by contrast, is a small fixed
table (ASCII, Latin-1, Greek, Cyrillic) so that hashed features do not change
with the Python version's Unicode tables.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._constants import (
    ACC_MILLI,
    ACCENTED_TEXT_KNEE,
    ACCENTED_TEXT_PERMILLE,
    ACCENTED_TEXT_SLOPE_MILLI,
    CAMEL_MILLI,
    CHAR_SEED,
    CODE_KEYWORDS,
    COL_CAPS,
    COL_CONTEXT,
    COL_DEFAULT_Q,
    COL_MAX_OUTPUT,
    COL_P50,
    COL_PRICE_IN,
    COL_PRICE_OUT,
    COL_TPS,
    DECADE_VALUE,
    DIGIT_GROUP_MILLI,
    FAIL_CAPABILITY,
    FAIL_CONTEXT,
    FAIL_COST,
    FAIL_DENIED,
    FAIL_LATENCY,
    FAIL_MAX_OUTPUT,
    FAIL_NOT_ALLOWED,
    FAIL_OK,
    FAIL_QUALITY,
    FAIL_UNHEALTHY,
    FAMILY_SEEDS,
    FAMILY_WEIGHTS,
    FNV_OFFSET,
    FNV_PRIME,
    IMPERATIVE_WORDS,
    MATH_WORDS,
    N_MODEL_COLS,
    NEWLINE_MILLI,
    NGRAM_MULTS,
    PHRASE_MAX_WORDS,
    PHRASE_MULT,
    PUNCT_CHAR_MILLI,
    PUNCT_RUN_MILLI,
    QUALITY_TOLERANCE,
    SCALAR_NAMES,
    SCORE_COMPLEXITY,
    SCORE_COST,
    SCORE_DOMAIN,
    SCORE_LATENCY,
    SCORE_MULTI,
    SCORE_NONE,
    SCORE_QUALITY,
    SCRIPT_CHAR_MILLI,
    SCRIPT_RUN_MILLI,
    SCRIPT_SYM_MILLI,
    SPACE_MILLI,
    WH_WORDS,
    WORD_BASE_MILLI,
    WORD_KNEES,
    WORD_SLOPES_MILLI,
)

F64 = npt.NDArray[np.float64]

__all__ = [
    "SCALAR_NAMES",
    "combine_categories",
    "count_chat_tokens",
    "count_tokens",
    "extract",
    "features_dense_dot",
    "max_by_label",
    "phrase_hash",
    "phrase_hits",
    "score_models",
    "script_of",
    "top_k",
    "top_k_max_by_label",
]

M64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15

# Character classes used by the token estimator.
C_LETTER, C_NUMBER, C_SPACE, C_NEWLINE, C_OTHER = 0, 1, 2, 3, 4

# Scripts (index into the SCRIPT_* tables).
S_ASCII, S_LATIN, S_HAN, S_KANA, S_HANGUL, S_CJKPUNCT = 0, 1, 10, 9, 8, 11


def script_of(cp: int) -> int:
    """Coarse script of a code point, by block (see constants for the list)."""
    if cp < 0x80:
        return 0
    if cp < 0x250 or 0x1E00 <= cp <= 0x1EFF:
        return 1
    if 0x370 <= cp <= 0x3FF or 0x1F00 <= cp <= 0x1FFF:
        return 2
    if 0x400 <= cp <= 0x52F:
        return 3
    if 0x590 <= cp <= 0x5FF:
        return 4
    if (
        0x600 <= cp <= 0x6FF
        or 0x750 <= cp <= 0x77F
        or 0xFB50 <= cp <= 0xFDFF
        or 0xFE70 <= cp <= 0xFEFF
    ):
        return 5
    if 0x900 <= cp <= 0xDFF:
        return 6
    if 0xE00 <= cp <= 0xEFF:
        return 7
    if 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F or 0xAC00 <= cp <= 0xD7AF:
        return 8
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF65 <= cp <= 0xFF9F:
        return 9
    if (
        0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
    ):
        return 10
    if 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFF64:
        return 11
    if cp >= 0x10000:
        return 12
    return 13


def _cls(c: str) -> int:
    if c.isalpha():
        return C_LETTER
    if c.isnumeric():
        return C_NUMBER
    if c == "\n" or c == "\r":
        return C_NEWLINE
    if c.isspace():
        return C_SPACE
    return C_OTHER


def count_tokens(text: str) -> int:
    """Estimate BPE tokens by walking the pre-tokenizer's runs once."""
    n = len(text)
    if n == 0:
        return 0
    cls = [_cls(c) for c in text]
    milli = 0
    # acc_bal: 1000 * non-ASCII Latin letters - ACCENTED_TEXT_PERMILLE * Latin
    # letters (>= 0 iff the text is accented, or has no Latin word);
    # lat_long: Latin word letters past ACCENTED_TEXT_KNEE.
    acc_bal = lat_long = 0
    i = 0
    while i < n:
        k = cls[i]
        cp = ord(text[i])
        j = i + 1
        if k == C_LETTER:
            s = script_of(cp)
            if s <= S_LATIN:
                acc = 1 if cp >= 0x80 else 0
                camel = 0
                while j < n and cls[j] == C_LETTER and script_of(ord(text[j])) <= S_LATIN:
                    c = text[j]
                    if c.isupper() and text[j - 1].islower():
                        camel += 1
                    if ord(c) >= 0x80:
                        acc += 1
                    j += 1
                length = j - i
                acc_bal += 1000 * acc - ACCENTED_TEXT_PERMILLE * length
                if length > ACCENTED_TEXT_KNEE:
                    lat_long += length - ACCENTED_TEXT_KNEE
                milli += WORD_BASE_MILLI + ACC_MILLI * acc + CAMEL_MILLI * camel
                for q in range(len(WORD_KNEES)):
                    if length > WORD_KNEES[q]:
                        milli += WORD_SLOPES_MILLI[q] * (length - WORD_KNEES[q])
            else:
                while j < n and cls[j] == C_LETTER and script_of(ord(text[j])) == s:
                    j += 1
                milli += SCRIPT_RUN_MILLI[s] + SCRIPT_CHAR_MILLI[s] * (j - i)
        elif k == C_NUMBER:
            while j < n and cls[j] == C_NUMBER:
                j += 1
            milli += DIGIT_GROUP_MILLI * ((j - i + 2) // 3)
        elif k in (C_SPACE, C_NEWLINE):
            last_nl = i if k == C_NEWLINE else -1
            while j < n and (cls[j] == C_SPACE or cls[j] == C_NEWLINE):
                if cls[j] == C_NEWLINE:
                    last_nl = j
                j += 1
            if last_nl >= 0:
                milli += NEWLINE_MILLI
                trail = j - last_nl - 1
            else:
                trail = j - i
            # The last space joins the following word or punctuation, as in
            # cl100k's pre-tokenizer; before digits or at the end it does not.
            if trail > 0:
                absorbed = j < n and cls[j] != C_NUMBER
                if trail > 1 or not absorbed:
                    milli += SPACE_MILLI
        else:
            while j < n and cls[j] == C_OTHER:
                j += 1
            # One punctuation char directly before letters joins the word.
            end = j - 1 if (j < n and cls[j] == C_LETTER) else j
            asc = 0
            for q in range(i, end):
                cq = ord(text[q])
                if cq < 0x80:
                    asc += 1
                else:
                    milli += SCRIPT_SYM_MILLI[script_of(cq)]
            if asc:
                milli += PUNCT_RUN_MILLI + PUNCT_CHAR_MILLI * (asc - 1)
        i = j
    # Accented Latin text (French, German...): every word splits more.
    if acc_bal >= 0:  # lat_long is 0 when there is no Latin word
        milli += ACCENTED_TEXT_SLOPE_MILLI * lat_long
    return max(1, (milli + 500) // 1000)


def count_chat_tokens(roles: Sequence[str], contents: Sequence[str]) -> int:
    """OpenAI chat accounting: 3 per message + role + content, 3 to prime the reply."""
    total = 3
    for role, content in zip(roles, contents, strict=True):
        total += 3 + count_tokens(role) + count_tokens(content)
    return total


# ----------------------------------------------------------------- features


def lower_cp(cp: int) -> int:
    """Fixed lower-casing table: ASCII, Latin-1, Greek, Cyrillic basic blocks."""
    if 0x41 <= cp <= 0x5A:
        return cp + 32
    if cp < 0xC0:
        return cp
    if cp <= 0xDE:
        return cp + 32 if cp != 0xD7 else cp
    if 0x391 <= cp <= 0x3AB and cp != 0x3A2:
        return cp + 32
    if 0x410 <= cp <= 0x42F:
        return cp + 32
    if 0x400 <= cp <= 0x40F:
        return cp + 80
    return cp


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser: spreads FNV's weak low bits."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    x ^= x >> 33
    return x


def fnv_word(word: str) -> int:
    """FNV-1a over code points (one xor-multiply per code point)."""
    h = FNV_OFFSET
    for c in word:
        h = ((h ^ ord(c)) * FNV_PRIME) & M64
    return h


def _kw_table(words: Sequence[str]) -> frozenset[int]:
    return frozenset(fnv_word(w) for w in words)


_CODE_KW = _kw_table(CODE_KEYWORDS)
_MATH_KW = _kw_table(MATH_WORDS)
_IMPER_KW = _kw_table(IMPERATIVE_WORDS)
_WH_KW = _kw_table(WH_WORDS)

_LOG_TABLE = 4096
_LOG1P_TENTHS = [math.log1p(a / 10.0) for a in range(_LOG_TABLE)]
MAX_DIM = 1 << 30


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


_MIX: dict[int, int] = {}


def char_mix(lc: int) -> int:
    """The 64-bit mix of a lower-cased code point (memoised; C keeps a Latin-1 table)."""
    m = _MIX.get(lc)
    if m is None:
        m = _MIX[lc] = fmix64((CHAR_SEED + lc) & M64)
    return m


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _single_char_word(cp: int) -> bool:
    # Han and kana are written without spaces: each char is a "word".
    s = script_of(cp)
    return s in (S_HAN, S_KANA)


def extract(text: str, dim: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Hashed n-gram vector (L2-normalised) and the scalar features, in one walk."""
    if dim < 1 or dim & (dim - 1) or dim > MAX_DIM:
        raise ValueError("dim must be a power of two <= 2**30")
    # Signed sum of family weights (in tenths) per bucket.
    acc = [0] * dim
    mask = dim - 1
    w_tri = FAMILY_WEIGHTS[2]

    def add(family: int, h: int) -> None:
        x = fmix64(h ^ FAMILY_SEEDS[family])
        w = FAMILY_WEIGHTS[family]
        acc[x & mask] += -w if x >> 63 else w

    def add_gram(mult: int, h: int, w: int) -> None:
        x = (h * mult) & M64
        acc[(x >> 32) & mask] += -w if x >> 63 else w

    n = len(text)
    # Char n-grams over the lower-cased text with whitespace runs collapsed.
    m0 = m1 = m2 = 0  # mixes of the last three code points of the collapsed stream
    glen = 0
    prev_space = False
    # Word state.
    wh = FNV_OFFSET
    wlen = 0
    prev_word = -1  # hash of the previous word, -1 = none
    at_sentence_start = True
    # Scalar counters.
    letters = non_ascii_letters = cjk = digits = 0
    lines = 1 if n else 0
    code_m = 0.0
    math_m = 0.0
    imper = 0.0
    wh_starts = 0
    qmarks = 0
    sentences = 0
    words = 0
    ticks = 0
    line_start = True
    indent = 0
    last_nonspace = 0
    last_line_char = 0
    content = False

    def end_word() -> None:
        nonlocal wh, wlen, prev_word, at_sentence_start, code_m, math_m, imper, wh_starts, words
        if wlen == 0:
            return
        add(0, wh)
        if prev_word >= 0:
            add(1, ((prev_word * GOLDEN) + wh) & M64)
        if wh in _CODE_KW:
            code_m += 2.0
        if wh in _MATH_KW:
            math_m += 2.0
        if wh in _IMPER_KW:
            imper += 1.0 if at_sentence_start else 0.25
        if at_sentence_start and wh in _WH_KW:
            wh_starts += 1
        words += 1
        at_sentence_start = False
        prev_word = wh
        wh = FNV_OFFSET
        wlen = 0

    for i in range(n):
        c = text[i]
        cp = ord(c)
        space = c.isspace()
        lc = 0x20 if space else lower_cp(cp)
        # Char n-grams over the collapsed stream.
        if not (space and prev_space):
            m = char_mix(lc)
            glen += 1
            m0, m1, m2 = m1, m2, m
            if glen >= 3:
                add_gram(NGRAM_MULTS[0], _rotl(m0, 42) ^ _rotl(m1, 21) ^ m2, w_tri)
        prev_space = space
        # Words.
        if c.isalnum() or c == "_":
            if _single_char_word(cp):
                end_word()
                wh = ((FNV_OFFSET ^ lc) * FNV_PRIME) & M64
                wlen = 1
                end_word()
            else:
                wh = ((wh ^ lc) * FNV_PRIME) & M64
                wlen += 1
        else:
            end_word()
        # Scalars.
        if c.isalpha():
            letters += 1
            if cp >= 0x80:
                non_ascii_letters += 1
        s = script_of(cp)
        if s in (S_HAN, S_KANA, S_HANGUL):
            cjk += 1
        if c.isdigit():
            digits += 1
            math_m += 0.2
        if cp == 0x0A:
            lines += 1
            if last_line_char in (0x7B, 0x7D, 0x3B):  # { } ;
                code_m += 1.0
            elif last_line_char == 0x3A:  # :
                code_m += 0.5
            line_start = True
            indent = 0
            last_line_char = 0
            at_sentence_start = True
        elif space:
            if line_start:
                indent += 4 if cp == 0x09 else 1
        else:
            if line_start:
                if indent >= 2 and lines > 1:
                    code_m += 1.0
                line_start = False
            last_line_char = cp
            last_nonspace = cp
            if cp == 0x60:  # backtick: three in a row open or close a fence
                ticks += 1
                if ticks == 3:
                    code_m += 4.0
            else:
                ticks = 0
            if cp in (0x7B, 0x7D, 0x3B):
                code_m += 0.5
            elif cp in (0x2B, 0x2D, 0x2A, 0x2F, 0x3D, 0x5E, 0x3C, 0x3E, 0x25):  # + - * / = ^ < > %
                math_m += 0.5
            elif cp == 0x5C or cp == 0x24:  # backslash, $
                math_m += 1.0
            if cp == 0x3F or cp == 0xFF1F:
                qmarks += 1
            if cp in (0x2E, 0x21, 0x3F):  # . ! ? end a sentence before a space
                if i + 1 == n or text[i + 1].isspace():
                    if content:
                        sentences += 1
                        content = False
                    at_sentence_start = True
                else:
                    content = True
            elif cp in (0x3002, 0xFF01, 0xFF1F):  # CJK full stops end one anywhere
                if content:
                    sentences += 1
                    content = False
                at_sentence_start = True
            else:
                content = True
    end_word()
    if content:
        sentences += 1

    # Sublinear transform sign(x) * log1p(|x|) per bucket (x in weight units).
    vec = np.zeros(dim, dtype=np.float64)
    for b in range(dim):
        a = acc[b]
        if a:
            v = _LOG1P_TENTHS[abs(a)] if abs(a) < _LOG_TABLE else math.log1p(abs(a) / 10.0)
            vec[b] = v if a > 0 else -v
    norm = math.sqrt(float(np.dot(vec, vec)))
    if norm > 0.0:
        vec /= norm

    fw = 0.05 * words
    question = 0.5 if last_nonspace in (0x3F, 0xFF1F) else 0.0
    if qmarks:
        question += 0.25
    if wh_starts:
        question += 0.25
    scalars = np.array(
        [
            math.log1p(n),
            math.log1p(count_tokens(text)),
            code_m / (code_m + 4.0 + fw),
            math_m / (math_m + 4.0 + fw),
            question,
            min(1.0, 0.5 * imper),
            non_ascii_letters / letters if letters else 0.0,
            cjk / n if n else 0.0,
            digits / n if n else 0.0,
            math.log1p(lines),
            math.log1p(sentences),
        ],
        dtype=np.float32,
    )
    return vec.astype(np.float32), scalars


def features_dense_dot(
    matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Row-wise dot products, accumulated in float32 in index order like the C loop."""
    return (matrix @ query).astype(np.float32)


def top_k(
    scores: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The k best scores, descending, ties broken by the lower id; NaN ranks last."""
    n = scores.shape[0]
    k = max(0, min(k, n))
    s = np.where(np.isnan(scores), -np.inf, scores).astype(np.float64)
    order = np.lexsort((np.arange(n), -s))[:k]
    return order.astype(np.int64), scores[order].astype(np.float32)


def max_by_label(
    ids: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    n_labels: int,
) -> npt.NDArray[np.float32]:
    """Per-label max similarity over the hits; -1.0 (the cosine floor) where no hit."""
    out = np.full(n_labels, -1.0, dtype=np.float32)
    n = labels.shape[0]
    for i, s in zip(ids.tolist(), sims.tolist(), strict=True):
        if 0 <= i < n:
            lab = int(labels[i])
            if 0 <= lab < n_labels and s > out[lab]:
                out[lab] = s
    return out


def top_k_max_by_label(
    scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int32], n_labels: int, k: int
) -> npt.NDArray[np.float32]:
    """max_by_label(*top_k(scores, k), labels, n_labels): per-label max over the top k."""
    if n_labels < 0:
        raise ValueError("n_labels must be >= 0")
    if labels.shape[0] != scores.shape[0]:
        raise ValueError("scores and labels differ in length")
    ids, sims = top_k(scores, k)
    return max_by_label(ids, sims, labels, n_labels)


# ------------------------------------------------------------------ phrases


def word_hashes(text: str) -> list[int]:
    """FNV-1a hash of each of extract()'s words, in order.

    A word is a run of word characters (str.isalnum() or "_"); every Han or
    kana character is a word of its own; code points are lower-cased by
    lower_cp. Anything else (space, punctuation, "-", ";") separates words.
    """
    out: list[int] = []
    h = FNV_OFFSET
    wlen = 0
    for c in text:
        if c.isalnum() or c == "_":
            cp = ord(c)
            lc = lower_cp(cp)
            if _single_char_word(cp):
                if wlen:
                    out.append(h)
                    h, wlen = FNV_OFFSET, 0
                out.append(((FNV_OFFSET ^ lc) * FNV_PRIME) & M64)
            else:
                h = ((h ^ lc) * FNV_PRIME) & M64
                wlen += 1
        elif wlen:
            out.append(h)
            h, wlen = FNV_OFFSET, 0
    if wlen:
        out.append(h)
    return out


def _phrase_mix(h: int, w: int) -> int:
    return ((h * PHRASE_MULT) & M64) ^ w


def phrase_hash(phrase: str) -> int:
    """Hash of a phrase's words: h1 = H(w1), h(i) = (h(i-1) * PHRASE_MULT) ^ H(wi)."""
    ws = word_hashes(phrase)
    if not ws:
        raise ValueError(f"phrase has no words: {phrase!r}")
    if len(ws) > PHRASE_MAX_WORDS:
        raise ValueError(
            f"phrase has {len(ws)} words, more than {PHRASE_MAX_WORDS}: {phrase!r}"
        )
    h = ws[0]
    for w in ws[1:]:
        h = _phrase_mix(h, w)
    return h


def phrase_hits(text: str, table: npt.ArrayLike, n_max: int) -> npt.NDArray[np.int32]:
    """Occurrences of each table hash among the text's runs of 1..n_max words.

    table is sorted ascending; a run whose hash equals several (duplicate)
    entries counts on the first of them. Overlapping runs all count.
    """
    if n_max < 1 or n_max > PHRASE_MAX_WORDS:
        raise ValueError(f"n_max must be in 1..{PHRASE_MAX_WORDS}")
    t = np.ascontiguousarray(table, dtype=np.uint64)
    if t.ndim != 1:
        raise ValueError("table must be one-dimensional")
    k = t.shape[0]
    out = np.zeros(k, dtype=np.int32)
    if k == 0:
        return out
    keys = t.tolist()
    if any(keys[j] < keys[j - 1] for j in range(1, k)):
        raise ValueError("table must be sorted ascending")
    ws = word_hashes(text)
    for i in range(len(ws)):
        h = ws[i]
        for length in range(1, n_max + 1):
            if length > 1:
                if i + length > len(ws):
                    break
                h = _phrase_mix(h, ws[i + length - 1])
            j = bisect_left(keys, h)
            if j < k and keys[j] == h:
                out[j] += 1
    return out


# ------------------------------------------------------------------ policy


def score_models(
    table: npt.ArrayLike,
    probs: npt.ArrayLike | None,
    codes: npt.ArrayLike | None,
    boost: npt.ArrayLike | None,
    overrides: npt.ArrayLike | None,
    complexity: float,
    need: int,
    in_tokens: int,
    out_tokens: int,
    max_cost: float,
    max_latency: float,
    min_quality: float,
    strategy: int,
    wq: float,
    wc: float,
    wl: float,
) -> tuple[F64, F64, F64, F64, npt.NDArray[np.int8], npt.NDArray[np.int64], float]:
    """The policy's per-model numbers for one request, in one call.

    table: float64[m, N_MODEL_COLS + c], one row per model: price per input and
    output token, p50 latency (ms), decode tokens/s, context window, max output
    tokens, capability bits, default quality, then the quality per category.
    probs: float64[c] category probabilities (None: use the default quality;
    also when they do not sum to > 0). codes: int8[m] name checks from the
    caller (FAIL_DENIED, FAIL_NOT_ALLOWED, FAIL_UNHEALTHY or 0; None: all 0).
    boost: float64[m] per-model strategy boost, NaN for none (complexity: the
    score is max(quality, boost); domain: boost replaces the multi-objective
    score). overrides: float64[2, m] quality and cost replacing the estimates
    where not NaN (a learned router's predictions). max_cost, max_latency,
    min_quality: NaN for no limit. strategy: a SCORE_* code.

    Returns (quality, cost_usd, latency_ms, score, fail, order, target): fail
    is the FAIL_* code of the first failing check (0 when eligible), order the
    eligible models by score descending (stable: ties keep registry order),
    target the quality bar of the cost / latency strategies (NaN otherwise).
    Every sum runs left to right, so the C twin gives bit-equal doubles.
    """
    t = np.ascontiguousarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError("table must be two-dimensional")
    m, width = t.shape
    nc = width - N_MODEL_COLS
    if nc < 0:
        raise ValueError(f"table needs at least {N_MODEL_COLS} columns")
    if not SCORE_QUALITY <= strategy <= SCORE_NONE:
        raise ValueError(f"unknown strategy code {strategy}")
    rows: list[list[float]] = t.tolist()
    pl: list[float] | None = None
    if probs is not None:
        pa = np.ascontiguousarray(probs, dtype=np.float64)
        if pa.ndim != 1 or pa.shape[0] != nc:
            raise ValueError("probs must have one entry per quality column")
        pl = pa.tolist()
    cl = _per_model(codes, np.int8, "codes", m)
    bl = _per_model(boost, np.float64, "boost", m)
    vl: list[list[float]] | None = None
    if overrides is not None:
        ov = np.ascontiguousarray(overrides, dtype=np.float64)
        if ov.ndim != 2 or ov.shape != (2, m):
            raise ValueError("overrides must have shape (2, models)")
        vl = ov.tolist()

    it, ot = float(in_tokens), float(out_tokens)
    span = float(in_tokens + out_tokens)
    pn: list[float] | None = None
    if pl is not None and nc > 0:
        total = 0.0
        for x in pl:
            total += x
        if total > 0:
            pn = [x / total for x in pl]
    f = 0.1 + 3.0 * complexity * complexity
    q, cost, lat = [0.0] * m, [0.0] * m, [0.0] * m
    for i, row in enumerate(rows):
        if pn is not None:
            acc = 0.0
            for j in range(nc):
                acc += row[N_MODEL_COLS + j] * pn[j]
            x = acc
        else:
            x = row[COL_DEFAULT_Q]
        x = 1.0 - (1.0 - x) * f
        if not (0.0 <= x <= 1.0):
            x = 0.0 if x < 0.0 else 1.0
        q[i] = x
        cost[i] = it * row[COL_PRICE_IN] + ot * row[COL_PRICE_OUT]
        p50, tps = row[COL_P50], row[COL_TPS]
        tt = p50 + (ot - 512.0) / tps * 1000.0
        floor = 0.2 * p50
        lat[i] = (tt if tt > floor else floor) + it * 50.0 / tps
        if vl is not None:
            if vl[0][i] == vl[0][i]:
                q[i] = vl[0][i]
            if vl[1][i] == vl[1][i]:
                cost[i] = vl[1][i]

    fail = [FAIL_OK] * m
    order: list[int] = []
    for i, row in enumerate(rows):
        code = FAIL_OK if cl is None else int(cl[i])
        if code in (FAIL_DENIED, FAIL_NOT_ALLOWED):
            pass
        elif need and (int(row[COL_CAPS]) & need) != need:
            code = FAIL_CAPABILITY
        elif span > row[COL_CONTEXT]:
            code = FAIL_CONTEXT
        elif ot > row[COL_MAX_OUTPUT]:
            code = FAIL_MAX_OUTPUT
        elif code == FAIL_UNHEALTHY:
            pass
        elif cost[i] > max_cost:
            code = FAIL_COST
        elif lat[i] > max_latency:
            code = FAIL_LATENCY
        elif q[i] < min_quality:
            code = FAIL_QUALITY
        else:
            code = FAIL_OK
        fail[i] = code
        if code == FAIL_OK:
            order.append(i)

    target = math.nan
    score = list(q)
    if not order:
        pass
    elif strategy == SCORE_QUALITY:
        top = _max_over(cost, order)
        if top < 1e-12:
            top = 1e-12
        score = [q[i] - 1e-6 * cost[i] / top for i in range(m)]
    elif strategy in (SCORE_COST, SCORE_LATENCY):
        target = min_quality if min_quality == min_quality else _max_over(q, order) - QUALITY_TOLERANCE
        key = cost if strategy == SCORE_COST else lat
        top = _max_over(key, order)
        if top < 1e-12:
            top = 1e-12
        score = [2.0 - key[i] / top if q[i] >= target - 1e-12 else q[i] for i in range(m)]
    elif strategy in (SCORE_MULTI, SCORE_DOMAIN):
        lc = [math.log10(c if c > 1e-12 else 1e-12) for c in cost]
        ll = [math.log10(t if t > 1e-3 else 1e-3) for t in lat]
        cmin = _min_over(lc, order)
        lmin = _min_over(ll, order)
        wc = wc * DECADE_VALUE
        wl = wl * DECADE_VALUE
        score = [wq * q[i] - wc * (lc[i] - cmin) - wl * (ll[i] - lmin) for i in range(m)]
        if strategy == SCORE_DOMAIN and bl is not None:
            for i in range(m):
                if bl[i] == bl[i]:
                    score[i] = bl[i]
    elif strategy == SCORE_COMPLEXITY and bl is not None:
        for i in range(m):
            if bl[i] > score[i]:
                score[i] = bl[i]

    # Stable insertion sort by score, descending (the C twin's exact order).
    for j in range(1, len(order)):
        k = order[j]
        v = score[k]
        a = j
        while a > 0 and score[order[a - 1]] < v:
            order[a] = order[a - 1]
            a -= 1
        order[a] = k
    return (np.array(q, dtype=np.float64), np.array(cost, dtype=np.float64),
            np.array(lat, dtype=np.float64), np.array(score, dtype=np.float64),
            np.array(fail, dtype=np.int8), np.array(order, dtype=np.int64), target)


def _per_model(a: npt.ArrayLike | None, dtype: npt.DTypeLike, name: str, m: int) -> list[float] | None:
    if a is None:
        return None
    arr: npt.NDArray[np.generic] = np.ascontiguousarray(a, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if arr.shape[0] != m:
        raise ValueError(f"{name} must have one entry per model")
    out: list[float] = arr.tolist()
    return out


def _max_over(x: list[float], idx: list[int]) -> float:
    top = x[idx[0]]
    for i in idx[1:]:
        if x[i] > top:
            top = x[i]
    return top


def _min_over(x: list[float], idx: list[int]) -> float:
    low = x[idx[0]]
    for i in idx[1:]:
        if x[i] < low:
            low = x[i]
    return low


# ------------------------------------------------------------------ classifier

_LOG_20, _LOG_4000 = math.log1p(20.0), math.log1p(4000.0)


def _min1(x: float) -> float:
    return x if x < 1.0 else 1.0  # min(1.0, x)


def _max0(x: float) -> float:
    return x if x > 0.0 else 0.0  # max(0.0, x)


def combine_categories(
    sims: npt.ArrayLike | None,
    w: float,
    hits: npt.ArrayLike,
    owners: npt.ArrayLike,
    hard_weight: npt.ArrayLike,
    regex: npt.ArrayLike | None,
    base: npt.ArrayLike,
    log_tokens: float,
    math_score: float,
    code_score: float,
    easy: bool,
) -> tuple[int, float, float, F64]:
    """The classifier's category distribution and complexity, in one call.

    sims: float32[c] embedding similarity per category (None: no embedding);
    w: the embedding's weight (rules weigh 1 - w, and count only when w < 1);
    hits: int32[t] phrase counts (phrase_hits over the phrase table); owners:
    float64[t, c] how many of a category's keywords each table slot holds;
    hard_weight: float64[t] how many hard-request markers each slot holds;
    regex: float64[c] matching patterns per category (None: none); base:
    float64[c] each category's base complexity; log_tokens, math_score,
    code_score: the feature scalars; easy: the prompt opens like small talk.

    Returns (best category, confidence, complexity, probs float64[c]). Every
    sum runs left to right, so the C twin gives bit-equal doubles.
    """
    bl = np.ascontiguousarray(base, dtype=np.float64)
    if bl.ndim != 1:
        raise ValueError("base must be one-dimensional")
    n = bl.shape[0]
    if n < 1:
        raise ValueError("base must have at least one category")
    h = np.ascontiguousarray(hits, dtype=np.int32)
    if h.ndim != 1:
        raise ValueError("hits must be one-dimensional")
    nt = h.shape[0]
    hw = np.ascontiguousarray(hard_weight, dtype=np.float64)
    if hw.ndim != 1 or hw.shape[0] != nt:
        raise ValueError("hard_weight must have one entry per hit")
    ow = np.ascontiguousarray(owners, dtype=np.float64)
    if ow.ndim != 2 or ow.shape != (nt, n):
        raise ValueError("owners must have shape (hits, categories)")
    sl: list[float] | None = None
    if sims is not None:
        sa = np.ascontiguousarray(sims, dtype=np.float32)
        if sa.ndim != 1 or sa.shape[0] != n:
            raise ValueError("sims must have one entry per category")
        sl = sa.astype(np.float64).tolist()
    rl: list[float] | None = None
    if regex is not None:
        ra = np.ascontiguousarray(regex, dtype=np.float64)
        if ra.ndim != 1 or ra.shape[0] != n:
            raise ValueError("regex must have one entry per category")
        rl = ra.tolist()
    owl: list[list[float]] = ow.tolist()
    hwl: list[float] = hw.tolist()

    ev = [0.0] * n
    hard = 0.0
    for t, k in enumerate(h.tolist()):
        if k > 0:
            hard += hwl[t]
            for c in range(n):
                ev[c] += owl[t][c]
    for c in range(n):
        if rl is not None:
            ev[c] += 1.5 * rl[c]
        ev[c] = 1.0 - math.exp(-0.7 * ev[c])
    comb = [0.0] * n
    if sl is not None:
        top = 0.0
        for c in range(n):
            x = sl[c]
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            comb[c] = x
            if c == 0 or x > top:
                top = x
        scale = w * _min1(0.5 + top) / top if top > 0 else 0.0
        comb = [x * scale for x in comb]
    if w < 1.0:
        comb = [comb[c] + (1.0 - w) * ev[c] for c in range(n)]
    total = 0.0
    for x in comb:
        total += x
    confident = total > 0.0
    if total <= 0.0:
        probs = [1.0 / n] * n
    else:
        mx = comb[0]
        for x in comb[1:]:
            if x > mx:
                mx = x
        z = [math.exp((x - mx) / 0.15) for x in comb]
        total = 0.0
        for x in z:
            total += x
        probs = [x / total for x in z]
    best = 0
    for c in range(1, n):
        if probs[c] > probs[best]:
            best = c
    conf = 0.0
    if confident:
        second = 0.0
        if n > 1:
            second = -math.inf
            for c in range(n):
                if c != best and probs[c] > second:
                    second = probs[c]
        conf = _min1(0.5 * probs[best] + 0.5 * (probs[best] - second))
    mix = 0.0
    for c in range(n):
        mix += probs[c] * float(bl[c])
    length = _min1(_max0((log_tokens - _LOG_20) / (_LOG_4000 - _LOG_20)))
    cx = 0.45 * mix + 0.2 * length + 0.3 * _min1(hard / 3.0)
    cx += 0.05 * _min1(math_score)
    cx += 0.03 * _min1(code_score)
    if easy:
        cx *= 0.5
    return best, conf, _min1(_max0(cx)), np.array(probs, dtype=np.float64)
