"""The routecore command line: route, models, check-config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from routecore.cli import main


def test_route_prints_decision_and_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore route` prints the model, fallbacks, reason and every candidate."""
    assert main(["route", "What is 2+2?"]) == 0
    out = capsys.readouterr().out
    assert "model:" in out and "reason:" in out and "candidates:" in out and "gpt-4o " in out


def test_route_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore route --json` prints a decision with candidates as JSON."""
    assert main(["route", "--json", "--strategy", "quality", "Prove Fermat's little theorem."]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["strategy"] == "quality" and d["candidates"] and d["model"]


def test_route_bad_constraint_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid constraint prints the error naming the field and exits 2."""
    assert main(["route", "--max-cost", "-1", "hi"]) == 2
    assert "constraints.max_cost_usd: must be >= 0" in capsys.readouterr().err


def test_models_lists_registry(capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore models` lists every model with prices."""
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "claude-sonnet-4" in out and "15.00" in out


def test_check_config_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config accepts a valid file and names every invalid field of a bad one."""
    from importlib import resources

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(good)]) == 0
    assert f"ok ({len(raw['models'])} models" in capsys.readouterr().out
    raw["models"]["gpt-4o"]["price"]["input"] = -1
    raw["resilience"] = {"retry": {"max_attempts": -1}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "models.gpt-4o.price.input: must be >= 0" in err
