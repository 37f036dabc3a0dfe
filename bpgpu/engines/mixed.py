"""Mixed precision: the generic math (feedforward, BP1–BP4) computed in float16 (or bfloat16), with
float32 master weights and dynamic loss scaling (Micikevicius et al., "Mixed Precision Training",
ICLR 2018; PyTorch's GradScaler does the same).

Per step, on the network's own backend (any array-API library with the compute dtype):

    W16, b16, x16 = W, b, x in float16                   the masters stay float32 in net.weights
    Z^l = A^{l−1} W16^{lT} + b16^l,  A^l = σ(Z^l)        feedforward in float16
    Δ^L = ∇_A C ⊙ σ'(Z^L) · S/m                          BP1 with the loss scale S
    Δ^l = (Δ^{l+1} W16^{l+1}) ⊙ σ'(Z^l)                  BP2
    ∂C/∂b^l = Σ_rows Δ^l / S,  ∂C/∂W^l = Δ^{lT} A^{l−1} / S   BP3, BP4 — unscaled in float32

Multiplying by S keeps small gradients above float16's underflow (6e-8); a gradient that overflows
(65504) shows as inf/NaN: the step is then *skipped* (no update, no NaN in the masters) and S halved;
after ``growth_interval`` good steps in a row S doubles. The finiteness check is one device→host read
per step (as GradScaler's), made after the all-reduce so every rank takes the same decision. The batch
cost is each example's float16 cost summed in float32. bfloat16 has float32's range: its scale starts
at 1 and does not grow (it would only guard against a real overflow, which is then skipped alike).

Which libraries: float16 on NumPy, CuPy and torch; bfloat16 on torch only (NumPy has no bfloat16 —
``ml_dtypes``' matmul returns float32, so it would not compute in bfloat16 — and CuPy 14 none).
"""

from __future__ import annotations

import logging
from typing import Any

from bpgpu.backend.floaterrors import quiet_float_errors
from bpgpu.engines.base import StepConfig
from bpgpu.engines.generic.step import Engine as GenericEngine
from bpgpu.errors import ConfigError
from bpgpu.math import backprop as bp

COMPUTE = {"mixed16": "float16", "mixedbf16": "bfloat16"}
log = logging.getLogger("bpgpu")


def compute_dtype(backend: Any, precision: str) -> Any:
    """The backend's dtype for ``precision``'s math (float16 / bfloat16), or a ConfigError saying
    which backends have it."""
    name = COMPUTE.get(precision)
    if name is None:
        raise ConfigError(f"precision={precision!r} is not a mixed precision; valid: {', '.join(COMPUTE)}.")
    if name == "bfloat16" and backend.name != "torch":
        raise ConfigError(
            f"precision='mixedbf16' needs bfloat16 arithmetic, which {backend.name} does not have (NumPy's "
            "ml_dtypes bfloat16 matmul returns float32; CuPy has none); use precision='mixed16', or a torch "
            "network (xp=torch)."
        )
    dtype = getattr(backend.xp, name, None)
    if dtype is None:
        raise ConfigError(f"precision={precision!r}: {backend.name} has no {name}; use precision='float32'.")
    return dtype


class LossScaler:
    """Dynamic loss scaling: ``scale`` multiplies BP1; :meth:`update` is told whether the step's
    unscaled gradients were finite and answers whether to apply it (halving the scale if not,
    doubling it after ``growth_interval`` good steps in a row, within [min_scale, max_scale])."""

    def __init__(self, scale: float = 2.0**15, growth_interval: int = 1000, dynamic: bool = True,
                 min_scale: float = 2.0**-24, max_scale: float = 2.0**15) -> None:
        self.scale, self.growth_interval, self.dynamic = float(scale), int(growth_interval), dynamic
        self.min_scale, self.max_scale = min_scale, max_scale
        self.good_steps = 0
        self.skipped = 0

    def update(self, finite: bool) -> bool:
        if not finite:
            self.skipped += 1
            self.good_steps = 0
            self.scale = max(self.scale / 2.0, self.min_scale)
            return False
        self.good_steps += 1
        if self.dynamic and self.good_steps >= self.growth_interval:
            self.scale = min(self.scale * 2.0, self.max_scale)
            self.good_steps = 0
        return True


