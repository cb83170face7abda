"""Prompt compression (routing/compress.py): budget, order, what is never touched, config."""

from __future__ import annotations

import math
import re
from importlib import resources
from typing import Any

import pytest
import yaml

from routecore.config import parse_config
from routecore.domain import CompressSpec, Message, RouteRequest
from routecore.errors import ConfigError, InvalidRequest
from routecore.routing.compress import CompressConfig, Compressor, question_start
from routecore.routing.router import Router
from routecore.routing.tokens import count_chat_tokens, count_tokens

FILLER = [
    "The river town held a market every Saturday morning",
    "Bakers sold rye bread and honey cakes to travellers",
    "A new bridge was built over the river in the spring",
    "The mayor gave a speech about road repairs",
    "Children played football in the square after school",
    "The library extended its opening hours in winter",
    "Farmers brought apples, pears and plums from the hills",
    "A choir sang in the old church on Sundays",
]
NEEDLE = "The Eiffel Tower in Paris is 330 metres tall."
QUESTION = "How tall is the Eiffel Tower in Paris?"


def numbered(n: int, needle_at: int | None = None) -> str:
    """n numbered filler sentences (one long line), the needle inserted at `needle_at`."""
    out = [f"{FILLER[i % len(FILLER)]} (fact {i})." for i in range(n)]
    if needle_at is not None:
        out.insert(needle_at, NEEDLE)
    return " ".join(out)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_config(None)


def _route(router: Router, **kw: Any) -> Any:
    return router.route(RouteRequest(**kw))


def test_budget_is_respected_and_counted(router: Router) -> None:
    """With max_input_tokens the compressed prompt fits the budget, and the decision's
    input_tokens is the compressed prompt's count, the saving its difference."""
    prompt = numbered(120, 60) + "\n\n" + QUESTION
    before = count_tokens(prompt)
    d = _route(router, prompt=prompt, compress=CompressSpec(max_input_tokens=300))
    c = d.compression
    assert c is not None and c.input_tokens_before == before
    assert d.input_tokens == c.input_tokens == count_tokens(c.prompt) <= 300
    assert c.tokens_saved == before - d.input_tokens > before // 2
    assert 0 < c.chunks_dropped < c.chunks


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.9])
def test_target_ratio_keeps_that_share(router: Router, ratio: float) -> None:
    """target_ratio r keeps at most floor(r * tokens) input tokens."""
    prompt = numbered(150, 20) + "\n\n" + QUESTION
    before = count_tokens(prompt)
    d = _route(router, prompt=prompt, compress=CompressSpec(target_ratio=ratio))
    assert d.compression is not None
    assert d.input_tokens <= math.floor(ratio * before)


def test_order_is_kept_and_the_relevant_sentence_survives(router: Router) -> None:
    """Kept sentences stay in their original order, and the one the question is about is
    among them even at a fifth of the tokens."""
    prompt = numbered(80, 41) + "\n\n" + QUESTION
    c = _route(router, prompt=prompt, compress=CompressSpec(target_ratio=0.2)).compression
    assert c is not None
    facts = [int(m) for m in re.findall(r"\(fact (\d+)\)", c.prompt)]
    assert facts == sorted(facts) and len(facts) < 80
    assert NEEDLE in c.prompt
    assert c.prompt.index(NEEDLE) < c.prompt.index(QUESTION)


def test_question_and_answer_options_are_untouched(router: Router) -> None:
    """The final question sentence and the short option lines after it are kept verbatim."""
    tail = ("By saying this the author meant that the town was\n\nOptions:\nA. small\n"
            "B. busy\nC. quiet\nD. old\nAnswer:")
    prompt = numbered(100) + " " + tail
    c = _route(router, prompt=prompt, compress=CompressSpec(target_ratio=0.3)).compression
    assert c is not None and c.prompt.endswith(tail)


