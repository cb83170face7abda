"""The learned router: task posteriors x per-task model quality, per-prompt cost.

What it predicts for a prompt (all vectorized, no loop over training rows):

* task posteriors ``P = softmax(x @ W + b)`` from a multinomial logistic
  regression trained on prompt -> `source` (the task family is a training
  label only; serving sees just the prompt); ``x`` is the prompt's hashed
  feature vector from `routecore.routing.features` (the same one the classifier uses);
* quality ``q = P @ Q + x @ B + sum_t P_t * (sigmoid(o_t + z @ R_t) - sigmoid(o_t))``:
  ``Q[t, m]`` is model m's mean score on task t (shrunk toward its global mean;
  online outcomes update it), ``B`` an optional ridge correction of per-prompt
  residuals (zero when CV says it does not pay); the last term is a per-prompt
  logistic model per task and model (``R``, strongly L2-regularised, fitted
  with the task mean as offset ``o_t = logit(Q[t])``) over ``z``, the hashed
  features and scalar cues of the prompt's final question (the text after its
  last blank line: few-shot prompts end with the real question), so per-prompt
  evidence moves quality away from the task mean only as far as it earned in
  training; training keeps a (task, model) term only where an inner CV on the
  training rows showed it lowers held-out cross-entropy (elsewhere ``R`` is 0),
  and `predict` extracts the final question's features only when one of the
  prompt's likely tasks kept a term (reusing the prompt's own features when the
  prompt is its own final question);
* cost ``c = P @ A + n_chars * (P @ S)``: per task and model, cost is linear
  in the prompt's length.

`choose` maximises ``q - lambda * c / cost_ref`` over eligible models. The one
knob, ``willingness_to_pay`` in [0, 1], maps to lambda through a table
calibrated on the training data so that equal knob steps are roughly equal
steps of mean cost between always-cheapest (0) and best-quality (1).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore.errors import InvalidRequest, NotFound

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_ARRAYS = ("W", "b", "q_sum", "q_cnt", "q_prior", "cost_a", "cost_s", "cost_floor", "B",
           "knob_w", "knob_loglam")
# optional (absent in older artifacts: then no per-prompt term): the per-prompt logistic
# weights R [dim + n_scalars, tasks * models] and the scalar cues' centre and scale
_OPTIONAL = ("R", "z_mu", "z_scale")
ACTIVE_P = 1e-4  # tasks with a smaller posterior skip their per-prompt term,
MAX_ACTIVE = 3  # and so do all but the 3 likeliest (bounded latency; posteriors are peaked)
LOGIT_CLIP = 0.01


def final_question(text: str) -> str:
    """The prompt's last paragraph: the real question after any few-shot examples."""
    s = text.rstrip()
    i = s.rfind("\n\n")
    return s[i + 2:] if i >= 0 else s


def logit_clipped(q: F64) -> F64:
    p = np.clip(q, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    out: F64 = np.log(p / (1.0 - p))
    return out


def sigmoid(z: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-z))
    return out


class Featurizer:
    """Prompt -> the router's input: routecore.routing.features' hashed vector of the prompt."""

    def __init__(self, dim: int) -> None:
        from routecore.routing.features import (  # the project's one feature extractor
            MIN_DIM,
            FeatureExtractor,
        )

        self.dim = dim
        self._fx = FeatureExtractor(dim)
        self._fx_small = FeatureExtractor(MIN_DIM)  # scalar cues only: skips most bucket work

    def __call__(self, text: str, vec: npt.NDArray[np.float32] | None = None) -> F32:
        if vec is None or vec.shape != (self.dim,):
            vec, _ = self._fx.extract(text)
        return np.asarray(vec, dtype=np.float32)

    def extract(self, text: str) -> tuple[F32, F32]:
        """Hashed vector and scalar cues of `text` (one pass)."""
        vec, sc = self._fx.extract(text)
        return np.asarray(vec, dtype=np.float32), np.asarray(sc, dtype=np.float32)

    def scalars(self, text: str) -> F32:
        """Scalar cues of `text` (they do not depend on the hashed vector's size)."""
        return np.asarray(self._fx_small.extract(text)[1], dtype=np.float32)

    def question(self, text: str) -> tuple[F32, F32]:
        """Hashed features and scalar cues of the prompt's final question."""
        return self.extract(final_question(text))


