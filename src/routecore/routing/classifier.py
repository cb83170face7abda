"""Task classification: which category a prompt belongs to, how hard it is.

Four classifiers behind one interface, chosen by `classifier.mode`:
- `rule`: keywords and regexes per category, from config (a prompt that no
  rule matches gets a spread, low-confidence distribution from the exemplars);
- `embedding`: the core's hashed features, nearest category exemplars (FAISS);
- `combined`: a weighted blend of both (`classifier.embedding_weight`);
- `trained` (the default): the shipped category head (routing.category_head),
  a linear model over the static sentence embedding (routing.embedding), the
  hashed features and the scalar cues, trained on labelled instruction data;
  it knows the built-in categories, so a config may keep any of them but add
  no other.
All produce a `Classification(category, complexity, confidence, scores)`.
Complexity blends the category's base complexity with length, math, code and
multi-step markers; it is a prior in [0, 1], not a learned quantity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore.config import Config
from routecore.domain import Classification
from routecore.errors import ConfigError
from routecore.routing.catalog import BRUTE_FORCE_MAX_ROWS, ExemplarIndex
from routecore.routing.category_head import CategoryHead, ask_window
from routecore.routing.embedding import StaticEmbedder
from routecore.routing.features import SCALAR_NAMES, FeatureExtractor
from routecore.routing.phrases import PhraseMatcher

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Regex rules read the head and tail of long prompts: the ask sits there, and it
# keeps pattern matching O(1) in prompt length. Phrases are matched by the
# compiled core over a wider window.
_HEAD, _TAIL = 200, 100
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
    tokens: int  # the token estimate of the text (count_tokens)
    # The static sentence embedding of the prompt's ask (trained mode only).
    emb: F32 | None = None


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
        slots = self._matcher.slots
        n_kw = len(keywords)
        # Per table slot (phrases with the same words share one): the categories its
        # keywords vote for, and whether it is a hard marker. The core's
        # combine_categories weights the slot hits with these directly.
        self._slot_owners: F64 = np.zeros((self._matcher.n_slots, len(self.categories)))
        cat_index = {c: i for i, c in enumerate(self.categories)}
        for k, kw in enumerate(keywords):
            for c in self.categories:
                if kw in config.categories[c].keywords:
                    self._slot_owners[slots[k], cat_index[c]] += 1.0
        self._slot_hard: F64 = np.zeros(self._matcher.n_slots)
        np.add.at(self._slot_hard, slots[n_kw:], 1.0)
        self._patterns = [
            (i, re.compile(p, re.IGNORECASE | re.MULTILINE))
            for i, c in enumerate(self.categories) for p in config.categories[c].patterns
        ]

    def phrase_hits(self, text: str) -> npt.NDArray[np.int32]:
        """Occurrences per slot of the phrase table (keywords and hard markers)."""
        return self._matcher.slot_hits(_window(text, _PHRASE_HEAD, _PHRASE_TAIL))

    def pattern_hits(self, text: str) -> list[float] | None:
        """Matching patterns per category, or None when none matches."""
        window = _window(text)
        counts = [0.0] * len(self.categories)
        found = False
        for i, pat in self._patterns:
            if pat.search(window) is not None:
                counts[i] += 1.0
                found = True
        return counts if found else None


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
        rows = np.ascontiguousarray(np.stack(vecs), dtype=np.float32)
        self._index.add(rows, labels)
        self._k = min(len(labels), 16)
        # A small index is searched here directly (BLAS scores, then the core's
        # fused top-k + per-label max), as ExemplarIndex does, minus its checks.
        self._rows = rows if len(rows) <= BRUTE_FORCE_MAX_ROWS else None
        self._labels = np.ascontiguousarray(labels, dtype=np.int32)
        self._n = len(self.categories)

    def sims(self, vec: F32) -> F32:
        """Per-category max cosine similarity among the nearest exemplars (-1: none)."""
        if self._rows is None:
            return self._index.nearest_labels(vec, self._n, self._k)
        out: F32 = _fast.top_k_max_by_label(self._rows @ vec, self._labels, self._n, self._k)
        return out

    def sims_many(self, vecs: F32) -> list[F32]:
        """`sims` for each row of `vecs`; a small index scores them all in one product."""
        if self._rows is None:
            return [self._index.nearest_labels(v, self._n, self._k) for v in vecs]
        scores = np.ascontiguousarray(vecs @ self._rows.T)
        return [_fast.top_k_max_by_label(row, self._labels, self._n, self._k) for row in scores]


class Classifier:
    """The configured classifier: rule, embedding, combined or trained."""

    def __init__(self, config: Config, extractor: FeatureExtractor) -> None:
        cc = config.classifier
        # In llm and cascade modes this is the local classifier (calling/llm_classifier.py).
        self.mode = mode = cc.local_mode
        self.categories = tuple(config.categories)
        self.extractor = extractor
        self._w = cc.embedding_weight if mode == "combined" else (
            1.0 if mode == "embedding" else 0.0)
        # The rule classifier also counts hard-request markers, so it always exists.
        # The exemplars exist in every mode too: in rule mode they pick, at low
        # confidence, the category of a prompt that no rule matches.
        self._rules = RuleClassifier(config)
        self._embed = EmbeddingClassifier(config, extractor)
        self._kw_slots = np.flatnonzero(self._rules._slot_owners.sum(axis=1) > 0)
        self._base = [config.categories[c].complexity for c in self.categories]
        self._base_arr: F64 = np.array(self._base, dtype=np.float64)
        self._i_tokens = SCALAR_NAMES.index("log_tokens")
        self._i_math = SCALAR_NAMES.index("math")
        self._i_code = SCALAR_NAMES.index("code")
        self._head: _Head | None = _Head(config, extractor) if mode == "trained" else None
        if self._head is not None:
            self._w = 1.0  # the head's probabilities stand alone (rules count for complexity)

    def features(self, text: str) -> Features:
        vec, scalars, tokens = self.extractor.extract_counted(text)
        if self._head is None:
            return Features(vec, scalars, tokens)
        return Features(vec, scalars, tokens, self._head.embedder.embed(ask_window(text)))

    def classify(self, text: str, feats: Features) -> Classification:
        sims: F32 | None
        if self._head is not None:
            probs = self._head.probs(text, feats.vec, feats.scalars, feats.emb)
            return _head_confidence(self._combine(text, feats.vec, feats.scalars, probs), probs)
        sims = self._embed.sims(feats.vec) if self._w > 0.0 else None
        return self._combine(text, feats.vec, feats.scalars, sims)

    def classify_many(self, texts: Sequence[str], vecs: F32, scalars: F32
                      ) -> list[Classification]:
        """`classify` for each text (row i of vecs/scalars is its features); the
        exemplar similarities of all rows come from one matrix product."""
        if self._head is not None:
            head = self._head
            out = []
            for i, t in enumerate(texts):
                probs = head.probs(t, vecs[i], scalars[i], None)
                out.append(_head_confidence(self._combine(t, vecs[i], scalars[i], probs), probs))
            return out
        sims = self._embed.sims_many(vecs) if self._w > 0.0 else None
        return [self._combine(t, vecs[i], scalars[i], None if sims is None else sims[i])
                for i, t in enumerate(texts)]

    def _combine(self, text: str, vec: F32, scalars: F32, sims: F32 | None) -> Classification:
        # Evidence from the matchers, then one core call for the category
        # distribution, confidence and complexity (see _fast.combine_categories).
        rules = self._rules
        hits = rules.phrase_hits(text)
        regex = rules.pattern_hits(text)
        if sims is None and regex is None and not hits[self._kw_slots].any():
            sims = self._embed.sims(vec)  # rule mode, nothing matched: exemplars decide, softly
        best, confidence, complexity, probs = _fast.combine_categories(
            sims, self._w, hits, rules._slot_owners, rules._slot_hard,
            regex, self._base_arr, float(scalars[self._i_tokens]),
            float(scalars[self._i_math]), float(scalars[self._i_code]),
            _EASY_MARKERS.match(text) is not None)
        cats = self.categories
        return Classification(cats[best], complexity, confidence,
                              dict(zip(cats, probs.tolist(), strict=True)), probs)


def _head_confidence(c: Classification, probs: F32) -> Classification:
    """`c` with the confidence the head's own probabilities give (the core's measure,
    0.5 p1 + 0.5 (p1 - p2), over the head's softmax). combine_categories sharpens its
    input at temperature 0.15, so its confidence would call a 0.6 / 0.2 split certain and
    cascade mode would never ask the LLM about a vague prompt; the sharpened scores still
    drive routing, as before."""
    p1, p2 = np.sort(probs)[-2:][::-1] if probs.shape[0] > 1 else (probs[0], 0.0)
    conf = min(1.0, 0.5 * float(p1) + 0.5 * float(p1 - p2))
    return Classification(c.category, c.complexity, conf, c.scores, c.probs)


class _Head:
    """The shipped category head, restricted to the configured categories."""

    def __init__(self, config: Config, extractor: FeatureExtractor) -> None:
        head = CategoryHead.shipped()
        unknown = [c for c in config.categories if c not in head.categories]
        field = "classifier.llm.local" if config.classifier.llm else "classifier.mode"
        if unknown:
            raise ConfigError([
                f"categories.{c}: {field} 'trained' knows only the built-in categories "
                f"({', '.join(head.categories)}); use mode rule, embedding or combined"
                for c in unknown])
        self.head = head
        self.embedder = StaticEmbedder.shipped()
        if self.embedder.dim != head.emb_dim:
            raise ConfigError([f"classifier: the category head expects {head.emb_dim}-dim "
                               f"embeddings, the shipped ones have {self.embedder.dim}"])
        idx = np.array([head.categories.index(c) for c in config.categories], dtype=np.intp)
        # Weights and biases of the configured categories only, in config order.
        self._w: F32 = np.ascontiguousarray(head.w[idx])
        self._b: F32 = np.ascontiguousarray(head.b[idx])
        # The head was trained on hashed features of its own width.
        self._fx = extractor if extractor.dim == head.hash_dim else FeatureExtractor(head.hash_dim)

    def probs(self, text: str, vec: F32, scalars: F32, emb: F32 | None) -> F32:
        """float32 probability per configured category."""
        if emb is None:
            emb = self.embedder.embed(ask_window(text))
        if self._fx.dim != vec.shape[0]:
            vec = self._fx.extract(text)[0]
        z = self._w @ self.head.features(emb, vec, scalars) + self._b
        e = np.exp(z - z.max())
        out: F32 = (e / e.sum()).astype(np.float32)
        return out
