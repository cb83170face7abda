"""What a new user meets at the command line: --version, a --help that says what routecore
does, help text on every option, choices listed, usage errors instead of tracebacks, and
tables that stay aligned with long model names."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from routecore import __version__
from routecore.cli import build_parser, main
from routecore.domain import STRATEGIES


def _parsers(parser: argparse.ArgumentParser, name: str = "routecore",
             ) -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _parsers(sub, f"{name} {sub_name}")
    return out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore --version` prints the package version."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"routecore {__version__}"


def test_help_says_what_routecore_does(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level help describes the product and shows examples, not import internals."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "which model should answer" in out and "examples:" in out
    assert "import" not in out.lower()


def test_every_option_has_help_text() -> None:
    """Every option and positional of every command carries help text."""
    missing = [f"{name}: {'/'.join(a.option_strings) or a.dest}"
               for name, p in _parsers(build_parser()) for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert missing == []


def test_strategy_choices_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    """--strategy lists its choices in help, and an unknown one is a usage error."""
    with pytest.raises(SystemExit):
        main(["route", "--help"])
    assert "{" + ",".join(STRATEGIES) + "}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["route", "--strategy", "cheapest", "hi"])
    assert bad.value.code == 2 and "invalid choice: 'cheapest'" in capsys.readouterr().err


def test_eval_settings_1_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --settings 1` says what is wrong (no traceback) before reading any data."""
    with pytest.raises(SystemExit) as bad:
        main(["eval", "--train", "x.jsonl", "--test", "y.jsonl", "--settings", "1"])
    err = capsys.readouterr().err
    assert bad.value.code == 2 and "--settings: must be >= 2, got 1" in err
    assert "Traceback" not in err


def test_missing_data_file_is_a_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A data file that does not exist is one line naming it, exit code non-zero."""
    code = main(["eval", "--train", str(tmp_path / "nope.jsonl"),
                 "--test", str(tmp_path / "nope.jsonl"), "--settings", "3"])
    err = capsys.readouterr().err
    assert code != 0 and "nope.jsonl" in err and "Traceback" not in err


def test_candidate_table_aligns_long_model_names(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """With model names longer than the old fixed column, every row's columns still line up."""
    from conftest_complete import _base, model

    raw = dict(_base())
    raw["models"] = {"meta/code-llama-instruct-34b-chat-long": model("a"), "tiny": model("b")}
    raw["endpoints"] = {"sim": {"kind": "simulated"}}
    raw["routing"] = {"default_strategy": "quality"}
    cfg = tmp_path / "long.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["route", "--config", str(cfg), "What is 2+2?"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("candidates:"):].splitlines()[1:]
    ends = {m.end() for line in table for m in [re.search(r"(quality|\d\.\d{3})", line)] if m}
    assert len(table) == 3 and len(ends) == 1, table
    assert main(["models", "--config", str(cfg)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len({re.search(r" \d+\.\d\d ", line).start() for line in rows}) == 1  # type: ignore[union-attr]
