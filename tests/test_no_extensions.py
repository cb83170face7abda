"""The unit suite also passes on the pure-Python twins (ROUTECORE_NO_EXTENSIONS=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_unit_suite_on_pure_python_twins() -> None:
    """Every unit test passes when the compiled core is switched off."""
    if os.environ.get("ROUTECORE_NO_EXTENSIONS") == "1":
        pytest.skip("already running on the pure-Python twins")
    env = {**os.environ, "ROUTECORE_NO_EXTENSIONS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit", "-q", "-x", "-p", "no:cacheprovider",
         "-m", "not slow"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    check = subprocess.run(
        [sys.executable, "-c", "from routecore import _fast; from routecore.routing import tokens; "
         "assert _fast.count_tokens is _fast.count_tokensPy; print('pure')"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.stdout.strip() == "pure", check.stderr
