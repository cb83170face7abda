"""Every accepted config section does something; numbers are finite; missing keys are warned."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from routecore.cli import main
from routecore.config import load_config, missing_api_keys, parse_config
from routecore.errors import ConfigError

_RAW: dict[str, Any] = yaml.safe_load(
    resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))


def _raw() -> dict[str, Any]:
    return copy.deepcopy(_RAW)


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


def test_unknown_top_level_section_is_named() -> None:
    """A misspelt or invented top-level section is an error naming it and the known ones."""
    raw = _raw()
    raw["resilence"] = {"retry": {"max_attempts": 1}}
    (p,) = _problems(raw)
    assert p.startswith("resilence: unknown section (known: ab, alerts, audit, auth, budgets, "
                        "cache, cascade,")


def test_cache_section_is_validated_by_its_owner() -> None:
    """`cache:` is accepted as a section and its keys are checked, each named by its path."""
    from routecore.calling.completion import parse_settings

    raw = _raw()
    raw["cache"] = {"enabled": True, "semantic": {"threshold": 1.5, "categories": ["nope"]}}
    with pytest.raises(ConfigError) as info:
        parse_settings(parse_config(raw))
    problems = info.value.problems
    assert any(p.startswith("cache.enabled: unknown field") for p in problems)
    assert "cache.semantic.threshold: must be <= 1" in problems
    assert any(p.startswith("cache.semantic.categories[0]: unknown category 'nope'")
               for p in problems)


@pytest.mark.parametrize(("path", "value"), [
    (("routing", "weights", "cost"), float("inf")),
    (("models", "gpt-4o", "price", "input"), float("nan")),
    (("resilience", "retry", "base_delay_ms"), float("inf")),
    (("cascade", "threshold"), float("-inf")),
    (("models", "gpt-4o", "sim", "latency_ms", "p50"), float("inf")),
])
def test_non_finite_numbers_are_rejected_everywhere(path: tuple[str, ...], value: float) -> None:
    """inf/nan anywhere in the config (core or owned sections) is an error at its exact path."""
    raw = _raw()
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    probs = _problems(raw)
    assert f"{'.'.join(path)}: must be a finite number, got {value}" in probs


def test_yaml_inf_in_a_file_is_rejected(tmp_path: Path) -> None:
    """YAML's `.inf` written in a file fails to load, naming the field."""
    text = resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8")
    f = tmp_path / "c.yaml"
    f.write_text(text + "\nresilience: {breaker: {window_s: .inf}}\n")
    with pytest.raises(ConfigError, match=r"resilience\.breaker\.window_s: must be a finite"):
        load_config(f)


def _openai_config() -> dict[str, Any]:
    raw = _raw()
    raw["endpoints"]["openai"] = {"kind": "openai", "base_url": "https://api.openai.com/v1",
                                  "api_key_env": "ROUTECORE_TEST_UNSET_KEY"}
    return raw


def test_check_config_warns_about_an_unset_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """check-config passes but warns when an openai endpoint's key variable is unset."""
    monkeypatch.delenv("ROUTECORE_TEST_UNSET_KEY", raising=False)
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(_openai_config()))
    assert main(["check-config", str(f)]) == 0
    err = capsys.readouterr().err
    assert "warning: endpoints.openai.api_key_env: ROUTECORE_TEST_UNSET_KEY is not set" in err
    monkeypatch.setenv("ROUTECORE_TEST_UNSET_KEY", "sk-test")
    assert main(["check-config", str(f)]) == 0
    assert "warning" not in capsys.readouterr().err


async def test_start_warns_about_an_unset_key(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose anthropic endpoint has no key logs a warning when it starts."""
    from routecore.server.app import App

    monkeypatch.delenv("ROUTECORE_TEST_UNSET_KEY", raising=False)
    raw = _raw()
    raw["endpoints"]["anthropic"] = {"kind": "anthropic", "base_url": "https://api.anthropic.com",
                                     "api_key_env": "ROUTECORE_TEST_UNSET_KEY"}
    cfg = parse_config(raw)
    assert len(missing_api_keys(cfg)) == 1
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    with structlog.testing.capture_logs() as logs:
        await app.start("127.0.0.1", 0)
        await app.stop(0)
    warned = [e for e in logs if e["event"] == "api_key_missing"]
    assert warned and "ROUTECORE_TEST_UNSET_KEY is not set" in warned[0]["problem"]