class Engine(GenericEngine):
    """The generic engine's step with the math in the compute dtype (see the module docstring)."""

    name = "mixed"
    supports = frozenset({"clip_norm", "clip_value"})  # the generic step's clipping; not dropout (its own BP)

    def __init__(self, net: Any, optimizer: Any = None, config: StepConfig | None = None) -> None:
        precision = getattr(net, "precision", "mixed16")
        self.compute = compute_dtype(net.backend, precision)
        if net.dtype != net.xp.float32:
            raise ConfigError(f"precision={precision!r} keeps float32 master weights; the network has dtype="
                              f"{net.dtype_name!r}: use dtype='float32'.")
        super().__init__(net, optimizer, config)
        half = COMPUTE[precision] == "float16"
        self.scaler = LossScaler(scale=2.0**15 if half else 1.0, dynamic=half)
        self._skipped_last = False

    # -- the math in the compute dtype -------------------------------------------------------------
    def _low(self, arrays: list[Any]) -> list[Any]:
        return [self.xp.astype(a, self.compute) for a in arrays]

    def _forward(self, x: Any, keep: bool) -> tuple[Any, Any, list[Any]]:
        net = self.net
        w16, b16 = self._low(net.weights), self._low(net.biases)
        return bp.feedforward(w16, b16, net.hidden, net.objective.output, self.xp.astype(x, self.compute),
                              keep=keep, xp=self.xp)

    def scaled_backprop(self, x: Any, y: Any, row_scale: Any, loss_scale: float) -> tuple[Any, list[Any], list[Any]]:
        """(cost, ∂C/∂W^l, ∂C/∂b^l) in float32 from float16 math with BP1 multiplied by ``loss_scale``
        (``row_scale``: 1/m as a number, or per-row scales w_i/Σw). An overflow is expected here (the
        scaler handles it): NumPy's overflow warnings are silenced."""
        with quiet_float_errors(self.net.backend):
            return self._scaled_backprop(x, y, row_scale, loss_scale)

    def _scaled_backprop(self, x: Any, y: Any, row_scale: Any, loss_scale: float) -> tuple[Any, list[Any], list[Any]]:
        xp, net = self.xp, self.net
        f32 = xp.float32
        w16, b16 = self._low(net.weights), self._low(net.biases)
        y16 = xp.astype(y, self.compute)
        z, a, acts = bp.feedforward(w16, b16, net.hidden, net.objective.output, xp.astype(x, self.compute),
                                    keep=True, xp=xp)
        per_example = xp.astype(net.objective.per_example(z, a, y16, xp), f32)
        if isinstance(row_scale, (int, float)):
            cost, s = xp.sum(per_example) * row_scale, row_scale * loss_scale
        else:
            cost = xp.sum(per_example * xp.astype(row_scale, f32))
            s = xp.astype(xp.reshape(row_scale, (-1, 1)) * loss_scale, self.compute)
        n = len(w16)
        grad_w: list[Any] = [None] * n
        grad_b: list[Any] = [None] * n
        delta = net.objective.output_error(z, a, y16, xp) * s                          # BP1 × S
        unscale = 1.0 / loss_scale
        for l in range(n - 1, -1, -1):
            grad_b[l] = xp.sum(xp.astype(delta, f32), axis=0) * unscale                # BP3 ÷ S (summed in float32)
            grad_w[l] = xp.astype(delta.T @ acts[l], f32) * unscale                    # BP4 ÷ S
            if l > 0:
                delta = net.hidden.backward(None, acts[l], delta @ w16[l], xp)         # BP2
        return cost, grad_w, grad_b

    def _finite(self, arrays: list[Any]) -> bool:
        """Every entry finite (one device→host read: a NaN/inf in any array makes its sum NaN/inf)."""
        xp = self.xp
        with quiet_float_errors(self.net.backend):
            return bool(xp.all(xp.isfinite(xp.stack([xp.sum(g) for g in arrays]))))

    # -- the step: the generic one, with the scaled gradients and the skip ---------------------------
    def _gradients(self, xb: Any, yb: Any, scale: Any) -> tuple[Any, list[Any], list[Any]]:
        if not xb.shape[0]:
            return super()._gradients(xb, yb, scale)
        return self.scaled_backprop(xb, yb, scale, self.scaler.scale)

    def _apply(self, grad_w: list[Any], grad_b: list[Any]) -> None:
        """Apply the (all-reduced, unscaled) gradients unless they overflowed: then skip, halve S."""
        finite = self._finite(grad_w + grad_b)
        self._skipped_last = not self.scaler.update(finite)
        if self._skipped_last:
            log.debug("mixed precision: gradients overflowed; step skipped, loss scale now %g", self.scaler.scale)
            return
        super()._apply(grad_w, grad_b)

    def step(self, x: Any, y: Any, idx: Any, sample_weight: Any = None) -> None:
        norms = list(self._norm_sums)
        with quiet_float_errors(self.net.backend):  # an overflow is expected and handled (skip, halve S)
            super().step(x, y, idx, sample_weight)
        if self._skipped_last:  # a skipped step's (infinite) gradient norms are not recorded
            self._norm_sums = norms

    def start_epoch(self) -> None:
        super().start_epoch()
        self._skipped_at_start = self.scaler.skipped if hasattr(self, "scaler") else 0  # (first call: from __init__)

    def end_epoch(self) -> Any:
        """The generic epoch totals; steps skipped for overflow this epoch are logged (INFO)."""
        stats = super().end_epoch()
        skipped = self.scaler.skipped - self._skipped_at_start
        if skipped:
            log.info("mixed precision: %d of %d steps skipped this epoch (gradients overflowed); loss scale now %g",
                     skipped, stats.batches, self.scaler.scale)
        return stats

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because the scaled gradients overflowed, over this engine's life."""
        return self.scaler.skipped

    # -- no update -----------------------------------------------------------------------------------
    def gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, list[Any], list[Any]]:
        """As :meth:`scaled_backprop`, halving the scale until the gradients are finite (or the scale
        reaches its floor: then the non-finite gradients are returned, as float32 would)."""
        xp = self.xp
        if sample_weight is None:
            row_scale: Any = 1.0 / x.shape[0]
        else:
            tiny = xp.asarray(1e-30, dtype=sample_weight.dtype, device=self.net.device)
            row_scale = sample_weight / xp.maximum(xp.sum(sample_weight), tiny)
        scale = self.scaler.scale
        while True:
            cost, grad_w, grad_b = self.scaled_backprop(x, y, row_scale, scale)
            if scale <= self.scaler.min_scale or self._finite(grad_w + grad_b):
                return cost, grad_w, grad_b
            scale = max(scale / 2.0, self.scaler.min_scale)

    def outputs(self, x: Any) -> tuple[Any, Any]:
        """(Z^L, A^L) from the float16 forward pass, returned in float32 (the network's dtype)."""
        z, a, _ = self._forward(x, keep=False)
        return self.xp.astype(z, self.xp.float32), self.xp.astype(a, self.xp.float32)
