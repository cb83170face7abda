"""Masking an API key in text an upstream sent back, before anything cuts the text.

Upstreams echo keys in error bodies: whole, upper- or lower-cased, or in part
("Incorrect API key provided: sk-proj-abcd1234****wxyz"). Cutting a message
first and masking after lets a key cut at the boundary slip through (the mask
looks for the whole key), so callers mask the full text, then cut.
"""

from __future__ import annotations

MASK = "<redacted>"
# A fragment of the key this long or longer is masked wherever it appears (any case).
# Shorter fragments (a 4-character suffix) identify nothing and would mask ordinary words.
MIN_FRAGMENT = 8
# Longest upstream text looked at; anything after it is dropped before masking, so the
# work per error stays small whatever the upstream sends.
MAX_SCAN = 16_384


def redact(text: str, secret: str, limit: int) -> str:
    """`text` with `secret` and every fragment of it of MIN_FRAGMENT+ characters masked,
    case-insensitively, then cut to `limit` characters."""
    text = text[:MAX_SCAN]
    if secret:
        text = _mask(text, secret)
    return text if len(text) <= limit else text[:limit] + "..."


def _mask(text: str, secret: str) -> str:
    low, key = text.lower(), secret.lower()
    k = min(MIN_FRAGMENT, len(key))
    grams = {key[i:i + k] for i in range(len(key) - k + 1)}
    out: list[str] = []
    i = start = 0
    n = len(text)
    while i <= n - k:
        if low[i:i + k] not in grams:
            i += 1
            continue
        j = i + k  # extend the match as long as it is still a fragment of the key
        while j < n and low[i:j + 1] in key:
            j += 1
        out.append(text[start:i])
        out.append(MASK)
        i = start = j
    out.append(text[start:])
    return "".join(out)
