"""bpgpu itself, on NumPy (CPU) or CuPy (GPU).

``BpgpuRunner`` (the "bpgpu numpy" / "bpgpu cupy" rows) times what users run: ``MLP.fit`` for one
epoch over the timed batches, with the data already on the device and fit's defaults all on
(shuffling, the cost history, per-layer gradient norms, divergence detection); only ``progress`` is
off. The optimizer is plain SGD with the workload's η, as every other contender uses.

``RawStepRunner`` ("bpgpu raw step (diagnostic)") is *not* what a user gets: the step engine that
fit runs through, driven over consecutive batches without fit's loop (no shuffling, no gradient
norms, no divergence check). It shows how much of fit's time is the loop's bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.runners.base import CupyPoolMemory, Runner, cupy_skip_reason
from bpgpu.bench.workloads import Workload


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

        from bpgpu.engines import engine_class

        backend = resolve(self._device_name())  # imports the array-API namespace (and CuPy)
        engine_class(backend.name)  # and the step engine fit will run (its modules are the library too)

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
    """Diagnostic: the step engine's steps on consecutive batches, without fit's loop around them
    (no shuffle, no gradient norms, no divergence replay; one host read at the end)."""

    kind = "bpgpu raw step (diagnostic)"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if device != "cpu":
            self.name = "bpgpu cupy raw step (diagnostic)"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from bpgpu.engines import StepConfig, make_engine
        from bpgpu.training.optimizers import SGD

        net, xs, ys = self._net_and_data(workload, dtype, x, onehot)
        engine = make_engine(net, SGD(workload.lr), StepConfig(batch_size=workload.batch, record_grad_norms=False))
        idx = net.xp.arange(xs.shape[0], dtype=net.xp.int64, device=net.device)
        self.state = {"net": net, "x": xs, "y": ys, "wl": workload, "engine": engine, "idx": idx}
        net.backend.synchronize()

    def run(self, steps: int) -> None:
        s = self.state
        x, y, m, engine, idx = s["x"], s["y"], s["wl"].batch, s["engine"], s["idx"]
        engine.start_epoch()
        for i in range(steps):
            engine.step(x, y, idx[i * m:(i + 1) * m])
        s["stats"] = engine.end_epoch()  # the one device->host read

    def describe(self) -> dict[str, Any]:
        import bpgpu

        engine = self.state["engine"]
        return {"library": f"bpgpu {bpgpu.__version__}",
                "update": f"{type(engine).__module__}.{type(engine).__name__}, SGD(η), record_grad_norms=False",
                "note": "diagnostic, not what fit runs: no shuffle, norms or divergence check"}
