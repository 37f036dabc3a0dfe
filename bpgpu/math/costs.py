"""Costs C (mean over the batch of per-example costs) and the output error Δ^L (BP1).

Cross-entropy is computed from the logits z^L (log-sum-exp / softplus), so |z| in the thousands gives
neither overflow nor log(0). With its matching output (sigmoid → binary, softmax → categorical) the
σ'(z^L) factor cancels and Δ^L = A^L − Y (MATH.md, "Costs").
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from bpgpu.errors import ConfigError
from bpgpu.math.activations import Activation, output_activation


class Cost:
    name: str = ""
    outputs: tuple[str, ...] = ()  # the output activations this cost is defined with

    def per_example(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:  # pragma: no cover
        """C_x for each row (length m), or a 0-d value for a single 1-D example."""
        raise NotImplementedError

    def output_error(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:  # pragma: no cover
        """BP1: Δ^L = ∇_A C ⊙ σ'(Z^L)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<cost {self.name}>"


class Quadratic(Cost):
    """C = ½‖a − y‖², ∇_a C = a − y; with any output activation."""

    name = "quadratic"
    outputs = ("sigmoid", "softmax", "identity")

    def per_example(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:
        d = a - y
        return 0.5 * (xp if xp is not None else array_namespace(d)).sum(d * d, axis=-1)

    def output_error(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:
        return output.backward(z, a, a - y, xp)  # BP1: ∇_a C ⊙ σ'(z)


class CrossEntropy(Cost):
    """Binary (sigmoid output) or categorical (softmax output) cross-entropy, from the logits.

    binary:      C = Σ_j softplus(z_j) − y_j z_j  = −Σ_j [y_j ln a_j + (1−y_j) ln(1−a_j)]
    categorical: C = Σ_j y_j (logsumexp(z) − z_j) = −Σ_j y_j ln a_j
    """

    name = "cross_entropy"
    outputs = ("sigmoid", "softmax")

    def per_example(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(z)
        if output.name == "softmax":
            zmax = xp.max(z, axis=-1, keepdims=True)
            lse = zmax + xp.log(xp.sum(xp.exp(z - zmax), axis=-1, keepdims=True))
            return xp.sum(y * (lse - z), axis=-1)
        zero = xp.zeros((), dtype=z.dtype, device=z.device)
        softplus = xp.maximum(z, zero) + xp.log1p(xp.exp(-xp.abs(z)))
        return xp.sum(softplus - y * z, axis=-1)

    def output_error(self, z: Any, a: Any, y: Any, output: Activation, xp: Any = None) -> Any:
        return a - y  # BP1 fused: σ'(z) cancels against ∇_a C


COSTS: dict[str, Cost] = {"quadratic": Quadratic(), "cross_entropy": CrossEntropy()}
_ALIASES = {"mse": "quadratic", "crossentropy": "cross_entropy", "cross-entropy": "cross_entropy", "ce": "cross_entropy"}


class Objective:
    """A cost bound to the output activation it is paired with; the pair is validated once."""

    def __init__(self, cost: str | Cost, output: str | Activation) -> None:
        self.cost = get_cost(cost)
        self.output = output_activation(output)
        if self.output.name not in self.cost.outputs:
            raise ConfigError(
                f"cost={self.cost.name!r} with output={self.output.name!r} is not supported; "
                f"{self.cost.name} works with output in {self.cost.outputs} "
                f"(for output={self.output.name!r} use cost='quadratic')."
            )

    def per_example(self, z: Any, a: Any, y: Any, xp: Any = None) -> Any:
        return self.cost.per_example(z, a, y, self.output, xp)

    def value(self, z: Any, a: Any, y: Any, xp: Any = None) -> Any:
        """The batch cost: the mean of the per-example costs (a 0-d array on the device)."""
        xp = xp if xp is not None else array_namespace(z)
        return xp.mean(self.per_example(z, a, y, xp))

    def output_error(self, z: Any, a: Any, y: Any, xp: Any = None) -> Any:
        """BP1: Δ^L = ∇_A C ⊙ σ'(Z^L) (= A^L − Y for cross-entropy with its matching output)."""
        return self.cost.output_error(z, a, y, self.output, xp)


def get_cost(name: str | Cost) -> Cost:
    """Look up a cost by name: quadratic (alias mse), cross_entropy (alias ce)."""
    if isinstance(name, Cost):
        return name
    key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else None
    if key not in COSTS:
        raise ConfigError(f"cost={name!r} is not a cost bpgpu knows; valid: {', '.join(COSTS)}.")
    return COSTS[key]


def default_cost(output: str) -> str:
    """Cross-entropy for probabilistic outputs (sigmoid, softmax), quadratic for identity."""
    return "quadratic" if output == "identity" else "cross_entropy"
