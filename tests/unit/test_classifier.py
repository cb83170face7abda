"""The classifier: what each mode names, and the everyday-wording test set."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from routecore.config import Config, load_config
from routecore.routing.classifier import Classifier
from routecore.routing.features import FeatureExtractor
from routecore.routing.phrases import PhraseMatcher

DATA = Path(__file__).resolve().parents[1] / "data"
EVERYDAY = DATA / "everyday_prompts.jsonl"
# The test set, the set the category head was tuned on, and a held-out one never tuned on.
EVERYDAY_SETS = ("everyday_prompts.jsonl", "everyday_dev.jsonl", "everyday_heldout.jsonl")
# Prompts that match no keyword or pattern of any built-in category.
NO_RULE_HIT = ("who won season 2 of total drama island", "Pen a sonnet about the sea at night.",
               "zzzz qqqq", "Boil down this memo to its essentials.")


@pytest.fixture(scope="module")
def defaults() -> Config:
    return load_config(None)


def _classifier(cfg: Config, mode: str) -> Classifier:
    c = replace(cfg, classifier=replace(cfg.classifier, mode=mode))
    return Classifier(c, FeatureExtractor(c.classifier.feature_dim))


def test_rule_mode_without_a_hit_is_spread_and_unsure(defaults: Config) -> None:
    """In rule mode a prompt that no rule matches gets a spread, low-confidence
    distribution, never the first category by default."""
    clf = _classifier(defaults, "rule")
    first = clf.categories[0]
    for text in NO_RULE_HIT:
        assert not clf._rules.phrase_hits(text)[clf._kw_slots].any(), text
        assert clf._rules.pattern_hits(text) is None, text
        got = clf.classify(text, clf.features(text))
        assert got.category != first, text
        assert got.confidence < 0.2, text
        assert max(got.scores.values()) < 0.3, text
        assert abs(sum(got.scores.values()) - 1.0) < 1e-9


def test_rule_mode_never_defaults_to_the_first_category(defaults: Config) -> None:
    """Over every everyday prompt that no rule matches, rule mode stays unsure and does not
    pile them onto the first category (the issue's bug: all of them went to `code`)."""
    clf = _classifier(defaults, "rule")
    got = []
    for name in EVERYDAY_SETS:
        for line in (DATA / name).read_text("utf-8").splitlines():
            text = json.loads(line)["prompt"]
            if clf._rules.phrase_hits(text)[clf._kw_slots].any() or clf._rules.pattern_hits(text):
                continue
            c = clf.classify(text, clf.features(text))
            assert c.confidence < 0.2 and max(c.scores.values()) < 0.3, (text, c.confidence)
            got.append(c.category)
    per = Counter(got)
    assert len(got) >= 50 and len(per) >= 5, per
    assert per[clf.categories[0]] < 0.3 * len(got), per


def test_rule_mode_with_a_hit_is_confident(defaults: Config) -> None:
    """A keyword hit still decides rule mode, with confidence."""
    clf = _classifier(defaults, "rule")
    got = clf.classify("Translate this into French please", clf.features("Translate this into French"))
    assert got.category == "translation" and got.confidence > 0.5


@pytest.mark.parametrize("name", EVERYDAY_SETS)
def test_everyday_set_avoids_its_categories_keywords(defaults: Config, name: str) -> None:
    """Each everyday-wording set has >= 10 prompts per built-in category and no
    prompt contains one of its own category's keywords."""
    rows = [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines()]
    per = Counter(r["category"] for r in rows)
    assert set(per) == set(defaults.categories)
    assert min(per.values()) >= 10
    for r in rows:
        kws = defaults.categories[r["category"]].keywords
        hits = PhraseMatcher(kws).counts(r["prompt"])
        assert not hits.any(), (r["prompt"], [k for k, h in zip(kws, hits, strict=True) if h])


def test_everyday_sets_share_no_prompt() -> None:
    """The test, dev and held-out everyday sets are disjoint (after case and space folding)."""
    seen: dict[str, str] = {}
    for name in EVERYDAY_SETS:
        for line in (DATA / name).read_text("utf-8").splitlines():
            key = " ".join(json.loads(line)["prompt"].lower().split())
            assert key not in seen, (key, seen.get(key), name)
            seen[key] = name


def test_trained_mode_is_the_default_and_names_everyday_prompts(defaults: Config) -> None:
    """The default mode is the trained head, and it names the category of prompts
    phrased without their category's keywords more often than combined mode does."""
    assert defaults.classifier.mode == "trained"
    rows = [json.loads(line) for line in EVERYDAY.read_text("utf-8").splitlines()]

    def right(mode: str) -> int:
        clf = _classifier(defaults, mode)
        return sum(clf.classify(r["prompt"], clf.features(r["prompt"])).category == r["category"]
                   for r in rows)

    trained, combined = right("trained"), right("combined")
    assert trained > combined and trained / len(rows) >= 0.5, (trained, combined)


def test_trained_mode_confidence_is_the_heads(defaults: Config) -> None:
    """Trained mode's confidence comes from the category head's own softmax (not from the
    core's sharpened scores), so a vague prompt is unsure and a clear one is sure."""
    clf = _classifier(defaults, "trained")
    assert clf._head is not None
    for text in ("Thoughts on this?", "What about the other one?", "Hello! How are you today?"):
        f = clf.features(text)
        got = clf.classify(text, f)
        p = np.sort(clf._head.probs(text, f.vec, f.scalars, f.emb))[::-1]
        assert got.confidence == pytest.approx(0.5 * p[0] + 0.5 * (p[0] - p[1]), abs=1e-6), text
        assert got.category == max(got.scores, key=got.scores.__getitem__)
    vague = clf.classify("What about the other one?", clf.features("What about the other one?"))
    sure = "Write a Python function that returns the n-th Fibonacci number."
    assert vague.confidence < 0.6 < 0.9 < clf.classify(sure, clf.features(sure)).confidence
    many = clf.classify_many([sure], *(np.stack([x]) for x in clf.extractor.extract(sure)))
    assert many[0].confidence == pytest.approx(clf.classify(sure, clf.features(sure)).confidence)


def test_trained_mode_refuses_unknown_categories(defaults: Config) -> None:
    """A config category the head does not know is a ConfigError naming it; a subset
    of the built-in categories works."""
    from routecore.errors import ConfigError

    extra = dict(defaults.categories)
    extra["legal"] = replace(defaults.categories["qa"], name="legal")
    with pytest.raises(ConfigError, match=r"categories\.legal"):
        _classifier(replace(defaults, categories=extra), "trained")
    subset = {k: defaults.categories[k] for k in ("code", "chat")}
    clf = _classifier(replace(defaults, categories=subset), "trained")
    got = clf.classify("def f(x): return x", clf.features("def f(x): return x"))
    assert got.category == "code" and set(got.scores) == {"code", "chat"}