def test_code_blocks_are_untouched(router: Router) -> None:
    """A fenced code block in the context is kept whole even when the budget cannot fit it."""
    code = "```python\n" + "\n".join(f"x{i} = {i} * 2  # step {i}" for i in range(40)) + "\n```\n"
    prompt = numbered(60) + "\n\n" + code + "\n" + numbered(60) + "\n\n" + QUESTION
    c = _route(router, prompt=prompt, compress=CompressSpec(max_input_tokens=50)).compression
    assert c is not None and code in c.prompt and c.prompt.endswith(QUESTION)
    assert "(fact" not in c.prompt  # everything else had to go


def test_system_prompt_and_last_question_are_untouched_in_a_chat(router: Router) -> None:
    """In a chat the system message is kept verbatim, earlier turns are compressed (a turn
    left empty is dropped), and the last user turn's question survives."""
    system = "You are a careful assistant. " + numbered(30)
    msgs = (Message("system", system), Message("user", numbered(80, 10)),
            Message("assistant", numbered(80)), Message("user", numbered(40) + "\n\n" + QUESTION))
    d = _route(router, messages=msgs, compress=CompressSpec(target_ratio=0.4))
    c = d.compression
    assert c is not None and not c.prompt
    assert c.messages[0] == Message("system", system)
    assert c.messages[-1].role == "user" and c.messages[-1].content.endswith(QUESTION)
    assert d.input_tokens == count_chat_tokens(c.messages) < count_chat_tokens(msgs)
    assert all(m.content.strip() for m in c.messages)


def test_short_prompts_are_left_alone(router: Router) -> None:
    """A prompt already within budget, or shorter than min_input_tokens, is not compressed, and
    compressing a compressed prompt to the same budget changes nothing (idempotent)."""
    short = _route(router, prompt=QUESTION, compress=CompressSpec(target_ratio=0.1))
    assert short.compression is None
    assert short.input_tokens == _route(router, prompt=QUESTION).input_tokens
    long_prompt = numbered(100) + "\n\n" + QUESTION
    once = _route(router, prompt=long_prompt, compress=CompressSpec(max_input_tokens=400))
    assert once.compression is not None
    again = _route(router, prompt=once.compression.prompt,
                   compress=CompressSpec(max_input_tokens=400))
    assert again.compression is None and again.input_tokens == once.input_tokens


def test_keep_all_and_off_switch(router: Router) -> None:
    """target_ratio 1 is compression off, and no setting at all compresses nothing."""
    prompt = numbered(100) + "\n\n" + QUESTION
    assert _route(router, prompt=prompt, compress=CompressSpec(target_ratio=1.0)).compression \
        is None
    assert _route(router, prompt=prompt).compression is None


def test_whitespace_and_empty_turns(router: Router) -> None:
    """Whitespace-only context is dropped harmlessly; empty and whitespace prompts are refused
    as before; an empty assistant turn is kept as it was."""
    prompt = ("   \n\n\t" * 2000) + numbered(60) + "\n\n" + QUESTION
    c = _route(router, prompt=prompt, compress=CompressSpec(target_ratio=0.3)).compression
    assert c is not None and c.prompt.endswith(QUESTION)
    for bad in ("", "   \n\t  "):
        with pytest.raises(InvalidRequest, match="prompt: must not be empty"):
            _route(router, prompt=bad, compress=CompressSpec(target_ratio=0.5))
    msgs = (Message("user", numbered(100)), Message("assistant", ""), Message("user", QUESTION))
    c = _route(router, messages=msgs, compress=CompressSpec(target_ratio=0.3)).compression
    assert c is not None and Message("assistant", "") in c.messages


def test_huge_prompt(router: Router) -> None:
    """A prompt of a million characters compresses to the budget with the question kept."""
    prompt = numbered(16_000, 8_000) + "\n\n" + QUESTION
    assert len(prompt) > 1_000_000
    d = _route(router, prompt=prompt, compress=CompressSpec(max_input_tokens=2_000))
    assert d.compression is not None and d.input_tokens <= 2_000
    assert d.compression.prompt.endswith(QUESTION) and NEEDLE in d.compression.prompt


