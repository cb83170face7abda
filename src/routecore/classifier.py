"""Task classification: which category a prompt belongs to, how hard it is.

Three classifiers behind one interface, chosen by `classifier.mode`:
- `rule`: keywords and regexes per category, from config;
- `embedding`: the core's hashed features, nearest category exemplars (FAISS);
- `combined`: a weighted blend of both (`classifier.embedding_weight`).
All produce a `Classification(category, complexity, confidence, scores)`.
Complexity blends the category's base complexity with length, math, code and
multi-step markers; it is a prior in [0, 1], not a learned quantity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .catalog import ExemplarIndex
from .config import Config
from .domain import Classification
from .features import SCALAR_NAMES, FeatureExtractor
from .phrases import PhraseMatcher

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Regex rules read the head and tail of long prompts: the ask sits there, and it
# keeps pattern matching O(1) in prompt length. Phrases are matched by the
# compiled core over a wider window.
_HEAD, _TAIL = 400, 200
_PHRASE_HEAD, _PHRASE_TAIL = 3000, 1000
# Markers of a hard request, counted as distinct whole-word phrases.
HARD_PHRASES = (
    "prove", "proving", "proof", "proofs", "derive", "derivation", "step by step", "rigorous",
    "rigorously", "optimize", "optimise", "optimization", "optimisation", "trade off",
    "trade offs", "tradeoff", "tradeoffs", "design", "architecture", "multi step", "edge case",
    "edge cases", "complexity", "analyze", "analyse", "analysis", "justify", "justifying",
    "justification", "lemma", "theorem", "induction", "concurrency", "concurrent",
    "thread safe", "distributed", "formally",
)
_EASY_MARKERS = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|what is \d+\s*[-+*/]\s*\d+)\b", re.IGNORECASE)


_LOG_20, _LOG_4000 = math.log1p(20), math.log1p(4000)


@dataclass(frozen=True, slots=True)
class Features:
    """What the classifier (and a learned router) computed for one prompt."""

    vec: F32
    scalars: F32


def _window(text: str, head: int = _HEAD, tail: int = _TAIL) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


class RuleClassifier:
    """Keyword votes (whole-word phrases, matched by the compiled core) and regex
    votes per category, plus the hard-request markers used for complexity."""

    def __init__(self, config: Config) -> None:
        self.categories = tuple(config.categories)
        keywords = sorted({kw for c in self.categories for kw in config.categories[c].keywords})
        # One matcher, one pass: category keywords first, then the hard markers.
        self._matcher = PhraseMatcher([*keywords, *HARD_PHRASES])
        self._n_kw = len(keywords)
        # owners[k, c] = 1 when keyword k votes for category c.
        self._owners = np.zeros((len(keywords), len(self.categories)))
        slot = {kw: k for k, kw in enumerate(keywords)}
        for i, c in enumerate(self.categories):
            for kw in config.categories[c].keywords:
                self._owners[slot[kw], i] = 1.0
        self._patterns = [
            (i, re.compile(p, re.IGNORECASE | re.MULTILINE))
            for i, c in enumerate(self.categories) for p in config.categories[c].patterns
        ]

    def evidence(self, text: str) -> tuple[list[float], int]:
        """Per-category evidence in [0, 1] (saturating in the number of hits), and the
        number of distinct hard-request markers."""
        found = self._matcher.counts(_window(text, _PHRASE_HEAD, _PHRASE_TAIL)) > 0
        hits = (found[: self._n_kw] @ self._owners).tolist()
        window = _window(text)
        for i, pat in self._patterns:
            if pat.search(window) is not None:
                hits[i] += 1.5
        exp = math.exp
        return [1.0 - exp(-0.7 * h) for h in hits], int(np.count_nonzero(found[self._n_kw:]))

    def scores(self, text: str) -> list[float]:
        return self.evidence(text)[0]


class EmbeddingClassifier:
    """Nearest category exemplars over the core's hashed features."""

    def __init__(self, config: Config, extractor: FeatureExtractor) -> None:
        self.categories = tuple(config.categories)
        self._index = ExemplarIndex(extractor.dim)
        vecs, labels = [], []
        for label, name in enumerate(self.categories):
            for ex in config.categories[name].exemplars:
                vecs.append(extractor.extract(ex)[0])
                labels.append(label)
        self._index.add(np.stack(vecs).astype(np.float32), labels)
        self._k = min(len(labels), 16)

    def scores(self, vec: F32) -> F64:
        """Per-category max cosine similarity among the nearest exemplars (>= 0)."""
        sims = self._index.nearest_labels(vec, len(self.categories), self._k)
        return np.clip(sims.astype(np.float64), 0.0, 1.0)


