"""The reference: a plain, hand-written NumPy training loop that does the same job as ``fit``.

Written the way one would by hand from MATH.md: no array-API layer, no validation, one temporary per
operation, the textbook ``1/(1+exp(−z))`` sigmoid (overflow warnings silenced once per run). Each
epoch draws a permutation (``numpy.random.default_rng``), gathers every batch by it, and per batch
does forward, the batch's mean cost, BP1–BP4 and an SGD update; the epoch's mean cost is kept (a
cost history), as ``fit`` keeps it."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.backend.random import default_init, initial_parameters
from bpgpu.bench.runners.base import Runner
from bpgpu.bench.workloads import Workload


def _hidden(z: np.ndarray, name: str) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z)) if name == "sigmoid" else np.maximum(z, 0)


def _hidden_prime(a: np.ndarray, name: str) -> np.ndarray:
    return a * (1 - a) if name == "sigmoid" else (a > 0)


def reference_step(x: np.ndarray, y: np.ndarray, w: list[np.ndarray], b: list[np.ndarray], wl: Workload) -> Any:
    """One SGD step on (x, y) with one-hot y; updates ``w``, ``b`` in place and returns the mean cost."""
    m = x.shape[0]
    acts = [x]
    a = x
    for l in range(len(w)):
        z = a @ w[l].T + b[l]
        if l < len(w) - 1:
            a = _hidden(z, wl.hidden)
        elif wl.output == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            s = e.sum(axis=1, keepdims=True)
            a = e / s
        else:
            a = _hidden(z, "sigmoid")
        acts.append(a)
    if wl.cost == "cross_entropy":  # softmax + CE from the logits: Δ^L = A − Y
        cost = np.sum(y * (np.log(s) - (z - z.max(axis=1, keepdims=True)))) / m
        d = (a - y) / m
    else:  # quadratic with a sigmoid output
        d = a - y
        cost = 0.5 * np.sum(d * d) / m
        d = d * (a * (1 - a)) / m
    for l in range(len(w) - 1, -1, -1):
        gw = d.T @ acts[l]
        gb = d.sum(axis=0)
        if l > 0:
            d = (d @ w[l]) * _hidden_prime(acts[l], wl.hidden)
        w[l] -= wl.lr * gw
        b[l] -= wl.lr * gb
    return cost


class ReferenceRunner(Runner):
    name = "numpy reference"
    device = "cpu"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        hw, hb = initial_parameters(list(workload.sizes), default_init(workload.hidden), 0)
        self.state = {"wl": workload, "x": x, "y": onehot, "rng": np.random.default_rng(0), "costs": [],
                      "w": [w.astype(dtype) for w in hw], "b": [b.astype(dtype) for b in hb]}

    def run(self, steps: int) -> None:
        """One epoch over ``steps`` batches of the first ``steps·m`` rows, in a fresh random order."""
        s = self.state
        wl, x, y, w, b, m = s["wl"], s["x"], s["y"], s["w"], s["b"], s["wl"].batch
        order = s["rng"].permutation(steps * m)
        total = 0.0
        with np.errstate(over="ignore"):
            for i in range(steps):
                idx = order[i * m:(i + 1) * m]
                total += reference_step(x[idx], y[idx], w, b, wl) * m
        s["costs"].append(float(total) / (steps * m))  # the epoch's mean cost, as fit's history has it

    def describe(self) -> dict[str, Any]:
        return {"library": f"numpy {np.__version__}",
                "runs": "hand-written loop: shuffles each epoch, computes every batch's cost"}
