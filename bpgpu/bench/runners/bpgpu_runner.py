"""bpgpu itself, on NumPy (CPU) or CuPy (GPU): the data is validated and moved to the device once,
then each step calls the raw math (``bpgpu.math.backprop.backprop``) on device slices and updates the
parameters with ``bpgpu.SGD`` (plain SGD, as ``fit`` does)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.runners.base import CupyPoolMemory, Runner, cupy_skip_reason
from bpgpu.bench.workloads import Workload
from bpgpu.math import backprop as bp


OUT_BUFFERS_FROM = 1_000_000  # parameters; below this a step's arrays come from NumPy's small-block cache


class BpgpuRunner(CupyPoolMemory, Runner):
    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.name = "bpgpu numpy" if device == "cpu" else "bpgpu cupy"

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        return cupy_skip_reason(self.device)

    def import_library(self) -> None:
        import bpgpu.network  # noqa: F401
        import bpgpu.training.optimizers  # noqa: F401
        from bpgpu.backend.device import resolve

        resolve("cpu" if self.device == "cpu" else "cuda:0")  # imports the array-API namespace (and CuPy)

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from bpgpu.network import MLP

        net = MLP(list(workload.sizes), hidden=workload.hidden, output=workload.output, cost=workload.cost,
                  dtype=dtype, device="cpu" if self.device == "cpu" else "cuda:0", seed=0)
        xs = net.as_features(x)  # validated and moved once, up front
        ys = net.as_targets(onehot, xs.shape[0])
        from bpgpu.training.optimizers import SGD

        # large nets on NumPy: gradients written into buffers allocated once (backprop's out=), not into
        # fresh 16–64 MB arrays whose pages the kernel must fault in and zero every step
        out = None
        if net.backend.name == "numpy" and net.num_parameters >= OUT_BUFFERS_FROM:
            xp = net.xp
            out = ([xp.empty(w.shape, dtype=w.dtype) for w in net.weights],
                   [xp.empty(b.shape, dtype=b.dtype) for b in net.biases])
        self.state = {"net": net, "x": xs, "y": ys, "wl": workload, "out": out,
                      "opt": SGD(workload.lr, inplace=True if net.backend.name in ("numpy", "cupy") else None)}
        net.backend.synchronize()

    def run(self, steps: int) -> None:
        s = self.state
        net, x, y, m, opt, out = s["net"], s["x"], s["y"], s["wl"].batch, s["opt"], s["out"]
        weights, biases, hidden, objective = net.weights, net.biases, net.hidden, net.objective
        for i in range(steps):
            _, gw, gb = bp.backprop(weights, biases, hidden, objective, x[i * m:(i + 1) * m], y[i * m:(i + 1) * m],
                                    out=out)
            weights[:], biases[:] = opt.step(weights, biases, gw, gb)
        net.backend.synchronize()

    def describe(self) -> dict[str, Any]:
        import bpgpu

        return {"library": f"bpgpu {bpgpu.__version__}", "update": repr(self.state["opt"]),
                "gradient buffers": "reused (backprop out=)" if self.state["out"] is not None else "fresh per step"}
