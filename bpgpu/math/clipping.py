"""Gradient clipping over all of a step's gradients (array API only), as torch's
``clip_grad_norm_`` then ``clip_grad_value_``:

    by global norm:  ‖g‖ = √(Σ_l ‖∂C/∂W^l‖² + ‖∂C/∂b^l‖²),  g ← g · min(1, c / (‖g‖ + 10⁻⁶))
    by value:        g ← clip(g, −c, c) elementwise

The squared norms are the ones the engines already compute for the recorded ‖∂C/∂W^l‖ (one vecdot
per array); the norm is taken on the all-reduced gradient, before weight decay (torch's order:
clipping acts on ``.grad``, the optimizer adds its L2 term afterwards). No device→host read.
"""

from __future__ import annotations

from typing import Any, Sequence

EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s guard


def squared_norm(xp: Any, g: Any) -> Any:
    """‖g‖² = vec(g)·vec(g): one dot product, no g ⊙ g temporary."""
    flat = xp.reshape(g, (-1,))
    return xp.vecdot(flat, flat)


def clip_gradients(
    xp: Any, grads: Sequence[Any], clip_norm: float | None, clip_value: float | None, squares: Sequence[Any] | None = None,
) -> list[Any]:
    """The clipped gradients (new arrays); ``squares``: ‖g‖² of the leading entries of ``grads`` when
    already computed (the rest are computed here)."""
    grads = list(grads)
    if clip_norm is not None:
        known = list(squares or [])
        total = known[0] if known else None
        for q in known[1:] + [squared_norm(xp, g) for g in grads[len(known):]]:
            total = q if total is None else total + q
        coef = xp.minimum(clip_norm / (xp.sqrt(total) + EPS), xp.ones_like(total))
        grads = [g * coef for g in grads]
    if clip_value is not None:
        grads = [xp.clip(g, -clip_value, clip_value) for g in grads]
    return grads
