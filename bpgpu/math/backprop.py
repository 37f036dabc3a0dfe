"""Feedforward and backpropagation in the batched matrix forms of MATH.md (rows = examples).

    Z^l = A^{l−1} (W^l)^T + b^l,  A^l = σ(Z^l)                  feedforward
    Δ^L = ∇_A C ⊙ σ'(Z^L)                                        BP1
    Δ^l = (Δ^{l+1} W^{l+1}) ⊙ σ'(Z^l)                            BP2
    ∂C/∂b^l = Σ_rows Δ^l / m                                     BP3
    ∂C/∂W^l = (Δ^l)^T A^{l−1} / m                                BP4

The 1/m of the batch mean is applied once, to Δ^L; BP2 is linear in Δ, so every Δ^l and hence every
gradient already carries it. Only the activations A^l are stored (σ' is read from them) plus the
output logits Z^L that the cost needs. ``backprop_per_example`` is the seeds' loop, one example at a
time, summed and divided by m: the reference the batched form is tested against.

Weighted examples (``row_scale``): the batch cost is Σ_i s_i C_i with s_i = w_i / Σ_batch w, and BP1
becomes Δ^L_i · s_i instead of Δ^L_i / m (s_i = 1/m is the plain mean). A data-parallel rank passes
the scales of its own rows (1/m or w_i/Σw of the *whole* batch), so the ranks' results simply add up.

This is the reference every engine is tested against (:mod:`bpgpu.engines`); the fast NumPy and
CuPy engines live in ``bpgpu/engines/`` beside it.
"""

from __future__ import annotations

from typing import Any, Sequence

from array_api_compat import array_namespace

from bpgpu.math.activations import Activation
from bpgpu.math.costs import Objective


def feedforward(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, output: Activation, x: Any,
    keep: bool = False, xp: Any = None,
) -> tuple[Any, Any, list[Any]]:
    """Return (Z^L, A^L, [A^0=x, A^1, …, A^L] if keep else []); ``xp``: the namespace, if known."""
    a = x
    activations = [x] if keep else []
    last = len(weights) - 1
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T + b                                     # Z^l = A^{l−1} W^{lT} + b^l
        a = (output if l == last else hidden).forward(z, xp)  # A^l = σ(Z^l)
        if keep:
            activations.append(a)
    return z, a, activations


def backprop(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
    row_scale: Any = None,
) -> tuple[Any, list[Any], list[Any]]:
    """Mean cost of the batch and its gradients (∂C/∂W^l, ∂C/∂b^l) for every layer, as device arrays:
    the reference implementation (:func:`backprop_generic`). ``net.backprop`` and ``fit`` run through
    a step engine (:mod:`bpgpu.engines`), which is tested equal to this."""
    return backprop_generic(weights, biases, hidden, objective, x, y, row_scale=row_scale)


def backprop_generic(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
    xp: Any = None, row_scale: Any = None,
) -> tuple[Any, list[Any], list[Any]]:
    """The reference: BP1–BP4 in array-API operations only, for any library.

    ``row_scale``: None (the batch mean, s_i = 1/m), a number s for every row, or a length-m array of
    per-row scales s_i (weighted examples: w_i / Σw); the cost is then Σ_i s_i C_i."""
    xp = xp if xp is not None else array_namespace(x, y)
    m = x.shape[0]
    z, a, activations = feedforward(weights, biases, hidden, objective.output, x, keep=True, xp=xp)
    cost, scale = cost_and_row_scale(objective, z, a, y, m, row_scale, xp)
    n = len(weights)
    grad_w: list[Any] = [None] * n
    grad_b: list[Any] = [None] * n
    delta = objective.output_error(z, a, y, xp) * scale                      # BP1 (÷m, or × w_i/Σw per row)
    for l in range(n - 1, -1, -1):
        grad_b[l] = xp.sum(delta, axis=0)                                    # BP3
        grad_w[l] = delta.T @ activations[l]                                 # BP4
        if l > 0:
            delta = hidden.backward(None, activations[l], delta @ weights[l], xp)  # BP2
    return cost, grad_w, grad_b


def cost_and_row_scale(objective: Objective, z: Any, a: Any, y: Any, m: int, row_scale: Any, xp: Any) -> tuple[Any, Any]:
    """The batch cost Σ_i s_i C_i and the row scales s_i that BP1 applies (``row_scale`` None: the
    plain mean, s_i = 1/m; a number: the same s for every row; an array: per-row s_i = w_i / Σw)."""
    if row_scale is None:
        return objective.value(z, a, y, xp), 1.0 / m
    if isinstance(row_scale, (int, float)):
        return xp.sum(objective.per_example(z, a, y, xp)) * row_scale, row_scale
    return xp.sum(objective.per_example(z, a, y, xp) * row_scale), xp.reshape(row_scale, (-1, 1))


def cost_value(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
) -> Any:
    """The batch's mean cost alone (no backward pass)."""
    z, a, _ = feedforward(weights, biases, hidden, objective.output, x)
    return objective.value(z, a, y)


def backprop_per_example(
    weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
) -> tuple[Any, list[Any], list[Any]]:
    """The seeds' algorithm: for each example, z^l = W^l a^{l−1} + b^l, then BP1–BP4 on vectors;
    sum over the examples and divide by m. Slow on purpose: the reference for tests."""
    xp = array_namespace(x, y)
    m = x.shape[0]
    n = len(weights)
    sum_w = [xp.zeros(w.shape, dtype=w.dtype, device=w.device) for w in weights]
    sum_b = [xp.zeros(b.shape, dtype=b.dtype, device=b.device) for b in biases]
    total = xp.zeros((), dtype=x.dtype, device=x.device)
    for i in range(m):
        a = x[i, :]
        activations = [a]
        for l, (w, b) in enumerate(zip(weights, biases)):
            z = w @ a + b                                                     # z^l = W^l a^{l−1} + b^l
            a = (objective.output if l == n - 1 else hidden).forward(z)
            activations.append(a)
        total = total + objective.per_example(z, a, y[i, :])
        delta = objective.output_error(z, a, y[i, :])                         # BP1
        for l in range(n - 1, -1, -1):
            sum_b[l] = sum_b[l] + delta                                       # BP3: ∂C/∂b^l_j = δ^l_j
            sum_w[l] = sum_w[l] + delta[:, None] * activations[l][None, :]    # BP4: a^{l−1}_k δ^l_j
            if l > 0:
                delta = hidden.backward(None, activations[l], weights[l].T @ delta)  # BP2
    return total / m, [g / m for g in sum_w], [g / m for g in sum_b]