def test_unicode_context(router: Router) -> None:
    """CJK sentences (ended by the ideographic full stop), accents and emoji compress into
    whole sentences, the question intact."""
    ctx = "".join(f"第{i}天\uff0c我们在河边散步\uff0c看到了很多鸟。" for i in range(200))
    ctx += " Café crème brûlée 😀 naïve façade. " * 50
    question = "埃菲尔铁塔有多高\uff1f"
    c = _route(router, prompt=ctx + "\n\n" + question,
               compress=CompressSpec(target_ratio=0.3)).compression
    assert c is not None and c.prompt.endswith(question)
    body = c.prompt[: -len(question)].rstrip()
    assert body.endswith(("。", ". ", "."))  # whole sentences only
    assert all(part in ctx for part in body.split("。") if part)


def test_category_config_applies_and_a_request_overrides_it() -> None:
    """compress.categories.<name> compresses that category's prompts; a request's own
    setting (target_ratio 1: off) wins."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    router = Router.from_config(None)
    prompt = numbered(100) + "\n\n" + QUESTION
    category = router.route(prompt).category
    raw["compress"] = {"categories": {category: {"max_input_tokens": 200}}}
    configured = Router.from_config(parse_config(raw))
    d = configured.route(prompt)
    assert d.compression is not None and d.input_tokens <= 200
    off = configured.route(RouteRequest(prompt=prompt, compress=CompressSpec(target_ratio=1.0)))
    assert off.compression is None
    raw["compress"]["min_input_tokens"] = 10_000
    assert Router.from_config(parse_config(raw)).route(prompt).compression is None


@pytest.mark.parametrize(("section", "needle"), [
    ({"categories": {"qa": {"target_ratio": 1.5}}}, "compress.categories.qa.target_ratio: must be <= 1"),
    ({"categories": {"qa": {"target_ratio": 0}}}, "compress.categories.qa.target_ratio: must be > 0"),
    ({"categories": {"qa": {"max_input_tokens": 0}}},
     "compress.categories.qa.max_input_tokens: must be >= 1"),
    ({"categories": {"qa": {"target_ratio": 0.5, "max_input_tokens": 9}}},
     "compress.categories.qa: give target_ratio or max_input_tokens"),
    ({"categories": {"qa": {}}}, "compress.categories.qa: give target_ratio or max_input_tokens"),
    ({"categories": {"nope": {"target_ratio": 0.5}}}, "compress.categories.nope: unknown category"),
    ({"categories": {"qa": {"ratio": 0.5}}}, "compress.categories.qa.ratio: unknown field"),
    ({"chunk_chars": 2}, "compress.chunk_chars: must be >= 16"),
    ({"keep_last_turn": "yes"}, "compress.keep_last_turn: must be a bool"),
    ({"extra": 1}, "compress.extra: unknown field"),
])
def test_config_errors_name_the_field(section: dict[str, Any], needle: str) -> None:
    """A bad compress section is a ConfigError naming the exact field."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["compress"] = section
    with pytest.raises(ConfigError) as info:
        Router.from_config(parse_config(raw))
    assert needle in str(info.value)


