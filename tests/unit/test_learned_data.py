"""Unit tests of the outcome record loader routecore.learned.data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routecore.learned.data import DataError, load_records


def _write(path: Path, recs: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


REC = {"id": "a", "prompt": "p", "source": "t", "scores": {"m1": 1.0, "m2": 0.0},
       "costs": {"m1": 0.1, "m2": 0.2}}


def test_loads_records_as_aligned_arrays(tmp_path: Path) -> None:
    """Records load into arrays with columns in sorted model order."""
    ds = load_records([_write(tmp_path / "d.jsonl", [REC, {**REC, "id": "b"}])])
    assert ds.models == ("m1", "m2") and ds.scores.shape == (2, 2)
    assert ds.costs[1, 1] == pytest.approx(0.2)


@pytest.mark.parametrize(("bad", "where"), [
    ({**REC, "scores": {"m1": 1.5, "m2": 0.0}}, ":2: scores.m1: must be [0, 1]"),
    ({**REC, "costs": {"m1": 0.1}}, ":2: costs.m2: missing"),
    ({**REC, "prompt": ""}, ":2: prompt: must be a non-empty string"),
    ({**REC, "id": "a"}, ":2: id: duplicate"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, bad: dict[str, object],
                                         where: str) -> None:
    """A bad record is reported as file:line: field: message."""
    f = _write(tmp_path / "d.jsonl", [REC, {**bad, "id": bad["id"] if bad is not REC else "z"}])
    with pytest.raises(DataError) as ei:
        load_records([f])
    assert f"d.jsonl{where}" in str(ei.value)


def test_invalid_json_is_reported_with_line(tmp_path: Path) -> None:
    """Malformed JSON names the file and line."""
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(REC) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid JSON"):
        load_records([f])


def test_partial_records_fill_missing_models_with_nan(tmp_path: Path) -> None:
    """partial=True accepts one-model records (feedback) and leaves the rest NaN."""
    rec2 = {"id": "b", "prompt": "q", "scores": {"m3": 1.0}, "costs": {"m3": 0.3}}
    ds = load_records([_write(tmp_path / "d.jsonl", [REC, rec2])], partial=True)
    assert ds.models == ("m1", "m2", "m3")
    assert ds.scores[1, 2] == 1.0 and ds.scores[1, 0] != ds.scores[1, 0]
