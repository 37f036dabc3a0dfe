"""Backpropagation through inverted dropout on the hidden layers (array API only), the reference
every engine's dropout is tested against (and checked by finite differences with a fixed mask).

With per-row, per-unit scales r^l (0 or 1/(1 − p), :mod:`bpgpu.backend.dropout`) on hidden layer l:

    H^l = σ(Z^l),  A^l = H^l ⊙ r^l,  Z^{l+1} = A^l W^{l+1 T} + b^{l+1}        feedforward
    Δ^l = ((Δ^{l+1} W^{l+1}) ⊙ r^l) ⊙ σ'(Z^l)                                  BP2 (σ' read from H^l)
    ∂C/∂W^l = Δ^{lT} A^{l−1},  ∂C/∂b^l = Σ_rows Δ^l                              BP3, BP4

BP1 is unchanged (the output layer is never dropped); the 1/m or w_i/Σw row scales enter at Δ^L.
"""

from __future__ import annotations

from typing import Any, Sequence

from array_api_compat import array_namespace

from bpgpu.math.activations import Activation
from bpgpu.math.backprop import cost_and_row_scale
from bpgpu.math.costs import Objective


def feedforward_dropout(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, output: Activation, x: Any,
    masks: Sequence[Any], xp: Any = None,
) -> tuple[Any, Any, list[Any], list[Any]]:
    """(Z^L, A^L, [A^0 = x, A^1 … A^{L−1}] (dropped), [H^1 … H^{L−1}] (before dropout))."""
    xp = xp if xp is not None else array_namespace(x)
    a, acts, kept = x, [x], []
    last = len(weights) - 1
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T + b                                     # Z^l = A^{l−1} W^{lT} + b^l
        if l == last:
            return z, output.forward(z, xp), acts, kept
        h = hidden.forward(z, xp)                           # H^l = σ(Z^l)
        a = h * masks[l]                                    # A^l = H^l ⊙ r^l
        kept.append(h)
        acts.append(a)
    raise AssertionError("unreachable")  # pragma: no cover


def backprop_dropout(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
    masks: Sequence[Any], xp: Any = None, row_scale: Any = None,
) -> tuple[Any, list[Any], list[Any]]:
    """(cost, ∂C/∂W^l, ∂C/∂b^l) of the network thinned by ``masks`` (one (m, n_l) scale array per
    hidden layer); ``row_scale`` as in :func:`bpgpu.math.backprop.backprop_generic`."""
    xp = xp if xp is not None else array_namespace(x, y)
    m = x.shape[0]
    z, a, acts, kept = feedforward_dropout(weights, biases, hidden, objective.output, x, masks, xp)
    cost, scale = cost_and_row_scale(objective, z, a, y, m, row_scale, xp)
    n = len(weights)
    grad_w: list[Any] = [None] * n
    grad_b: list[Any] = [None] * n
    delta = objective.output_error(z, a, y, xp) * scale                      # BP1
    for l in range(n - 1, -1, -1):
        grad_b[l] = xp.sum(delta, axis=0)                                    # BP3
        grad_w[l] = delta.T @ acts[l]                                        # BP4 (A^{l−1} after dropout)
        if l > 0:
            delta = hidden.backward(None, kept[l - 1], (delta @ weights[l]) * masks[l - 1], xp)  # BP2
    return cost, grad_w, grad_b
