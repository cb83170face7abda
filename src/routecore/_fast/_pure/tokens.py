"""Token estimate: the twin of tokens.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .._constants import (
    ACC_MILLI,
    ACCENTED_TEXT_KNEE,
    ACCENTED_TEXT_PERMILLE,
    ACCENTED_TEXT_SLOPE_MILLI,
    CAMEL_MILLI,
    DIGIT_GROUP_MILLI,
    NEWLINE_MILLI,
    PUNCT_CHAR_MILLI,
    PUNCT_RUN_MILLI,
    SCRIPT_CHAR_MILLI,
    SCRIPT_RUN_MILLI,
    SCRIPT_SYM_MILLI,
    SPACE_MILLI,
    WORD_BASE_MILLI,
    WORD_KNEES,
    WORD_SLOPES_MILLI,
)

F64 = npt.NDArray[np.float64]

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
