"""The reference step engine: array-API operations only, on :func:`bpgpu.math.backprop.backprop_generic`
and :meth:`Optimizer.step`. It runs every library (torch, array-api-strict, JAX-like immutable
arrays, …) and is what the fast NumPy and CuPy engines are tested equal to.

Per step: gather the rows (``xp.take``), BP1–BP4 with the per-row scales 1/m (or w_i/Σw), the
all-reduce of cost and gradients across ranks (one ``allreduce_sum`` call), the per-layer norms
‖∂C/∂W^l‖ = √(vec·vec) (one ``vecdot``, no g ⊙ g temporary) and the update. The update is
transactional: the optimizer builds new arrays (``inplace=False``) which replace the old ones only
once every layer's are made, so an out-of-memory error half-way leaves the step undone. The epoch's
sums stay on the device (float64 where the library has it) and are read once by :meth:`end_epoch`.
"""

from __future__ import annotations

from typing import Any

from bpgpu.backend import dropout
from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.engines.base import Engine as BaseEngine
from bpgpu.engines.base import EpochStats, StepConfig
from bpgpu.math import backprop as bp
from bpgpu.math.clipping import clip_gradients, squared_norm
from bpgpu.math.dropout import backprop_dropout


def accumulator_dtype(xp: Any, dtype: Any, device: Any) -> Any:
    """float64 when the library offers it on this device (sums of float32 costs cannot overflow), else ``dtype``."""
    f64 = getattr(xp, "float64", None)
    if f64 is None:
        return dtype
    try:
        xp.zeros((), dtype=f64, device=device)
    except Exception:  # noqa: BLE001 - a device without float64 (e.g. Apple MPS)
        return dtype
    return f64


