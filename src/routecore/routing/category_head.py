"""The trained category head: which built-in category a prompt belongs to.

A linear softmax model over three views of a prompt, concatenated:
the static sentence embedding of its ask (routing.embedding; the first 1,500
and last 500 characters, where the ask sits), the hashed n-gram vector of
routing.features (at `hash_dim`) and the scalar cues (standardised). It is
trained offline by scripts/train_category_head.py on openly licensed labelled
instruction data (never on the evaluation prompts) and shipped as
routecore/data/category-head.npz, whose `meta` names the sources, their
licences and the training accuracy. Classifier mode `trained` uses it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore.errors import InvalidRequest

__all__ = ["HEAD_FILE", "CategoryHead", "ask_window"]

F32 = npt.NDArray[np.float32]
HEAD_FILE = "category-head.npz"
_HEAD, _TAIL = 1500, 500


def ask_window(text: str) -> str:
    """The part of a prompt the embedding reads: all of it up to 2,000 characters,
    else its first 1,500 and last 500 (instructions open or close a prompt)."""
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + "\n" + text[-_TAIL:]


@dataclass(frozen=True, slots=True)
class CategoryHead:
    """Weights of the head: logits = w @ features + b, over `categories`."""

    categories: tuple[str, ...]
    w: F32  # float32[len(categories), emb_dim + hash_dim + n_scalars]
    b: F32  # float32[len(categories)]
    emb_dim: int
    hash_dim: int
    scalar_mean: F32
    scalar_scale: F32
    meta: dict[str, Any]

    @classmethod
    def shipped(cls) -> CategoryHead:
        """The head shipped as package data (loaded once per process)."""
        return _shipped()

    @classmethod
    def load(cls, path: str | Path) -> CategoryHead:
        """Read a head written by `save`; raises InvalidRequest if it is malformed."""
        with np.load(path, allow_pickle=False) as z:
            return cls._from_npz(z, str(path))

    @classmethod
    def _from_npz(cls, z: Any, where: str) -> CategoryHead:
        try:
            cats = tuple(str(c) for c in z["categories"].tolist())
            w = np.ascontiguousarray(z["w"], dtype=np.float32)
            b = np.ascontiguousarray(z["b"], dtype=np.float32)
            dims = z["dims"].tolist()
            mean = np.ascontiguousarray(z["scalar_mean"], dtype=np.float32)
            scale = np.ascontiguousarray(z["scalar_scale"], dtype=np.float32)
            meta = json.loads(str(z["meta"]))
        except (KeyError, ValueError) as exc:
            raise InvalidRequest(f"{where}: not a category head ({exc})") from None
        emb_dim, hash_dim = int(dims[0]), int(dims[1])
        d = emb_dim + hash_dim + mean.shape[0]
        if (w.shape != (len(cats), d) or b.shape != (len(cats),) or scale.shape != mean.shape
                or not (np.isfinite(w).all() and np.isfinite(b).all()) or (scale <= 0).any()):
            raise InvalidRequest(f"{where}: category head arrays do not fit together")
        return cls(cats, w, b, emb_dim, hash_dim, mean, scale, meta)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path, categories=np.array(self.categories), w=self.w, b=self.b,
            dims=np.array([self.emb_dim, self.hash_dim]), scalar_mean=self.scalar_mean,
            scalar_scale=self.scalar_scale, meta=np.array(json.dumps(self.meta, sort_keys=True)))

    def features(self, emb: F32, hashed: F32, scalars: F32) -> F32:
        """The head's input vector for one prompt (or rows of prompts, 2-D)."""
        z = (scalars - self.scalar_mean) / self.scalar_scale
        out: F32 = np.concatenate([emb, hashed, z.astype(np.float32)], axis=-1)
        return out

    def logits(self, x: F32) -> F32:
        out: F32 = x @ self.w.T + self.b
        return out


@functools.cache
def _shipped() -> CategoryHead:
    path = resources.files("routecore").joinpath("data", HEAD_FILE)
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return CategoryHead._from_npz(z, f"routecore/data/{HEAD_FILE}")
