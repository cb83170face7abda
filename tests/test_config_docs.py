"""docs/config.md is generated from the config validator and cannot drift from it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs",
                                                  ROOT / "scripts" / "gen_config_docs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def schema(gen: ModuleType) -> Any:
    return gen.read_schema()


def test_config_reference_matches_the_validator(gen: ModuleType, schema: Any) -> None:
    """Every key the validator reads has a meaning, no meaning is stale, and docs/config.md
    is exactly what the generator renders (else: python scripts/gen_config_docs.py)."""
    meanings = gen.load_meanings()
    assert gen.problems(schema, meanings) == []
    assert "server.http_port" in schema.keys and "budgets.tenants.<name>.usd_per_day" in schema.keys
    text = gen.render(schema, meanings)
    assert (ROOT / "docs" / "config.md").read_text("utf-8") == text, \
        "docs/config.md is stale: run python scripts/gen_config_docs.py"


def test_a_new_key_without_a_meaning_is_named(gen: ModuleType, schema: Any) -> None:
    """A key the validator starts reading fails the check, naming the one line to add."""
    meanings = gen.load_meanings()
    del meanings["server.http_port"]
    assert gen.problems(schema, meanings) == [
        "docs/config_meanings.yaml: add a line  server.http_port: <what it means>"]
