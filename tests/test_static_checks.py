"""ruff and mypy are part of the suite: a lint or type error fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_ruff_is_clean() -> None:
    """ruff reports no problem in src, tests, bench and scripts."""
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    res = subprocess.run(["ruff", "check", "src", "tests", "bench", "scripts"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.timeout(600)
def test_mypy_is_clean() -> None:
    """mypy --strict (configured in pyproject.toml) reports no error in src/routecore."""
    pytest.importorskip("mypy")
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
