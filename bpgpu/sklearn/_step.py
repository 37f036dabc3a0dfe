"""One mini-batch step in scikit-learn's form (``BaseMultilayerPerceptron._backprop`` + its optimizers).

With sample weights s_i (S = Σ_batch s_i) scikit-learn minimises, per batch,

    C = Σ_i s_i C_i / S + (α / 2S) Σ_l ‖W^l‖²,

so BP1 becomes Δ^L_i = s_i (a_i − y_i) / S (rows scaled; without weights s_i = 1 and S = m, the core's
batch mean), BP2–BP4 are unchanged, and the L2 term is the optimizer's weight decay α/S on the weights.
Unweighted batches go through :func:`bpgpu.math.backprop.backprop`.
"""

from __future__ import annotations

import math
from typing import Any

from bpgpu.math import backprop as bp


def weighted_backprop(net: Any, x: Any, y: Any, s: Any, total: float) -> tuple[Any, list[Any], list[Any]]:
    """Weighted mean cost Σ s_i C_i / S and its gradients; ``s``: the batch's weights (device, shape (m,))."""
    xp = net.xp
    z, a, activations = bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, x, keep=True, xp=xp)
    scale = xp.reshape(s * (1.0 / total), (-1, 1))
    cost = xp.sum(net.objective.per_example(z, a, y, xp) * scale[:, 0])
    delta = net.objective.output_error(z, a, y, xp) * scale                      # BP1, rows scaled s_i / S
    n = len(net.weights)
    grad_w: list[Any] = [None] * n
    grad_b: list[Any] = [None] * n
    for l in range(n - 1, -1, -1):
        grad_b[l] = xp.sum(delta, axis=0)                                         # BP3
        grad_w[l] = delta.T @ activations[l]                                      # BP4
        if l > 0:
            delta = net.hidden.backward(None, activations[l], delta @ net.weights[l], xp)  # BP2
    return cost, grad_w, grad_b


class Stepper:
    """Applies scikit-learn's per-batch update to a :class:`~bpgpu.sklearn._model.Model`."""

    def __init__(self, model: Any, alpha: float, beta_2: float, epsilon: float) -> None:
        self.model = model
        self.alpha = alpha
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def step(self, x: Any, y: Any, s: Any, total: float) -> Any:
        """Update on the batch (x, y[, weights s summing to ``total``]); returns the batch's data cost (0-d)."""
        net, opt = self.model.net, self.model.optimizer
        if s is None:
            cost, grad_w, grad_b = bp.backprop(net.weights, net.biases, net.hidden, net.objective, x, y)
        else:
            cost, grad_w, grad_b = weighted_backprop(net, x, y, s, total)
        opt.weight_decay = self.alpha / total          # ∂/∂W of (α/2S)‖W‖²
        if isinstance(opt.lr, float) and hasattr(opt, "betas"):
            # scikit-learn's Adam adds ε to √v̂·√(1−β2^t); bpgpu's (torch's) adds it to √v̂: rescale ε to match
            t = getattr(opt, "steps", 0) + 1
            opt.eps = self.epsilon / math.sqrt(1.0 - self.beta_2**t)
        new_w, new_b = opt.step(net.weights, net.biases, grad_w, grad_b)
        net.weights[:], net.biases[:] = new_w, new_b
        return cost
