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

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Rules read the head and tail of long prompts: the ask sits there, and it keeps
# rule matching O(1) in prompt length.
_HEAD, _TAIL = 600, 300
# Stems (no closing \b) so "rigorously", "proving", "optimization" count too.
_HARD_MARKERS = re.compile(
    r"\b(prov(e|ing)|proof|derive|step[- ]by[- ]step|rigorous|optimi[sz]|trade-?off|"
    r"design|architect|multi-step|edge case|complexity|analy[sz]|justif|lemma|theorem|"
    r"induction|concurren|thread-safe|distributed)"
)
_EASY_MARKERS = re.compile(r"^\s*(hi|hello|hey|thanks|thank you|what is \d+\s*[-+*/]\s*\d+)\b")


@dataclass(frozen=True, slots=True)
class Features:
    """What the classifier (and a learned router) computed for one prompt."""

    vec: F32
    scalars: F32


def _window(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text.lower()
    return (text[:_HEAD] + "\n" + text[-_TAIL:]).lower()


class RuleClassifier:
    """Keyword and regex votes per category."""

    def __init__(self, config: Config) -> None:
        self.categories = tuple(config.categories)
        # One alternation over every keyword: a single regex pass finds them all,
        # then each distinct keyword votes for the categories that list it.
        owners: dict[str, list[int]] = {}
        for i, c in enumerate(self.categories):
            for kw in config.categories[c].keywords:
                owners.setdefault(kw, []).append(i)
        self._owners = owners
        alternation = "|".join(re.escape(k) for k in sorted(owners, key=len, reverse=True))
        self._keywords = re.compile(rf"\b(?:{alternation})\b") if owners else None
        self._patterns = [
            (i, re.compile(p, re.IGNORECASE | re.MULTILINE))
            for i, c in enumerate(self.categories) for p in config.categories[c].patterns
        ]

    def scores(self, text: str, window: str | None = None) -> F64:
        """Per-category evidence in [0, 1]: saturating in the number of hits."""
        window = _window(text) if window is None else window
        hits = np.zeros(len(self.categories))
        if self._keywords is not None:
            for kw in set(self._keywords.findall(window)):
                for i in self._owners[kw]:
                    hits[i] += 1.0
        for i, pat in self._patterns:
            if pat.search(window) is not None:
                hits[i] += 1.5
        return 1.0 - np.exp(-0.7 * hits)


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
        self._rules = RuleClassifier(config) if self._w < 1.0 else None
        self._embed = EmbeddingClassifier(config, extractor) if self._w > 0.0 else None
        self._base = np.array([config.categories[c].complexity for c in self.categories])
        self._scalar = {name: i for i, name in enumerate(SCALAR_NAMES)}

    def features(self, text: str) -> Features:
        vec, scalars = self.extractor.extract(text)
        return Features(vec, scalars)

    def classify(self, text: str, feats: Features) -> Classification:
        n = len(self.categories)
        combined = np.zeros(n)
        if self._embed is not None:
            # Similarities of hashed n-gram vectors sit well below 1; rescale so the
            # best match carries weight comparable to a strong rule hit.
            emb = self._embed.scores(feats.vec)
            top = emb.max()
            if top > 0:
                emb = emb / top * min(1.0, 0.5 + top)
            combined += self._w * emb
        window = _window(text)
        if self._rules is not None:
            combined += (1.0 - self._w) * self._rules.scores(text, window)
        total = combined.sum()
        if total <= 0.0:
            probs = np.full(n, 1.0 / n)
        else:
            # Sharpen into a distribution; the temperature keeps a runner-up visible.
            z = np.exp((combined - combined.max()) / 0.15)
            probs = z / z.sum()
        order = np.argsort(-probs)
        best = int(order[0])
        margin = float(probs[best] - (probs[order[1]] if n > 1 else 0.0))
        confidence = float(min(1.0, 0.5 * probs[best] + 0.5 * margin)) if total > 0 else 0.0
        complexity = self._complexity(window, feats, probs)
        scores = {self.categories[i]: float(probs[i]) for i in range(n)}
        return Classification(self.categories[best], complexity, confidence, scores, probs)

    def _scalar_value(self, feats: Features, name: str) -> float:
        i = self._scalar.get(name)
        return float(feats.scalars[i]) if i is not None else 0.0

    def _complexity(self, window: str, feats: Features, probs: F64) -> float:
        base = float(probs @ self._base)
        tokens = self._scalar_value(feats, "log_tokens")  # log1p(tokens)
        # Longer prompts are harder up to ~4k tokens, where it saturates.
        length = min(1.0, max(0.0, (tokens - math.log1p(20)) / (math.log1p(4000) - math.log1p(20))))
        hard = len({m.group(1) for m in _HARD_MARKERS.finditer(window)})
        easy = _EASY_MARKERS.search(window) is not None
        math_s = self._scalar_value(feats, "math")
        code_s = self._scalar_value(feats, "code")
        c = 0.45 * base + 0.2 * length + 0.3 * min(1.0, hard / 3.0)
        c += 0.05 * min(1.0, math_s) + 0.03 * min(1.0, code_s)
        if easy:
            c *= 0.5
        return float(min(1.0, max(0.0, c)))