class Engine(BaseEngine):
    name = "generic"
    checks_each_step = False
    supports = frozenset({"clip_norm", "clip_value", "dropout"})

    def __init__(self, net: Any, optimizer: Any = None, config: StepConfig | None = None) -> None:
        super().__init__(net, optimizer, config)
        self.acc_dtype = accumulator_dtype(self.xp, net.dtype, net.device)
        self._masks: list[Any] | None = None  # this step's dropout scales (set by step)
        if optimizer is not None:
            optimizer.ensure_state(net.weights + net.biases)
        self.start_epoch()

    def _zero(self) -> Any:
        return self.xp.zeros((), dtype=self.acc_dtype, device=self.net.device)

    def start_epoch(self) -> None:
        self._cost_sum, self._weight_sum, self._batches = self._zero(), self._zero(), 0
        self._norm_sums = [self._zero() for _ in range(self.layers)] if self.config.record_grad_norms else []
        self._last_cost = self._zero()

    # -- one step ----------------------------------------------------------------------------------
    def _batch(self, x: Any, y: Any, idx: Any, sample_weight: Any) -> tuple[Any, Any, Any, Any]:
        """(x rows, y rows, row scales, batch weight) of this rank's share of the batch ``idx``."""
        xp = self.xp
        rows, lo, hi = self.shard(idx)
        m = idx.shape[0]
        if sample_weight is None:
            scale, weight = 1.0 / m, float(m)
        else:
            w = xp.take(sample_weight, idx, axis=0)
            total = xp.sum(w)
            tiny = xp.asarray(1e-30, dtype=w.dtype, device=self.net.device)
            scale, weight = w[lo:hi] / xp.maximum(total, tiny), total  # a batch of zero weights: no step
        return xp.take(x, rows, axis=0), xp.take(y, rows, axis=0), scale, weight

    def _dropout_masks(self, idx: Any) -> list[Any]:
        """This rank's rows of the batch's dropout scales r^l, drawn on the host (bpgpu.backend.dropout)."""
        net = self.net
        _, lo, hi = self.shard(idx)
        host = dropout.scales(self.dropout_key, self._batches, idx.shape[0], list(net.sizes[1:-1]), self.config.dropout)
        return [to_backend(r[lo:hi], net.backend, net.dtype) for r in host]

    def _gradients(self, xb: Any, yb: Any, scale: Any) -> tuple[Any, list[Any], list[Any]]:
        net, xp = self.net, self.xp
        if xb.shape[0] and self._masks is not None:  # inverted dropout on the hidden layers
            return backprop_dropout(net.weights, net.biases, net.hidden, net.objective, xb, yb, self._masks, xp, scale)
        if xb.shape[0]:
            return bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, xb, yb, xp=xp, row_scale=scale)
        zeros = lambda arrays: [xp.zeros(a.shape, dtype=a.dtype, device=a.device) for a in arrays]  # noqa: E731
        return xp.zeros((), dtype=net.dtype, device=net.device), zeros(net.weights), zeros(net.biases)

    def step(self, x: Any, y: Any, idx: Any, sample_weight: Any = None) -> None:
        xp, comm = self.xp, self.comm
        xb, yb, scale, weight = self._batch(x, y, idx, sample_weight)
        self._masks = self._dropout_masks(idx) if self.config.dropout else None
        cost, grad_w, grad_b = self._gradients(xb, yb, scale)
        if comm.size > 1:  # every rank's rows carry the whole batch's 1/m (or w_i/Σw): the sums are the batch's
            n = self.layers
            total = comm.allreduce_sum([xp.reshape(cost, (1,))] + list(grad_w) + list(grad_b))
            cost, grad_w, grad_b = total[0][0], list(total[1:1 + n]), list(total[1 + n:])
        cfg = self.config
        squares = [squared_norm(xp, g) for g in grad_w] if cfg.record_grad_norms or cfg.clip_norm is not None else None
        if cfg.record_grad_norms:  # ‖∂C/∂W^l‖ before clipping (torch's clip_grad_norm_ returns it too)
            self._norm_sums = [s + xp.astype(xp.sqrt(q), self.acc_dtype) for s, q in zip(self._norm_sums, squares)]
        if cfg.clip_norm is not None or cfg.clip_value is not None:
            n = self.layers
            clipped = clip_gradients(xp, list(grad_w) + list(grad_b), cfg.clip_norm, cfg.clip_value, squares)
            grad_w, grad_b = clipped[:n], clipped[n:]
        self._apply(grad_w, grad_b)
        weight = weight if isinstance(weight, float) else xp.astype(weight, self.acc_dtype)
        self._last_cost = xp.astype(cost, self.acc_dtype)
        self._cost_sum = self._cost_sum + self._last_cost * weight
        self._weight_sum = self._weight_sum + weight
        self._batches += 1

    def _apply(self, grad_w: list[Any], grad_b: list[Any]) -> None:
        """The optimizer's update, all layers or none: new arrays replace the old ones at the end."""
        net, opt = self.net, self.optimizer
        saved = {name: list(values) for name, values in opt.state.items()}, getattr(opt, "steps", 0)
        try:
            new_w, new_b = opt.step(net.weights, net.biases, grad_w, grad_b, inplace=False)
        except BaseException:
            opt.state, opt.steps = saved
            raise
        net.weights[:], net.biases[:] = new_w, new_b

    # -- the epoch's totals ------------------------------------------------------------------------
    def _params_probe(self) -> Any:
        """Σ of every parameter in the accumulator dtype: NaN/inf exactly when some parameter is."""
        xp = self.xp
        total = self._zero()
        for a in self.net.weights + self.net.biases:
            total = total + xp.sum(xp.astype(a, self.acc_dtype))
        return total

    def end_epoch(self) -> EpochStats:
        xp = self.xp
        values = to_host(xp.stack([self._cost_sum, self._weight_sum, self._params_probe()] + self._norm_sums)).tolist()
        finite = all(v == v and abs(v) != float("inf") for v in values[:3])
        return EpochStats(values[0], values[1], self._batches, finite, values[3:])

    def load_epoch(self, stats: EpochStats) -> None:
        xp, dev = self.xp, self.net.device
        value = lambda v: xp.asarray(v, dtype=self.acc_dtype, device=dev)  # noqa: E731
        self._cost_sum, self._weight_sum, self._batches = value(stats.cost_sum), value(stats.weight_sum), stats.batches
        if self.config.record_grad_norms:
            self._norm_sums = [value(v) for v in stats.grad_norm_sums]

    def running_cost(self) -> float:
        weight = float(self._weight_sum)
        return float(self._cost_sum) / weight if weight else 0.0

    def last_step_finite(self) -> bool:
        values = [float(self._last_cost), float(self._params_probe())]
        return all(v == v and abs(v) != float("inf") for v in values)

    # -- no update ---------------------------------------------------------------------------------
    def gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, list[Any], list[Any]]:
        scale = None
        if sample_weight is not None:
            xp = self.xp
            tiny = xp.asarray(1e-30, dtype=sample_weight.dtype, device=self.net.device)
            scale = sample_weight / xp.maximum(xp.sum(sample_weight), tiny)
        net = self.net
        return bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y, xp=self.xp, row_scale=scale)

    def outputs(self, x: Any) -> tuple[Any, Any]:
        net = self.net
        z, a, _ = bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, x, xp=self.xp)
        return z, a