class Classifier:
    """The configured classifier: rule, embedding or combined."""

    def __init__(self, config: Config, extractor: FeatureExtractor) -> None:
        cc = config.classifier
        self.mode = cc.mode
        self.categories = tuple(config.categories)
        self.extractor = extractor
        self._w = cc.embedding_weight if cc.mode == "combined" else (
            1.0 if cc.mode == "embedding" else 0.0)
        # The rule classifier also counts hard-request markers, so it always exists.
        self._rules = RuleClassifier(config)
        self._embed = EmbeddingClassifier(config, extractor) if self._w > 0.0 else None
        self._base = [config.categories[c].complexity for c in self.categories]
        self._i_tokens = SCALAR_NAMES.index("log_tokens")
        self._i_math = SCALAR_NAMES.index("math")
        self._i_code = SCALAR_NAMES.index("code")

    def features(self, text: str) -> Features:
        vec, scalars = self.extractor.extract(text)
        return Features(vec, scalars)

    def classify(self, text: str, feats: Features) -> Classification:
        # Nine-ish categories: plain floats, not a chain of tiny numpy calls.
        n = len(self.categories)
        w = self._w
        combined = [0.0] * n
        if self._embed is not None:
            # Similarities of hashed n-gram vectors sit well below 1; rescale so the
            # best match carries weight comparable to a strong rule hit.
            emb = self._embed.scores(feats.vec).tolist()
            top = max(emb)
            scale = w * min(1.0, 0.5 + top) / top if top > 0 else 0.0
            combined = [e * scale for e in emb]
        rules, hard = self._rules.evidence(text)
        if w < 1.0:
            combined = [c + (1.0 - w) * r for c, r in zip(combined, rules, strict=True)]
        if sum(combined) <= 0.0:
            probs = [1.0 / n] * n
            confidence = 0.0
        else:
            # Sharpen into a distribution; the temperature keeps a runner-up visible.
            mx = max(combined)
            z = [math.exp((c - mx) / 0.15) for c in combined]
            total = sum(z)
            probs = [x / total for x in z]
        order = sorted(range(n), key=probs.__getitem__, reverse=True)
        best = order[0]
        if sum(combined) > 0.0:
            margin = probs[best] - (probs[order[1]] if n > 1 else 0.0)
            confidence = min(1.0, 0.5 * probs[best] + 0.5 * margin)
        complexity = self._complexity(text, hard, feats, probs)
        scores = dict(zip(self.categories, probs, strict=True))
        return Classification(self.categories[best], complexity, confidence, scores,
                              np.array(probs))

    def _complexity(self, text: str, hard: int, feats: Features, probs: list[float]) -> float:
        base = sum(p * b for p, b in zip(probs, self._base, strict=True))
        scalars = feats.scalars
        tokens = float(scalars[self._i_tokens])  # log1p(tokens)
        # Longer prompts are harder up to ~4k tokens, where it saturates.
        length = min(1.0, max(0.0, (tokens - _LOG_20) / (_LOG_4000 - _LOG_20)))
        easy = _EASY_MARKERS.match(text) is not None
        c = 0.45 * base + 0.2 * length + 0.3 * min(1.0, hard / 3.0)
        c += 0.05 * min(1.0, float(scalars[self._i_math]))
        c += 0.03 * min(1.0, float(scalars[self._i_code]))
        if easy:
            c *= 0.5
        return min(1.0, max(0.0, c))
