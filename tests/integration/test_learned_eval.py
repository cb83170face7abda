"""Integration: train + evaluate through the server's Router, and the CLI commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from routecore.learned.evaluate import evaluate


def _data_dir() -> Path:
    env = os.environ.get("ROUTECORE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"


def _synthetic(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            code = i % 2 == 1
            prompt = (f"Write a python function def f{i}(xs): return sorted xs {i}" if code
                      else f"Who was the president of country number {i} in the year {1900 + i}?")
            q = [0.9, 0.2] if code else [0.8, 0.8]
            fh.write(json.dumps({"id": f"{seed}-{i}", "prompt": prompt,
                                 "source": "code" if code else "trivia",
                                 "scores": {"big": float(rng.random() < q[0]),
                                            "small": float(rng.random() < q[1])},
                                 "costs": {"big": 1e-3, "small": 1e-4}}) + "\n")
    return path


def test_evaluate_synthetic_through_router(tmp_path: Path) -> None:
    """On two task families the Router-driven curve beats both single models' area."""
    tr, te = _synthetic(tmp_path / "tr.jsonl", 200, 0), _synthetic(tmp_path / "te.jsonl", 60, 1)
    res = evaluate([tr], [te], settings=11, decisions_out=tmp_path / "dec.jsonl",
                   plot=tmp_path / "curve.png", dim=256)
    assert res["path"] == "router"
    assert res["aiq"] > res["baselines"]["random"]["aiq"] + 0.1 and len(res["curve"]) == 11
    assert res["cost_ratio_at_best"] is not None and res["cost_ratio_at_best"] < 0.8
    lines = (tmp_path / "dec.jsonl").read_text().splitlines()
    assert len(lines) == 11 * 60 and set(json.loads(lines[0])) == {"setting", "id", "model"}
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_cli_train_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore train` writes an artifact with a data hash; `routecore eval --json` scores."""
    from routecore.cli import main

    tr, te = _synthetic(tmp_path / "tr.jsonl", 80, 0), _synthetic(tmp_path / "te.jsonl", 20, 1)
    assert main(["train", "--data", str(tr), "--out", str(tmp_path / "art"), "--dim", "256",
                 "--quiet"]) == 0
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["data_sha256"]["tr.jsonl"] and manifest["models"] == ["big", "small"]
    capsys.readouterr()
    assert main(["eval", "--train", str(tr), "--test", str(te), "--json", "--settings", "5",
                 "--dim", "256"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"aiq", "quality_max", "cost_ratio_at_best", "curve", "baselines"} <= set(out)


@pytest.mark.skipif(not (_data_dir() / "llmrouter.train.jsonl").is_file(),
                    reason="shared routing data not present")
def test_real_data_subsample_beats_single_models(tmp_path: Path) -> None:
    """On a real-data subsample the learned router's aiq beats the random baseline's."""
    from routecore.learned.data import load_records

    ds = load_records([_data_dir() / "llmrouter.train.jsonl"])
    perm = np.random.default_rng(0).permutation(len(ds))
    for name, idx in (("tr", perm[:1200]), ("te", perm[1200:1400])):
        sub = ds.subset(idx)
        with (tmp_path / f"{name}.jsonl").open("w") as fh:
            for i in range(len(sub)):
                fh.write(json.dumps({"id": sub.ids[i], "prompt": sub.prompts[i],
                                     "source": sub.sources[i],
                                     "scores": dict(zip(sub.models, sub.scores[i].tolist(), strict=False)),
                                     "costs": dict(zip(sub.models, sub.costs[i].tolist(), strict=False))})
                         + "\n")
    res = evaluate([tmp_path / "tr.jsonl"], [tmp_path / "te.jsonl"], settings=11, dim=1024)
    assert res["aiq"] > res["baselines"]["random"]["aiq"] + 0.05
    assert res["quality_max"] > res["baselines"]["best_single"]["quality"] - 0.02
