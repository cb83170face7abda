"""Output-length estimates (routing/output_length.py) and their use in the decision."""

from __future__ import annotations

import pytest

from routecore import Constraints, Router
from routecore.routing.output_length import MAX_ESTIMATE, OutputLength

EST = OutputLength(512)


@pytest.mark.parametrize(("ask", "lo", "hi", "basis"), [
    ("Write a 5,000-word story about a dragon", 6000, 7000, "asked for 5,000 words"),
    ("Write 1,500 words on climate policy", 1900, 2100, "asked for 1,500 words"),
    ("Write a 5k word essay", 6000, 7000, "asked for 5k words"),
    ("Write a story in one hundred words", 120, 150, "asked for one hundred words"),
    ("What is the capital of France? Answer in one word.", 1, 8, "asked for one word"),
    ("List 20 ideas for a birthday party", 500, 700, "asked for 20 ideas"),
    ("Give me three paragraphs on Rome", 300, 450, "asked for three paragraphs"),
    ("Summarize this 5,000-word article in 100 words: ...", 120, 150, "asked for 100 words"),
    ("Write a haiku about rain", 20, 40, "a haiku"),
    ("yes or no: is the sky blue?", 1, 10, "a one-word answer"),
    ("Write a sonnet about the sea", 150, 250, "a sonnet"),
    ("Explain TCP slow start", 512, 512, "default"),
    ("Explain step 3 of the algorithm", 512, 512, "default"),
])
def test_estimates(ask: str, lo: int, hi: int, basis: str) -> None:
    """Counted asks (commas, k, number words), known forms and the default each estimate
    a plausible token count and say why; words are more tokens than words."""
    est = EST.estimate(ask, len(ask) // 4)
    assert lo <= est.tokens <= hi, est
    assert est.basis == basis


def test_words_are_more_than_tokens() -> None:
    """'500 words' is more tokens than '500 tokens'; 'pages' more than 'words'."""
    words = EST.estimate("Write 500 words", 3).tokens
    tokens = EST.estimate("Write 500 tokens", 3).tokens
    pages = EST.estimate("Write 5 pages", 3).tokens
    assert tokens < words < pages


def test_input_bound_asks_scale_with_the_input() -> None:
    """Translating gives about the input back; summarizing a fraction of it."""
    doc = "The quarterly report shows growth in every region. " * 200
    assert EST.estimate("Translate to French: " + doc, 2000).tokens == 2000
    summary = EST.estimate("Summarize: " + doc, 2000)
    assert summary.basis == "a summary of the input" and 60 <= summary.tokens <= 600


def test_max_output_tokens_caps_the_estimate() -> None:
    """The request's max_output_tokens caps the estimate and the basis says so."""
    est = EST.estimate("Write a 5,000-word story", 10, max_output_tokens=1000)
    assert est.tokens == 1000 and est.basis == "asked for 5,000 words, capped by max_output_tokens"
    assert EST.estimate("Explain TCP", 10, max_output_tokens=100).tokens == 100
    assert EST.estimate("Explain TCP", 10, max_output_tokens=4000).tokens == 512


@pytest.mark.parametrize("ask", [
    "",
    "9" * 100_000 + " words",
    "Write 999,999,999,999 words",
    "Write 1,2,3,4,5 words",
    "1" * 50 + "." * 50 + "5 words",
    "words " * 100_000,
    "Write \uff15\uff10\uff10\uff10 words (fullwidth digits)",
    "写一个5000字的故事",
    "\x00\ud800 write 10 words \U0001F600",
    "one " * 50_000 + "word",
    ("in " * 20 + "10 ") * 1000 + "paragraphs",
])
def test_hostile_asks_stay_bounded(ask: str) -> None:
    """Huge, malformed or odd asks give a bounded estimate without blowing up."""
    est = EST.estimate(ask, 100_000)
    assert 1 <= est.tokens <= MAX_ESTIMATE
    assert isinstance(est.basis, str) and est.basis


def test_the_decision_uses_the_estimate(default_router: Router) -> None:
    """Cost, latency and context fit follow the estimate: a 5,000-word story costs more than
    a one-word answer and rules out models that cannot write that much."""
    long = default_router.route("Write a 5,000-word story about a dragon", strategy="cost")
    short = default_router.route("Write one word about a dragon", strategy="cost")
    assert long.output_tokens > 6000 and short.output_tokens < 10
    assert "output ~6,670 tokens (asked for 5,000 words)" in long.reason
    by_model = {c.model: c for c in long.candidates}
    short_by = {c.model: c for c in short.candidates}
    assert by_model["gpt-4o"].estimated_cost_usd > 10 * short_by["gpt-4o"].estimated_cost_usd
    assert by_model["gpt-4o"].estimated_latency_ms > short_by["gpt-4o"].estimated_latency_ms
    huge = default_router.route("Write a 60,000-word novella")
    reasons = {c.model: c.rejected_reason for c in huge.candidates}
    assert reasons["gpt-4o"].startswith("max output 80003 tokens > model limit")
    # max_output_tokens is the room a model must have, whatever the expected length
    d = default_router.route("Answer in one word: is water wet?",
                             constraints=Constraints(max_output_tokens=70000))
    assert d.output_tokens < 10
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["gpt-4o"] == "max output 70000 tokens > model limit 16384"