@pytest.mark.parametrize(("spec", "needle"), [
    (CompressSpec(target_ratio=0.0), "compress.target_ratio: must be in (0, 1]"),
    (CompressSpec(target_ratio=-0.5), "compress.target_ratio: must be in (0, 1]"),
    (CompressSpec(target_ratio=1.01), "compress.target_ratio: must be in (0, 1]"),
    (CompressSpec(target_ratio=math.nan), "compress.target_ratio: must be in (0, 1]"),
    (CompressSpec(target_ratio=math.inf), "compress.target_ratio: must be in (0, 1]"),
    (CompressSpec(target_ratio=0.5, max_input_tokens=10), "compress: give target_ratio or "
                                                          "max_input_tokens, not both"),
    (CompressSpec(), "compress: give target_ratio or max_input_tokens"),
    (CompressSpec(max_input_tokens=0), "compress.max_input_tokens: must be an integer in [1, "),
    (CompressSpec(max_input_tokens=-3), "compress.max_input_tokens: must be an integer in [1, "),
    (CompressSpec(max_input_tokens=10**12), "compress.max_input_tokens: must be an integer in"),
])
def test_bad_request_settings_are_refused(router: Router, spec: CompressSpec, needle: str) -> None:
    """Out-of-range, non-finite, both or neither settings are InvalidRequest naming the field,
    even on a prompt too short to compress."""
    with pytest.raises(InvalidRequest) as info:
        _route(router, prompt="hi", compress=spec)
    assert needle in info.value.message


def test_question_start_rules() -> None:
    """The question is the last long line's question sentence (or last sentence) with the
    short lines after it; a question on its own short lines stands alone; a turn of short
    lines is all question; a trailing code block goes with the prose before it."""
    long_ctx = numbered(10)
    t = long_ctx + " What does the mayor want? Answer in one word."
    assert t[question_start(t):] == "What does the mayor want? Answer in one word."
    t = long_ctx + " The town is best described as\nA. small\nB. busy\nAnswer:"
    assert t[question_start(t):] == "The town is best described as\nA. small\nB. busy\nAnswer:"
    t = long_ctx + "\n\n" + QUESTION + "\nBe brief."
    assert t[question_start(t):] == QUESTION + "\nBe brief."
    assert question_start("Line one.\nLine two?\n") == 0
    t = long_ctx + "\n\nFix this:\n```py\nprint(1)\n```\n"
    assert t[question_start(t):] == "Bakers sold rye bread and honey cakes to travellers " \
        "(fact 9).\n\nFix this:\n```py\nprint(1)\n```\n"
    t = long_ctx + " Now fix the bug below.\n```py\nprint(1)\n```"
    assert t[question_start(t):] == "Now fix the bug below.\n```py\nprint(1)\n```"


def test_a_question_before_a_long_instruction_or_many_options_is_kept(router: Router) -> None:
    """The question survives when a long line without a question follows it, or more option
    lines than the tail takes (both used to leave only the last sentence or last 8 lines)."""
    instruction = "Please be thorough and precise, consider every detail above and cite the " \
        "numbers of the facts you use. " * 3
    options = "\n".join(f"({chr(65 + i)}) {i * 100} metres" for i in range(10)) + "\nAnswer:"
    for prompt in (numbered(100) + "\n\n" + QUESTION + "\n" + instruction,
                   numbered(100) + "\n\n" + QUESTION + "\n" + options,
                   numbered(100) + " " + QUESTION + "\n" + options):
        assert QUESTION in prompt[question_start(prompt):]
        for spec in (CompressSpec(target_ratio=0.1), CompressSpec(max_input_tokens=1)):
            c = _route(router, prompt=prompt, compress=spec).compression
            assert c is not None and QUESTION in c.prompt
            assert c.prompt.endswith(prompt[prompt.index(QUESTION):])


def test_keep_last_turn_compresses_only_earlier_turns() -> None:
    """keep_last_turn: the last user turn is kept whole, earlier turns are compressed."""
    comp = Compressor(CompressConfig(keep_last_turn=True))
    last = numbered(60) + "\n\n" + QUESTION
    msgs = (Message("user", numbered(200)), Message("assistant", "Noted."), Message("user", last))
    c = comp.compress(RouteRequest(messages=msgs, compress=CompressSpec(target_ratio=0.5)), "qa")
    assert c is not None and c.messages[-1] == Message("user", last)
    assert len(c.messages[0].content) < len(msgs[0].content)
