"""The GEMM floor: only the matrix products a batched backprop must do, with the same shapes, on the
same device, into preallocated outputs (forward Z = A·Wᵀ, ∂W = Δᵀ·A, and Δ·W for every layer but the
first). No elementwise work, no Python beyond the loop: no MLP step can be faster."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.runners.base import CupyPoolMemory, Runner, cupy_skip_reason
from bpgpu.bench.workloads import Workload


class GemmFloorRunner(CupyPoolMemory, Runner):
    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.name = "GEMM floor" if device == "cpu" else "GEMM floor (cuBLAS)"

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        return cupy_skip_reason(self.device)

    def _xp(self) -> Any:
        if self.device == "cpu":
            return np
        import cupy

        return cupy

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        xp, m = self._xp(), workload.batch
        rng = np.random.default_rng(0)

        def arr(*shape: int) -> Any:
            return xp.asarray(rng.standard_normal(shape).astype(dtype))

        layers = []
        for n_in, n_out in zip(workload.sizes[:-1], workload.sizes[1:]):
            layers.append({"a": arr(m, n_in), "w": arr(n_out, n_in), "z": xp.empty((m, n_out), dtype=dtype),
                           "d": arr(m, n_out), "gw": xp.empty((n_out, n_in), dtype=dtype),
                           "da": xp.empty((m, n_in), dtype=dtype)})
        self.state = {"layers": layers, "xp": xp}

    def run(self, steps: int) -> None:
        layers, xp = self.state["layers"], self.state["xp"]
        matmul = xp.matmul
        for _ in range(steps):
            for p in layers:
                matmul(p["a"], p["w"].T, out=p["z"])
            for l in range(len(layers) - 1, -1, -1):
                p = layers[l]
                matmul(p["d"].T, p["a"], out=p["gw"])
                if l > 0:
                    matmul(p["d"], p["w"], out=p["da"])
        if xp is not np:
            xp.cuda.Device().synchronize()

    def describe(self) -> dict[str, Any]:
        return {"library": "numpy " + np.__version__ if self.device == "cpu" else "cupy (cuBLAS)"}