@dataclass(frozen=True, slots=True)
class Knob:
    """willingness_to_pay -> lambda (cost weight in units of `cost_ref`)."""

    w: F64  # increasing in [0, 1]
    loglam: F64  # log(lambda) at each w, non-increasing

    def lam(self, willingness_to_pay: float) -> float:
        w = min(max(float(willingness_to_pay), 0.0), 1.0)
        if w <= 0.0:
            return math.inf
        if w >= 1.0:
            return 0.0
        xs = self.w
        i = min(max(int(np.searchsorted(xs, w)), 1), len(xs) - 1)
        x0, x1 = float(xs[i - 1]), float(xs[i])
        y0, y1 = float(self.loglam[i - 1]), float(self.loglam[i])
        t = (w - x0) / (x1 - x0) if x1 > x0 else 0.0
        return math.exp(y0 + t * (y1 - y0))


def softmax(z: F64) -> F64:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: F64 = e / e.sum(axis=-1, keepdims=True)
    return out


class LearnedRouter:
    """A trained router: `predict` per-model quality and cost, `choose` with the knob."""

    def __init__(self, *, models: tuple[str, ...], tasks: tuple[str, ...], dim: int,
                 arrays: dict[str, npt.NDArray[Any]], manifest: dict[str, Any]) -> None:
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise InvalidRequest(f"learned router: missing arrays {missing}")
        self.models = models
        self.tasks = tasks
        self.dim = dim
        self.manifest = manifest
        self.prior_strength = float(manifest.get("prior_strength", 5.0))
        self.cost_ref = float(manifest["cost_ref"])
        self.W = np.ascontiguousarray(arrays["W"], dtype=np.float32)
        self._WT = np.ascontiguousarray(self.W.T)  # [tasks, dim]: a fast gemv
        self.b = np.asarray(arrays["b"], dtype=np.float64)
        self.q_sum = np.asarray(arrays["q_sum"], dtype=np.float64)
        self.q_cnt = np.asarray(arrays["q_cnt"], dtype=np.float64)
        self._base = (self.q_sum, self.q_cnt)  # the artifact's own, before online learning
        self.q_prior = np.asarray(arrays["q_prior"], dtype=np.float64)
        self.cost_a = np.asarray(arrays["cost_a"], dtype=np.float64)
        self.cost_s = np.asarray(arrays["cost_s"], dtype=np.float64)
        self.cost_floor = np.asarray(arrays["cost_floor"], dtype=np.float64)
        B = np.asarray(arrays["B"], dtype=np.float32)
        self.B: F32 | None = np.ascontiguousarray(B) if B.size and np.any(B) else None
        self.knob = Knob(np.asarray(arrays["knob_w"], dtype=np.float64),
                         np.asarray(arrays["knob_loglam"], dtype=np.float64))
        R = np.asarray(arrays.get("R", np.zeros((0, 0))), dtype=np.float32)
        self.R: F32 | None = np.ascontiguousarray(R) if R.size and np.any(R) else None
        # [tasks * models, dim + k]: one task's weights are a contiguous block (a small gemv)
        self._RT: F32 | None = None if self.R is None else np.ascontiguousarray(self.R.T)
        # tasks that kept a per-prompt term (training drops it where an inner CV says it
        # does not help); a prompt whose likely tasks all dropped it needs no question features
        self._task_on: BoolArr = (np.zeros(len(tasks), dtype=bool) if self.R is None else
                                  np.any(self.R != 0, axis=0).reshape(len(tasks), -1).any(axis=1))
        self.z_mu = np.asarray(arrays.get("z_mu", np.zeros(0)), dtype=np.float32)
        self.z_scale = np.asarray(arrays.get("z_scale", np.zeros(0)), dtype=np.float32)
        if self.R is not None and (self.R.shape != (dim + len(self.z_mu), len(tasks) * len(models))
                                   or self.z_scale.shape != self.z_mu.shape):
            raise InvalidRequest(f"learned router: per-prompt weights R {self.R.shape} do not fit "
                                 f"dim {dim}, {len(tasks)} tasks, {len(models)} models")
        self._lock = threading.Lock()
        self._Q = self._task_quality()
        off = logit_clipped(self._Q)
        self._OS = (off, sigmoid(off))  # offsets and their sigmoids, swapped together
        self._QAS = np.hstack([self._Q, self.cost_a, self.cost_s])
        self._featurizer: Featurizer | None = None
        self.n_online = 0

    # -- prediction ------------------------------------------------------------

    @property
    def featurizer(self) -> Featurizer:
        if self._featurizer is None:
            self._featurizer = Featurizer(self.dim)
        return self._featurizer

    def _task_quality(self) -> F64:
        k = self.prior_strength
        q: F64 = (self.q_sum + k * self.q_prior) / (self.q_cnt + k)
        return q

    def features(self, text: str, vec: npt.NDArray[np.float32] | None = None) -> F32:
        """The model's input vector for `text` (`vec`: the prompt's hashed features, if known)."""
        return self.featurizer(text, vec)

    def posteriors(self, x: F32) -> F64:
        """Task-family probabilities for a feature vector (or a batch of them)."""
        z = self._WT @ x if x.ndim == 1 else x @ self.W
        return softmax(z.astype(np.float64) + self.b)

    def question_features(self, text: str) -> F32:
        """``z``: the final question's hashed features and centred, scaled scalar cues."""
        v, sc = self.featurizer.question(text)
        return self.question_z(v, sc)

    def question_z(self, v: F32, sc: F32) -> F32:
        """``z`` from the final question's hashed vector(s) and scalar cues (or batches)."""
        zs = (sc - self.z_mu) * self.z_scale
        return np.concatenate([v, zs.astype(np.float32)], axis=-1)

    def _active(self, p: F64) -> npt.NDArray[np.intp]:
        """Tasks whose per-prompt term applies: among the MAX_ACTIVE likeliest with
        p > ACTIVE_P, those that kept a term (the others' term is zero anyway)."""
        top = np.argsort(p)[-MAX_ACTIVE:]
        act: npt.NDArray[np.intp] = top[(p[top] > ACTIVE_P) & self._task_on[top]]
        return act

    def _delta_one(self, p: F64, z: F32) -> F64:
        """Per-prompt quality correction for one prompt (only tasks with a real posterior)."""
        RT = self._RT
        assert RT is not None
        m = len(self.models)
        act = self._active(p)
        if not len(act):
            return np.zeros(m)
        s = np.stack([RT[t * m:(t + 1) * m] @ z for t in act]).astype(np.float64)
        off_all, soff_all = self._OS
        off, soff = off_all[act], soff_all[act]
        out: F64 = p[act] @ (sigmoid(off + s) - soff)
        return out

    def _delta_batch(self, p: F64, z: F32) -> F64:
        assert self.R is not None
        n, t, m = len(p), len(self.tasks), len(self.models)
        s = (z @ self.R).astype(np.float64).reshape(n, t, m)
        off, soff = self._OS
        # the same tasks as `_delta_one`: the MAX_ACTIVE likeliest with p > ACTIVE_P
        keep = np.zeros_like(p, dtype=bool)
        np.put_along_axis(keep, np.argsort(p, axis=1)[:, -MAX_ACTIVE:], True, axis=1)
        pa = np.where(keep & (p > ACTIVE_P), p, 0.0)
        out: F64 = np.einsum("nt,ntm->nm", pa, sigmoid(off + s) - soff)
        return out

    def predict_x(self, x: F32, n_chars: float | F64, z: F32 | None = None
                  ) -> tuple[F64, F64]:
        """Quality and cost from features; batched when `x` is 2-D (then `n_chars` is 1-D).

        `z`: `question_features` of the prompt(s); without it, no per-prompt term.
        """
        return self._predict_p(self.posteriors(x), x, n_chars, z)

    def _predict_p(self, p: F64, x: F32, n_chars: float | F64, z: F32 | None
                   ) -> tuple[F64, F64]:
        if x.ndim == 1 and self.B is None:
            m = len(self.models)
            qc = p @ self._QAS  # one small product for quality, cost intercept and slope
            q1 = qc[:m]
            if z is not None and self.R is not None:
                q1 = q1 + self._delta_one(p, z)
            c1 = qc[m:2 * m] + float(n_chars) * qc[2 * m:]
            return np.clip(q1, 0.0, 1.0), np.maximum(c1, self.cost_floor)
        q = p @ self._Q
        if self.B is not None:
            q = q + (x @ self.B).astype(np.float64)
        if z is not None and self.R is not None:
            q = q + (self._delta_batch(p, z) if x.ndim == 2 else self._delta_one(p, z))
        n = np.asarray(n_chars, dtype=np.float64)
        if n.ndim:
            n = n[:, None]
        c = p @ self.cost_a + n * (p @ self.cost_s)
        return np.clip(q, 0.0, 1.0), np.maximum(c, self.cost_floor)

    def predict(self, text: str, vec: npt.NDArray[np.float32] | None = None
                ) -> tuple[F64, F64]:
        """Predicted quality in [0, 1] and cost in USD for each of `self.models`.

        The final question's features are extracted only when one of the prompt's likely
        tasks kept a per-prompt term; when the prompt is its own final question (no blank
        line, no trailing whitespace) the prompt's hashed vector is reused for it.
        """
        fz = self.featurizer
        sc: F32 | None = None
        if vec is None or vec.shape != (self.dim,):
            x, sc = fz.extract(text)
        else:
            x = np.asarray(vec, dtype=np.float32)
        p = self.posteriors(x)
        z: F32 | None = None
        if self.R is not None and len(self._active(p)):
            if len(final_question(text)) == len(text):  # the whole prompt is the question
                z = self.question_z(x, fz.scalars(text) if sc is None else sc)
            else:
                z = self.question_z(*fz.question(text))
        return self._predict_p(p, x, float(len(text)), z)

    def choose(self, quality: F64, cost: F64, willingness_to_pay: float,
               eligible: BoolArr | None = None) -> int:
        """Index of the model maximising quality - lambda(willingness_to_pay) * cost."""
        lam = self.knob.lam(willingness_to_pay)
        if math.isinf(lam):
            # always-cheapest; among equal costs the better one
            key = quality * (-1e-9 * self.cost_ref) + cost
            key = -key
        elif lam == 0.0:
            key = quality - cost * (1e-9 / self.cost_ref)
        else:
            key = quality - cost * (lam / self.cost_ref)
        if eligible is not None and not eligible.all():
            if not eligible.any():
                raise InvalidRequest("learned router: no eligible model")
            key[~eligible] = -np.inf
        return int(key.argmax())

    def choose_batch(self, quality: F64, cost: F64, willingness_to_pay: float) -> npt.NDArray[
            np.int64]:
        """`choose` for a batch of prompts with every model eligible (evaluation)."""
        lam = self.knob.lam(willingness_to_pay)
        if math.isinf(lam):
            pick = np.argmin(cost - 1e-9 * self.cost_ref * quality, axis=1)
        elif lam == 0.0:
            pick = np.argmax(quality - 1e-9 * cost / self.cost_ref, axis=1)
        else:
            pick = np.argmax(quality - lam * cost / self.cost_ref, axis=1)
        out: npt.NDArray[np.int64] = np.asarray(pick, dtype=np.int64)
        return out

    # -- online learning ---------------------------------------------------------

    def evidence(self, text: str, model: str, score: float,
                 vec: npt.NDArray[np.float32] | None = None) -> tuple[int, F64]:
        """What one observed outcome teaches: (the model's column j, per-task weights p).
        Learning it adds p * score to q_sum[:, j] and p to q_cnt[:, j]."""
        if model not in self.models:
            raise InvalidRequest(f"learn: unknown model {model!r} (known: {', '.join(self.models)})")
        if not 0.0 <= score <= 1.0 or math.isnan(score):
            raise InvalidRequest(f"learn: score must be in [0, 1], got {score}")
        return self.models.index(model), self.posteriors(self.features(text, vec))

    def learn(self, text: str, model: str, score: float,
              vec: npt.NDArray[np.float32] | None = None) -> None:
        """Fold one observed outcome into the per-task statistics, effective at once."""
        j, p = self.evidence(text, model, score, vec)
        with self._lock:
            q_sum = self.q_sum.copy()
            q_cnt = self.q_cnt.copy()
            q_sum[:, j] += p * score
            q_cnt[:, j] += p
            self._swap(q_sum, q_cnt, self.n_online + 1)

    def set_online(self, dsum: F64, dcnt: F64, n: int) -> None:
        """The artifact's statistics plus online totals learned anywhere (every replica
        applies the same totals; applying them again changes nothing)."""
        with self._lock:
            self._swap(self._base[0] + dsum, self._base[1] + dcnt, n)

    def _swap(self, q_sum: F64, q_cnt: F64, n_online: int) -> None:
        """Install new statistics (under the lock); each derived array is swapped in by one
        assignment, so a reader never sees a half-written one."""
        self.q_sum, self.q_cnt = q_sum, q_cnt
        Q = self._task_quality()
        off = logit_clipped(Q)
        self._QAS = np.hstack([Q, self.cost_a, self.cost_s])
        self._OS = (off, sigmoid(off))
        self._Q = Q
        self.n_online = n_online

    # -- persistence ---------------------------------------------------------------

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            "W": self.W, "b": self.b, "q_sum": self.q_sum, "q_cnt": self.q_cnt,
            "q_prior": self.q_prior, "cost_a": self.cost_a, "cost_s": self.cost_s,
            "cost_floor": self.cost_floor,
            "B": self.B if self.B is not None else np.zeros((0, 0), dtype=np.float32),
            "knob_w": self.knob.w, "knob_loglam": self.knob.loglam,
            "R": self.R if self.R is not None else np.zeros((0, 0), dtype=np.float32),
            "z_mu": self.z_mu, "z_scale": self.z_scale,
        }

    def save(self, out_dir: str | Path) -> Path:
        """Write the artifact directory: manifest.json + one .npy per array."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for name, arr in self.arrays().items():
                np.save(out / f"{name}.npy", arr, allow_pickle=False)
            manifest = dict(self.manifest)
            manifest.update(models=list(self.models), tasks=list(self.tasks),
                            feature_dim=self.dim, version=FORMAT_VERSION,
                            online_updates=int(manifest.get("online_updates", 0)) + self.n_online,
                            saved=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> LearnedRouter:
        """Read an artifact written by `save` (or `train`)."""
        root = Path(path)
        mf = root / MANIFEST
        if not mf.is_file():
            raise NotFound(f"{root}: not a learned-router artifact (no {MANIFEST})")
        manifest = json.loads(mf.read_text("utf-8"))
        if manifest.get("version") != FORMAT_VERSION:
            raise InvalidRequest(f"{mf}: version: unsupported artifact version "
                                 f"{manifest.get('version')!r} (expected {FORMAT_VERSION})")
        arrays = {}
        for name in _ARRAYS:
            f = root / f"{name}.npy"
            if not f.is_file():
                raise NotFound(f"{root}: missing array {f.name}")
            arrays[name] = np.load(f, allow_pickle=False)
        for name in _OPTIONAL:
            f = root / f"{name}.npy"
            if f.is_file():
                arrays[name] = np.load(f, allow_pickle=False)
        return cls(models=tuple(manifest["models"]), tasks=tuple(manifest["tasks"]),
                   dim=int(manifest["feature_dim"]), arrays=arrays, manifest=manifest)

    def describe(self) -> dict[str, Any]:
        """Manifest plus live counters (for logs and the CLI)."""
        return {**self.manifest, "online_updates": self.n_online}
