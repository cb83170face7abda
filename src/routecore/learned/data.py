"""Routing outcome records: load and validate the training JSONL schema.

One line per prompt::

    {"id": "...", "prompt": "...", "source": "mmlu",
     "scores": {"model-a": 1.0, ...}, "costs": {"model-a": 0.00021, ...}}

`scores` are in [0, 1], `costs` are USD >= 0 and every record names the same
models. Every problem is reported as ``file:line: field: message``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore.errors import InvalidRequest

FloatArray = npt.NDArray[np.float64]


class DataError(InvalidRequest):
    """A training/evaluation file is unreadable or violates the record schema."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """Records as parallel arrays; `scores[i, j]`/`costs[i, j]` are prompt i on model j."""

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    sources: tuple[str, ...]
    models: tuple[str, ...]
    scores: FloatArray
    costs: FloatArray

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | npt.NDArray[np.int64]) -> Dataset:
        """The records at `index`, in that order."""
        idx = np.asarray(index, dtype=np.int64)
        return Dataset(
            ids=tuple(self.ids[i] for i in idx),
            prompts=tuple(self.prompts[i] for i in idx),
            sources=tuple(self.sources[i] for i in idx),
            models=self.models,
            scores=self.scores[idx],
            costs=self.costs[idx],
        )


def _number(value: Any, where: str, lo: float, hi: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
        rng = f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
        raise DataError(f"{where}: must be {rng}, got {value!r}")
    return v


def parse_record(raw: Any, where: str, models: Sequence[str] | None) -> dict[str, Any]:
    """Validate one decoded JSON record; `where` is ``file:line`` for messages."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: a record must be a JSON object")
    for key in ("id", "prompt"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise DataError(f"{where}: {key}: must be a non-empty string")
    source = raw.get("source", "")
    if not isinstance(source, str):
        raise DataError(f"{where}: source: must be a string")
    out: dict[str, Any] = {"id": raw["id"], "prompt": raw["prompt"], "source": source}
    for key, hi in (("scores", 1.0), ("costs", None)):
        node = raw.get(key)
        if not isinstance(node, dict) or not node:
            raise DataError(f"{where}: {key}: must be a non-empty object of model -> number")
        if models is not None:
            missing = [m for m in models if m not in node]
            extra = [m for m in node if m not in models]
            if missing:
                raise DataError(f"{where}: {key}.{missing[0]}: missing (every record needs "
                                "every model)")
            if extra:
                raise DataError(f"{where}: {key}.{extra[0]}: unknown model (not in the first "
                                "record)")
        out[key] = {str(m): _number(v, f"{where}: {key}.{m}", 0.0, hi) for m, v in node.items()}
    if set(out["scores"]) != set(out["costs"]):
        diff = sorted(set(out["scores"]) ^ set(out["costs"]))
        raise DataError(f"{where}: costs.{diff[0]}: scores and costs must name the same models")
    return out


def load_records(paths: Iterable[str | Path], *, partial: bool = False) -> Dataset:
    """Load one or more JSONL files (same models in all) into a `Dataset`.

    With `partial=True` (stored feedback), a record may score only some models;
    the model list is the union and missing entries are NaN.
    """
    paths = list(paths)
    ids: list[str] = []
    prompts: list[str] = []
    sources: list[str] = []
    scores: list[list[float]] = []
    costs: list[list[float]] = []
    models: tuple[str, ...] | None = None
    seen: set[str] = set()
    raws: list[dict[str, Any]] = []
    for path in paths:
        p = Path(path)
        try:
            fh = p.open("r", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{p}: cannot read ({exc.strerror})") from exc
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{p}:{lineno}"
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: invalid JSON ({exc.msg})") from exc
                rec = parse_record(raw, where, None if partial else models)
                if models is None and not partial:
                    models = tuple(sorted(rec["scores"]))
                if rec["id"] in seen:
                    raise DataError(f"{where}: id: duplicate id {rec['id']!r}")
                seen.add(rec["id"])
                ids.append(rec["id"])
                prompts.append(rec["prompt"])
                sources.append(rec["source"])
                raws.append(rec)
    if partial:
        models = tuple(sorted({m for rec in raws for m in rec["scores"]}))
    if models is None or not raws:
        raise DataError(f"{', '.join(str(p) for p in paths)}: no records")
    nan = float("nan")
    for rec in raws:
        scores.append([rec["scores"].get(m, nan) for m in models])
        costs.append([rec["costs"].get(m, nan) for m in models])
    return Dataset(ids=tuple(ids), prompts=tuple(prompts), sources=tuple(sources), models=models,
                   scores=np.asarray(scores, dtype=np.float64),
                   costs=np.asarray(costs, dtype=np.float64))


def data_sha256(paths: Iterable[str | Path]) -> dict[str, str]:
    """SHA-256 of each file's bytes, keyed by file name (recorded in artifacts)."""
    out: dict[str, str] = {}
    for path in paths:
        h = hashlib.sha256()
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out[Path(path).name] = h.hexdigest()
    return out


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL (used by feedback export); returns the count."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def default_data_dir(repo_root: str | Path | None = None) -> Path:
    """Where the shared routing data lives: $ROUTECORE_DATA_DIR or ../shared/data/routing."""
    import os

    env = os.environ.get("ROUTECORE_DATA_DIR")
    if env:
        return Path(env)
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[3]
    return (root / ".." / "shared" / "data" / "routing").resolve()
