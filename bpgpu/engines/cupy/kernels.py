"""The CuPy engine's kernels: every elementwise chain of a training step fused into one kernel with
``cupy.fuse`` (CuPy generates and NVRTC-compiles the CUDA source on first call; the CuPy test double
runs the same Python functions on NumPy, one device operation per call, and enforces fusion's rules:
elementwise ufuncs, in-place writes to arguments, at most one final reduction, no writes in a
reducing kernel). Same equations and, where possible, the same arithmetic as ``bpgpu/math`` (the
reference): σ(z) = 1/(1+e^{−|z|}) or e^{−|z|}/(1+e^{−|z|}), softmax max-shifted, cross-entropy from
the logits, σ' from the stored activation.

Kernels (per step of an L-layer network; Z^l = A^{l−1}W^{lT} is a cuBLAS GEMM before each):

- ``bias_<act>(z, b)``                Z ← σ(Z + b) in place (hidden layers: bias + activation);
- ``back_<act>(d, t, a)``             d ← t ⊙ σ'(a) (BP2's ⊙; ``d`` may be ``a``'s own buffer);
- output layer (logits z without bias, bias b, targets y, row scale s = 1/m or w_i/Σw):
  softmax + cross-entropy: ``row_max`` (reduction) → ``row_expsum`` (reduction) → ``softmax_ce_cost``
  (reduction: Σ_i s_i C_i) → ``softmax_ce_delta`` (Δ^L = (A − Y) s); the other pairs likewise;
- ``sq_chunks(g)``                     Σ g² along rows of a (chunks, C) view: per-layer ‖∂C/∂W^l‖²
  from one reduction over the flat gradient buffer (no g ⊙ g temporary);
- ``sq_total`` + ``clip_norm`` / ``clip_value`` / ``clip_norm_value``: gradient clipping over G;
- ``sgd``, ``sgd_momentum``, ``sgd_nesterov``, ``adam`` (and ``*_decay`` with weight decay): the
  optimizer's update over the whole flat parameter buffer in one kernel, in the operation order of
  :meth:`bpgpu.training.optimizers.Optimizer.update_flat`.

No kernel here is a raw CUDA string, so none needs a NumPy twin: ``TWINS`` is empty, kept for
kernels that ever are (the CuPy test double registers each by name). That each function is valid
CuPy fusion code is tested where CuPy imports (tests/test_cupy_fusion_trace.py: traced by CuPy 14.2's
own ``cupy.fuse``, no fall-back; and, where NVRTC is installed, the CUDA source CuPy generates for
each is compiled to PTX). Running them needs a card.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

TWINS: dict[str, Callable] = {}
_BUILT: dict[int, tuple[Any, SimpleNamespace]] = {}


def kernels(cp: Any) -> SimpleNamespace:
    """The fused kernels for the CuPy module ``cp`` (built once per module; fusion caches the compiled
    kernels per dtype and shape class)."""
    key = id(cp)
    hit = _BUILT.get(key)
    if hit is None or hit[0] is not cp:
        hit = _BUILT[key] = (cp, _build(cp))
    return hit[1]


def _build(cp: Any) -> SimpleNamespace:  # noqa: C901 - one table of small kernels
    fuse, exp, log, log1p, maximum, where, absolute, sqrt = (
        cp.fuse, cp.exp, cp.log, cp.log1p, cp.maximum, cp.where, cp.absolute, cp.sqrt)

    def _sigmoid(z: Any) -> Any:
        e = exp(-absolute(z))
        return where(z >= 0, 1 / (1 + e), e / (1 + e))

    # -- hidden layers: Z ← σ(Z + b) -----------------------------------------------------------------
    @fuse(kernel_name="bpgpu_bias_sigmoid")
    def bias_sigmoid(z: Any, b: Any) -> None:
        z[...] = _sigmoid(z + b)

    @fuse(kernel_name="bpgpu_bias_tanh")
    def bias_tanh(z: Any, b: Any) -> None:
        z[...] = cp.tanh(z + b)

    @fuse(kernel_name="bpgpu_bias_relu")
    def bias_relu(z: Any, b: Any) -> None:
        z[...] = maximum(z + b, 0)

    @fuse(kernel_name="bpgpu_bias_identity")
    def bias_identity(z: Any, b: Any) -> None:
        z += b

    # -- BP2's ⊙ σ'(Z), from the activation ------------------------------------------------------------
    @fuse(kernel_name="bpgpu_back_sigmoid")
    def back_sigmoid(d: Any, t: Any, a: Any) -> None:
        d[...] = t * (a * (1 - a))

    @fuse(kernel_name="bpgpu_back_tanh")
    def back_tanh(d: Any, t: Any, a: Any) -> None:
        d[...] = t * (1 - a * a)

    @fuse(kernel_name="bpgpu_back_relu")
    def back_relu(d: Any, t: Any, a: Any) -> None:
        d[...] = where(a > 0, t, 0)

    # -- the output layer ------------------------------------------------------------------------------
    @fuse(kernel_name="bpgpu_row_max")
    def row_max(z: Any, b: Any) -> Any:
        return cp.max(z + b, axis=1)

    @fuse(kernel_name="bpgpu_row_expsum")
    def row_expsum(z: Any, b: Any, zmax: Any) -> Any:
        return cp.sum(exp(z + b - zmax), axis=1)

    @fuse(kernel_name="bpgpu_softmax_ce_cost")
    def softmax_ce_cost(z: Any, b: Any, y: Any, zmax: Any, esum: Any, s: Any) -> Any:
        return cp.sum(y * ((zmax + log(esum)) - (z + b)) * s)            # Σ_i s_i Σ_j y_j (lse − z_j)

    @fuse(kernel_name="bpgpu_softmax_ce_delta")
    def softmax_ce_delta(d: Any, z: Any, b: Any, y: Any, zmax: Any, esum: Any, s: Any) -> None:
        d[...] = (exp(z + b - zmax) / esum - y) * s                      # BP1: (A − Y) · s_i

    @fuse(kernel_name="bpgpu_softmax_out")
    def softmax_out(a: Any, z: Any, b: Any, zmax: Any, esum: Any) -> None:
        a[...] = exp(z + b - zmax) / esum

    @fuse(kernel_name="bpgpu_softmax_quad_cost")
    def softmax_quad_cost(z: Any, b: Any, y: Any, zmax: Any, esum: Any, s: Any) -> Any:
        g = exp(z + b - zmax) / esum - y
        return cp.sum(g * g * 0.5 * s)

    @fuse(kernel_name="bpgpu_softmax_quad_rowdot")
    def softmax_quad_rowdot(z: Any, b: Any, y: Any, zmax: Any, esum: Any) -> Any:
        a = exp(z + b - zmax) / esum
        return cp.sum((a - y) * a, axis=1)                                # Σ_j G_j A_j

    @fuse(kernel_name="bpgpu_softmax_quad_delta")
    def softmax_quad_delta(d: Any, z: Any, b: Any, y: Any, zmax: Any, esum: Any, rowdot: Any, s: Any) -> None:
        a = exp(z + b - zmax) / esum
        d[...] = a * ((a - y) - rowdot) * s                               # softmax's Jacobian product

    @fuse(kernel_name="bpgpu_sigmoid_ce_cost")
    def sigmoid_ce_cost(z: Any, b: Any, y: Any, s: Any) -> Any:
        u = z + b
        return cp.sum(((maximum(u, 0) + log1p(exp(-absolute(u)))) - y * u) * s)   # softplus(u) − y u

    @fuse(kernel_name="bpgpu_sigmoid_ce_delta")
    def sigmoid_ce_delta(d: Any, z: Any, b: Any, y: Any, s: Any) -> None:
        d[...] = (_sigmoid(z + b) - y) * s

    @fuse(kernel_name="bpgpu_sigmoid_quad_cost")
    def sigmoid_quad_cost(z: Any, b: Any, y: Any, s: Any) -> Any:
        g = _sigmoid(z + b) - y
        return cp.sum(g * g * 0.5 * s)

    @fuse(kernel_name="bpgpu_sigmoid_quad_delta")
    def sigmoid_quad_delta(d: Any, z: Any, b: Any, y: Any, s: Any) -> None:
        a = _sigmoid(z + b)
        d[...] = (a - y) * (a * (1 - a)) * s

    @fuse(kernel_name="bpgpu_sigmoid_out")
    def sigmoid_out(a: Any, z: Any, b: Any) -> None:
        a[...] = _sigmoid(z + b)

    @fuse(kernel_name="bpgpu_identity_quad_cost")
    def identity_quad_cost(z: Any, b: Any, y: Any, s: Any) -> Any:
        g = z + b - y
        return cp.sum(g * g * 0.5 * s)

    @fuse(kernel_name="bpgpu_identity_quad_delta")
    def identity_quad_delta(d: Any, z: Any, b: Any, y: Any, s: Any) -> None:
        d[...] = (z + b - y) * s

    # -- gradient norms: Σ g² per chunk of the flat weight gradients -----------------------------------
    @fuse(kernel_name="bpgpu_sq_chunks")
    def sq_chunks(g: Any) -> Any:
        return cp.sum(g * g, axis=1)

    # -- gradient clipping (bpgpu.math.clipping: torch's clip_grad_norm_ then clip_grad_value_) ------
    @fuse(kernel_name="bpgpu_sq_total")
    def sq_total(g: Any) -> Any:
        return cp.sum(g * g)                                    # ‖g‖² over every gradient

    @fuse(kernel_name="bpgpu_clip_norm")
    def clip_norm(g: Any, total: Any, c: float, eps: float) -> None:
        g *= cp.minimum(c / (sqrt(total) + eps), 1)            # g · min(1, c / (‖g‖ + ε))

    @fuse(kernel_name="bpgpu_clip_value")
    def clip_value(g: Any, c: float) -> None:
        g[...] = cp.minimum(maximum(g, -c), c)                 # clip(g, −c, c)

    @fuse(kernel_name="bpgpu_clip_norm_value")
    def clip_norm_value(g: Any, total: Any, c: float, eps: float, v: float) -> None:
        g[...] = cp.minimum(maximum(g * cp.minimum(c / (sqrt(total) + eps), 1), -v), v)

    # -- the optimizer update over the flat buffers (Optimizer.update_flat's operation order) ----------
    @fuse(kernel_name="bpgpu_sgd")
    def sgd(p: Any, g: Any, lr: float) -> None:
        p -= g * lr

    @fuse(kernel_name="bpgpu_sgd_momentum")
    def sgd_momentum(p: Any, g: Any, v: Any, lr: float, mu: float) -> None:
        v[...] = v * mu + g                                     # v ← μ v + g
        p -= v * lr                                             # p ← p − η v

    @fuse(kernel_name="bpgpu_sgd_nesterov")
    def sgd_nesterov(p: Any, g: Any, v: Any, lr: float, mu: float) -> None:
        v[...] = v * mu + g
        p -= (v * mu + g) * lr                                  # p ← p − η (g + μ v)

    @fuse(kernel_name="bpgpu_adam")
    def adam(p: Any, g: Any, m: Any, v: Any, b1: float, c1: float, b2: float, c2: float, bc2_sqrt: float,
             eps: float, step_size: float) -> None:
        m[...] = m * b1 + g * c1                                # m ← β1 m + (1−β1) g
        v[...] = v * b2 + (g * g) * c2                          # v ← β2 v + (1−β2) g²
        p -= (m / (sqrt(v) / bc2_sqrt + eps)) * step_size       # p ← p − η_t m / (√v/√(1−β2^t) + ε)

    # weight decay (weights only): g + λ p in place of g, inside the same kernel
    @fuse(kernel_name="bpgpu_sgd_decay")
    def sgd_decay(p: Any, g: Any, lr: float, wd: float) -> None:
        p -= (g + p * wd) * lr

    @fuse(kernel_name="bpgpu_sgd_momentum_decay")
    def sgd_momentum_decay(p: Any, g: Any, v: Any, lr: float, mu: float, wd: float) -> None:
        v[...] = v * mu + (g + p * wd)
        p -= v * lr

    @fuse(kernel_name="bpgpu_sgd_nesterov_decay")
    def sgd_nesterov_decay(p: Any, g: Any, v: Any, lr: float, mu: float, wd: float) -> None:
        gd = g + p * wd
        v[...] = v * mu + gd
        p -= (v * mu + gd) * lr

    @fuse(kernel_name="bpgpu_adam_decay")
    def adam_decay(p: Any, g: Any, m: Any, v: Any, b1: float, c1: float, b2: float, c2: float, bc2_sqrt: float,
                   eps: float, step_size: float, wd: float) -> None:
        gd = g + p * wd
        m[...] = m * b1 + gd * c1
        v[...] = v * b2 + (gd * gd) * c2
        p -= (m / (sqrt(v) / bc2_sqrt + eps)) * step_size

    return SimpleNamespace(**{k: v for k, v in locals().items() if not k.startswith("_") and callable(v)
                              and k not in ("fuse", "exp", "log", "log1p", "maximum", "where", "absolute", "sqrt")})
