"""bpgpu itself, on NumPy (CPU) or CuPy (GPU).

``BpgpuRunner`` (the "bpgpu numpy" / "bpgpu cupy" rows) times what users run: ``MLP.fit`` for one
epoch over the timed batches, with the data already on the device and fit's defaults all on
(shuffling, the cost history, per-layer gradient norms, divergence detection); only ``progress`` is
off. The optimizer is plain SGD with the workload's η, as every other contender uses.

``RawStepRunner`` ("bpgpu raw step (diagnostic)") is *not* what a user gets: a loop over consecutive
device slices calling the raw math (``bpgpu.math.backprop.backprop``, reused gradient buffers on
large nets) and an in-place SGD update — no shuffling, no cost, no norms, no divergence check. It
shows how much of fit's time is its bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.runners.base import CupyPoolMemory, Runner, cupy_skip_reason
from bpgpu.bench.workloads import Workload


OUT_BUFFERS_FROM = 1_000_000  # parameters; below this a step's arrays come from NumPy's small-block cache


class _OnDevice(CupyPoolMemory, Runner):
    """Shared set-up: the MLP of the workload (seed 0) and the data validated and moved to its device once."""

    kind = ""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.name = self.kind.format(backend="numpy" if device == "cpu" else "cupy")

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        return cupy_skip_reason(self.device)

    def import_library(self) -> None:
        import bpgpu.network  # noqa: F401
        import bpgpu.training.loop  # noqa: F401
        from bpgpu.backend.device import resolve

        resolve(self._device_name())  # imports the array-API namespace (and CuPy)

    def _device_name(self) -> str:
        return "cpu" if self.device == "cpu" else "cuda:0"

    def _net_and_data(self, workload: Workload, dtype: str, x: np.ndarray, onehot: np.ndarray) -> tuple[Any, Any, Any]:
        from bpgpu.network import MLP

        net = MLP(list(workload.sizes), hidden=workload.hidden, output=workload.output, cost=workload.cost,
                  dtype=dtype, device=self._device_name(), seed=0)
        xs = net.as_features(x)  # validated and moved once, up front
        return net, xs, net.as_targets(onehot, xs.shape[0])


class BpgpuRunner(_OnDevice):
    """``net.fit(x, y, epochs=1, batch_size=m, optimizer=SGD(η), progress=False)`` on the timed batches."""

    kind = "bpgpu {backend}"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        net, xs, ys = self._net_and_data(workload, dtype, x, onehot)
        self.state = {"net": net, "x": xs, "y": ys, "wl": workload, "histories": []}
        net.backend.synchronize()

    def run(self, steps: int) -> None:
        from bpgpu.training.optimizers import SGD

        s = self.state
        net, wl = s["net"], s["wl"]
        n = steps * wl.batch
        # every default of fit on (shuffle, cost history, gradient norms, divergence detection)
        history = net.fit(s["x"][:n], s["y"][:n], epochs=1, batch_size=wl.batch, optimizer=SGD(wl.lr), progress=False)
        s["histories"].append(history)
        net.backend.synchronize()

    def describe(self) -> dict[str, Any]:
        import bpgpu

        return {"library": f"bpgpu {bpgpu.__version__}",
                "runs": "MLP.fit, one epoch, progress=False; defaults on: shuffle, cost history, "
                        "gradient norms, divergence detection; optimizer SGD(η) as the other contenders"}


class RawStepRunner(_OnDevice):
    """Diagnostic: raw backprop + in-place SGD on consecutive slices (none of fit's bookkeeping)."""

    kind = "bpgpu raw step (diagnostic)"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if device != "cpu":
            self.name = "bpgpu cupy raw step (diagnostic)"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from bpgpu.training.optimizers import SGD

        net, xs, ys = self._net_and_data(workload, dtype, x, onehot)
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
        from bpgpu.math import backprop as bp

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
                "gradient buffers": "reused (backprop out=)" if self.state["out"] is not None else "fresh per step",
                "note": "diagnostic, not what fit runs: no shuffle, cost, norms or divergence check"}
