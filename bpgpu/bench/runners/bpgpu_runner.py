"""bpgpu itself, on NumPy (CPU) or CuPy (GPU): the data is validated and moved to the device once,
then each step calls the raw math (``bpgpu.math.backprop.backprop``) on device slices and updates the
parameters with plain SGD (in place on NumPy and CuPy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.runners.base import Runner
from bpgpu.bench.workloads import Workload
from bpgpu.math import backprop as bp


def sgd_update(params: list[Any], grads: list[Any], lr: float, in_place: bool) -> None:
    """p ← p − η g for every parameter: in place where the backend allows, else rebinding the entry."""
    for i, g in enumerate(grads):
        if in_place:
            params[i] -= lr * g
        else:
            params[i] = params[i] - lr * g


class BpgpuRunner(Runner):
    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.name = "bpgpu numpy" if device == "cpu" else "bpgpu cupy"

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        if self.device == "cpu":
            return None
        from bpgpu.backend.device import cuda_status

        status = cuda_status(0)
        return None if status == "ok" else f"no usable GPU: {status}"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from bpgpu.network import MLP

        net = MLP(list(workload.sizes), hidden=workload.hidden, output=workload.output, cost=workload.cost,
                  dtype=dtype, device="cpu" if self.device == "cpu" else "cuda:0", seed=0)
        xs = net.as_features(x)  # validated and moved once, up front
        ys = net.as_targets(onehot, xs.shape[0])
        self.state = {"net": net, "x": xs, "y": ys, "wl": workload,
                      "in_place": net.backend.name in ("numpy", "cupy")}
        net.backend.synchronize()

    def run(self, steps: int) -> None:
        s = self.state
        net, x, y, m, lr, in_place = s["net"], s["x"], s["y"], s["wl"].batch, s["wl"].lr, s["in_place"]
        weights, biases, hidden, objective = net.weights, net.biases, net.hidden, net.objective
        for i in range(steps):
            _, gw, gb = bp.backprop(weights, biases, hidden, objective, x[i * m:(i + 1) * m], y[i * m:(i + 1) * m])
            sgd_update(weights, gw, lr, in_place)
            sgd_update(biases, gb, lr, in_place)
        net.backend.synchronize()

    def reset_peak(self) -> None:
        if self.device != "cpu":
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()

    def device_peak_bytes(self) -> int | None:
        if self.device == "cpu":
            return None
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())

    def describe(self) -> dict[str, Any]:
        import bpgpu

        return {"library": f"bpgpu {bpgpu.__version__}", "update": "inline SGD (in place)"}
