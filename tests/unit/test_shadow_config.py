"""The `shadow` section: bad, huge and hostile values are refused naming the exact field, in
the Completer's settings, `routecore check-config` and the server."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from routecore.calling.completion import parse_settings
from routecore.cli import main
from routecore.config import parse_config
from routecore.errors import ConfigError

_RAW: dict[str, Any] = yaml.safe_load(
    resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))
GOOD = {"model": "gpt-4o", "share": 0.05, "judge": "gpt-4o-mini", "max_usd_per_day": 5}


def _problems(shadow: Any, source: str = "<test>") -> list[str]:
    raw = copy.deepcopy(_RAW)
    raw["shadow"] = shadow
    with pytest.raises(ConfigError) as info:
        parse_settings(parse_config(raw, source))
    return info.value.problems


def test_good_section_parses() -> None:
    """A complete section gives its settings; no section leaves shadow off."""
    raw = copy.deepcopy(_RAW)
    assert parse_settings(parse_config(raw)).shadow is None
    raw["shadow"] = dict(GOOD, concurrency=2, queue_size=10, timeout_s=5)
    s = parse_settings(parse_config(raw)).shadow
    assert s is not None and (s.model, s.share, s.judge, s.max_usd_per_day) == (
        "gpt-4o", 0.05, "gpt-4o-mini", 5.0)
    assert (s.mode, s.concurrency, s.queue_size, s.timeout_s) == ("model", 2, 10, 5.0)


@pytest.mark.parametrize(("change", "expected"), [
    ({"share": 1.5}, "shadow.share: must be <= 1"),
    ({"share": -0.1}, "shadow.share: must be >= 0"),
    ({"share": "lots"}, "shadow.share: must be a float, got str"),
    ({"share": True}, "shadow.share: must be a float, got a bool"),
    ({"share": None}, "shadow.share: is required"),
    ({"model": "gpt-9"}, "shadow.model: unknown model 'gpt-9'"),
    ({"model": "x" * 100_000}, "shadow.model: unknown model 'xxxxxxxx"),
    ({"model": ["gpt-4o"]}, "shadow.model: must be a str, got list"),
    ({"judge": "oracle"}, "shadow.judge: unknown model 'oracle'"),
    ({"max_usd_per_day": -1}, "shadow.max_usd_per_day: must be >= 0"),
    ({"max_usd_per_day": None}, "shadow.max_usd_per_day: is required"),
    ({"concurrency": 0}, "shadow.concurrency: must be >= 1"),
    ({"concurrency": 10**9}, "shadow.concurrency: must be <= 256"),
    ({"queue_size": 10**12}, "shadow.queue_size: must be <= 1e+06"),
    ({"timeout_s": 0}, "shadow.timeout_s: must be >= 0.1"),
    ({"sharre": 0.1}, "shadow.sharre: unknown field (allowed: concurrency, judge,"),
    ({"router": "candidate.yaml"}, "shadow: set model or router, not both"),
])
def test_hostile_values_name_the_field(change: dict[str, Any], expected: str) -> None:
    """Each bad value is refused with a message naming shadow.<field> (and huge values are
    cut, not echoed whole)."""
    problems = _problems({**GOOD, **change})
    assert any(p.startswith(expected) for p in problems), problems
    assert all(len(p) < 400 for p in problems)


def test_model_or_router_is_required() -> None:
    """A section with neither a model nor a router says which keys to set; a non-mapping is
    refused."""
    (p,) = _problems({"share": 0.1, "max_usd_per_day": 1})
    assert p.startswith("shadow.model: is required (or shadow.router")
    assert _problems("yes") == ["shadow: must be a mapping"]
    assert _problems({}) == ["shadow: is empty (set model or router, share and max_usd_per_day)"]


def test_candidate_router_config_is_checked(tmp_path: Path) -> None:
    """shadow.router: a missing file, an invalid candidate config, or one with models this
    config does not have is refused naming shadow.router; a good one builds its router."""
    base = {"share": 0.1, "max_usd_per_day": 1}
    (p,) = _problems({**base, "router": str(tmp_path / "nope.yaml")})
    assert p.startswith("shadow.router: ") and "cannot read" in p
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**_RAW, "routing": {"default_strategy": "vibes"}}))
    (p,) = _problems({**base, "router": str(bad)})
    assert p.startswith("shadow.router: ") and "routing.default_strategy" in p
    alien = copy.deepcopy(_RAW)
    alien["models"]["made-up-model"] = copy.deepcopy(alien["models"]["gpt-4o"])
    (tmp_path / "alien.yaml").write_text(yaml.safe_dump(alien))
    (p,) = _problems({**base, "router": "alien.yaml"}, source=str(tmp_path / "main.yaml"))
    assert p.startswith("shadow.router: ") and "'made-up-model'" in p
    (tmp_path / "good.yaml").write_text(yaml.safe_dump({**_RAW, "router_version": "cand"}))
    raw = copy.deepcopy(_RAW)
    raw["shadow"] = {**base, "router": "good.yaml"}  # relative to the main config file
    s = parse_settings(parse_config(raw, str(tmp_path / "main.yaml"))).shadow
    assert s is not None and s.mode == "router" and s.candidate is not None
    assert s.candidate.version == "cand"


def test_check_config_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore check-config` fails on a bad shadow section and prints the field."""
    raw = copy.deepcopy(_RAW)
    raw["shadow"] = {**GOOD, "share": 2}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(path)]) != 0
    assert "shadow.share: must be <= 1" in capsys.readouterr().err
