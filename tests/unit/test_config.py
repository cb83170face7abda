"""Config loading and validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from routecore.config import load_config, parse_config
from routecore.errors import ConfigError


def _defaults() -> dict[str, Any]:
    from importlib import resources

    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))
    return raw


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


def test_builtin_defaults_load_and_freeze() -> None:
    """The built-in catalogue validates and its objects are immutable."""
    cfg = load_config(None)
    assert "gpt-4o" in cfg.models and cfg.models["gpt-4o"].price.input == 2.5
    with pytest.raises(AttributeError):
        cfg.models["gpt-4o"].price.input = 0  # type: ignore[misc]


def test_negative_price_names_the_exact_field() -> None:
    """A negative price is reported as models.<name>.price.input: must be >= 0."""
    raw = _defaults()
    raw["models"]["gpt-4o"]["price"]["input"] = -1
    assert "models.gpt-4o.price.input: must be >= 0" in _problems(raw)


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes produce one error listing each field."""
    raw = _defaults()
    raw["models"]["gpt-4o"]["context_window"] = "big"
    raw["models"]["gpt-4o-mini"]["fallbacks"] = ["nope"]
    raw["models"]["codestral"]["capabilities"] = ["telepathy"]
    raw["routing"]["default_strategy"] = "vibes"
    probs = _problems(raw)
    assert "models.gpt-4o.context_window: must be a int, got str" in probs
    assert "models.gpt-4o-mini.fallbacks[0]: unknown model 'nope'" in probs
    assert any(p.startswith("models.codestral.capabilities[0]: unknown capability") for p in probs)
    assert any(p.startswith("routing.default_strategy: must be one of") for p in probs)


def test_unknown_fields_and_missing_required_fields() -> None:
    """Typos in field names and missing required fields are named."""
    raw = _defaults()
    raw["models"]["gpt-4o"]["prize"] = 1
    del raw["models"]["gpt-4o-mini"]["provider"]
    probs = _problems(raw)
    assert any(p.startswith("models.gpt-4o.prize: unknown field") for p in probs)
    assert "models.gpt-4o-mini.provider: is required" in probs


def test_bad_regex_and_quality_range() -> None:
    """Category regexes must compile and qualities lie in [0, 1]."""
    raw = _defaults()
    raw["categories"]["code"]["patterns"] = ["(unclosed"]
    raw["models"]["gpt-4o"]["quality"]["code"] = 1.5
    probs = _problems(raw)
    assert any(p.startswith("categories.code.patterns[0]: invalid regex") for p in probs)
    assert "models.gpt-4o.quality.code: must be <= 1" in probs


def test_unknown_endpoint_and_tier_model() -> None:
    """Deployments must name a configured endpoint and tiers known models."""
    raw = _defaults()
    raw["models"]["gpt-4o"]["deployments"] = [{"endpoint": "azure"}]
    raw["routing"]["complexity_tiers"][0]["models"].append("gpt-9")
    probs = _problems(raw)
    assert "models.gpt-4o.deployments[0].endpoint: unknown endpoint 'azure'" in probs
    assert "routing.complexity_tiers[0].models[4]: unknown model 'gpt-9'" in probs


def test_load_file_errors(tmp_path: Path) -> None:
    """A missing file and invalid YAML are config errors, not tracebacks."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_binary_and_self_referencing_files_are_config_errors(tmp_path: Path) -> None:
    """A file that is not UTF-8, a YAML alias inside itself and nesting deeper than Python's
    stack are config errors naming the file (a reload answered INTERNAL with a traceback)."""
    cases = {"binary.yaml": b"\xff\xfe\x00garbage", "alias.yaml": b"a: &a [*a]\n",
             "deep.yaml": b"models: " + b"[" * 5000 + b"]" * 5000 + b"\n"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ConfigError, match=f"{name}: (not UTF-8|nested too deeply)"):
            load_config(path)


def test_file_round_trip(tmp_path: Path) -> None:
    """A config written to a file loads the same models as the defaults."""
    raw = copy.deepcopy(_defaults())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert set(load_config(path).models) == set(load_config(None).models)


def test_versions_pin_what_is_called_and_charged() -> None:
    """The pinned version's model_id and price become the model's; a bare label is refused."""
    raw = _defaults()
    spec = parse_config(raw).models["gpt-4o"]
    assert (spec.version, spec.model_id) == ("2024-08-06", "gpt-4o-2024-08-06")
    assert all(d.model_id == "gpt-4o-2024-08-06" for d in spec.deployments)
    versions = raw["models"]["gpt-4o"]["versions"]
    assert set(map(str, versions)) == {"2024-08-06", "2024-11-20"}  # YAML dates as names
    raw["models"]["gpt-4o"]["versions"] = {str(k): v for k, v in versions.items()}
    raw["models"]["gpt-4o"]["pinned"] = "2024-11-20"
    raw["models"]["gpt-4o"]["versions"]["2024-11-20"]["price"] = {"input": 1.0, "output": 4.0}
    spec = parse_config(raw).models["gpt-4o"]
    assert (spec.model_id, spec.price.input) == ("gpt-4o-2024-11-20", 1.0)


def test_version_mistakes_name_the_field() -> None:
    """pinned must name a version; version labels and model_ids that bypass the pin are refused."""
    raw = _defaults()
    g = raw["models"]["gpt-4o"]
    g["versions"] = {str(k): v for k, v in g["versions"].items()}
    g["pinned"] = "2099-01-01"
    g["model_id"] = "gpt-4o"
    g["deployments"] = [{"endpoint": "openai", "model_id": "x"}]
    del g["price"]
    raw["models"]["gpt-4.1"]["version"] = "gpt-4.1-2025-04-14"
    raw["models"]["gpt-4.1"]["pinned"] = "v1"
    probs = _problems(raw)
    assert any(p.startswith("models.gpt-4o.pinned: must name a version (one of: 2024-08-06, "
                            "2024-11-20), got '2099-01-01'") for p in probs)
    assert "models.gpt-4o.model_id: comes from the pinned version when the model has versions" \
        in probs
    assert any(p.startswith("models.gpt-4o.deployments[0].model_id:") for p in probs)
    assert "models.gpt-4o.versions.2024-11-20.price: is required (or set the model's price)" \
        in probs and "models.gpt-4o.price: is required" not in probs
    assert any(p.startswith("models.gpt-4.1.version: is not what is called upstream") for p in probs)
    assert "models.gpt-4.1.pinned: needs versions to pin one of" in probs


def test_a_yaml_exponent_read_as_text_gets_a_hint() -> None:
    """YAML 1.1 reads `2.5e0` as a string: the error names the field, shows the value and
    says how to write it, instead of a bare `must be a float, got str` for what looks a
    number."""
    from importlib import resources

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["models"]["gpt-4o"]["price"]["input"] = yaml.safe_load("2.5e0")
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert "models.gpt-4o.price.input: must be a float, got str '2.5e0' (YAML reads an " \
        "exponent without a dot and sign as text: write 1.0e+3)" in str(info.value)
    raw["models"]["gpt-4o"]["price"]["input"] = yaml.safe_load("2.5e+0")
    parse_config(raw)
