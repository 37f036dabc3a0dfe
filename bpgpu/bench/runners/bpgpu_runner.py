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
    """Diagnostic: the step engine's steps on consecutive batches, without fit's loop around them
    (no shuffle, no gradient norms, no divergence replay; one host read at the end). Where the engine
    is not there (an older tree) it is raw backprop + in-place SGD."""

    kind = "bpgpu raw step (diagnostic)"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        if device != "cpu":
            self.name = "bpgpu cupy raw step (diagnostic)"

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from bpgpu.training.optimizers import SGD

        net, xs, ys = self._net_and_data(workload, dtype, x, onehot)
        self.state = {"net": net, "x": xs, "y": ys, "wl": workload, "engine": None, "out": None}
        try:
            from bpgpu.engines import make_engine
            from bpgpu.engines.base import StepConfig
        except ImportError:  # before the step engine: the raw math
            self.state["opt"] = SGD(workload.lr, inplace=True if net.backend.name in ("numpy", "cupy") else None)
            self.state["out"] = self._out_buffers(net)
        else:
            self.state["opt"] = SGD(workload.lr)
            self.state["engine"] = make_engine(net, self.state["opt"],
                                               StepConfig(batch_size=workload.batch, record_grad_norms=False))
            self.state["idx"] = net.xp.arange(xs.shape[0], dtype=net.xp.int64, device=net.device)
        net.backend.synchronize()

    @staticmethod
    def _out_buffers(net: Any) -> Any:
        """Gradient buffers allocated once for large NumPy nets (backprop's ``out=``, where it has one)."""
        import inspect

        from bpgpu.math import backprop as bp

        if (net.backend.name != "numpy" or net.num_parameters < OUT_BUFFERS_FROM
                or "out" not in inspect.signature(bp.backprop).parameters):
            return None
        xp = net.xp
        return ([xp.empty(w.shape, dtype=w.dtype) for w in net.weights],
                [xp.empty(b.shape, dtype=b.dtype) for b in net.biases])

    def run(self, steps: int) -> None:
        s = self.state
        net, x, y, m, engine = s["net"], s["x"], s["y"], s["wl"].batch, s["engine"]
        if engine is not None:
            engine.start_epoch()
            for i in range(steps):
                engine.step(x, y, s["idx"][i * m:(i + 1) * m])
            s["stats"] = engine.end_epoch()  # the one device->host read
            return
        from bpgpu.math import backprop as bp

        opt, out = s["opt"], s["out"]
        weights, biases, hidden, objective = net.weights, net.biases, net.hidden, net.objective
        extra = {"out": out} if out is not None else {}
        for i in range(steps):
            _, gw, gb = bp.backprop(weights, biases, hidden, objective, x[i * m:(i + 1) * m], y[i * m:(i + 1) * m],
                                    **extra)
            weights[:], biases[:] = opt.step(weights, biases, gw, gb)
        net.backend.synchronize()

    def describe(self) -> dict[str, Any]:
        import bpgpu

        engine = self.state["engine"]
        how = (f"step engine {type(engine).__module__}.{type(engine).__name__}, record_grad_norms=False"
               if engine is not None else "raw backprop + " + repr(self.state["opt"]))
        return {"library": f"bpgpu {bpgpu.__version__}", "update": how,
                "note": "diagnostic, not what fit runs: no shuffle, norms or divergence check"}
