"""Activation functions σ and the products g ⊙ σ'(z) the backward pass needs (MATH.md, "Activations").

Each ``backward(z, a, grad)`` returns ``grad ⊙ σ'(z)``, computed from the stored activation ``a`` where
σ' can be written from it (sigmoid, tanh, ReLU), so the forward pass never has to keep ``z``.
Softmax is not elementwise: its backward is the vector–Jacobian product a ⊙ (g − Σ_j g_j a_j).
Every method takes an optional ``xp`` (the arrays' namespace) so a caller that already has it (the
backward pass: one lookup per step) saves the per-operation ``array_namespace`` call.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from bpgpu.errors import ConfigError


class Activation:
    name: str = ""
    needs_z: bool = False  # True if backward() needs z rather than only a

    def forward(self, z: Any, xp: Any = None) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


class Sigmoid(Activation):
    """σ(z) = 1/(1+e^{−z}), computed without overflow; σ' = σ(1 − σ)."""

    name = "sigmoid"

    def forward(self, z: Any, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(z)
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:
        return grad * (a * (1 - a))


class Tanh(Activation):
    """σ = tanh, σ' = 1 − tanh²."""

    name = "tanh"

    def forward(self, z: Any, xp: Any = None) -> Any:
        return (xp if xp is not None else array_namespace(z)).tanh(z)

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:
        return grad * (1 - a * a)


class ReLU(Activation):
    """σ = max(z, 0), σ' = 1 where z > 0 else 0 (read from a > 0)."""

    name = "relu"

    def forward(self, z: Any, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(z)
        return xp.maximum(z, xp.zeros((), dtype=z.dtype, device=z.device))

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(grad)
        return xp.where(a > 0, grad, xp.zeros((), dtype=grad.dtype, device=grad.device))


class Identity(Activation):
    """σ(z) = z, σ' = 1."""

    name = "identity"

    def forward(self, z: Any, xp: Any = None) -> Any:
        return z

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:
        return grad


class Softmax(Activation):
    """a_j = e^{z_j − max z} / Σ_k e^{z_k − max z} (max-shifted); backward is the Jacobian product."""

    name = "softmax"

    def forward(self, z: Any, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(z)
        e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def backward(self, z: Any, a: Any, grad: Any, xp: Any = None) -> Any:
        xp = xp if xp is not None else array_namespace(grad)
        return a * (grad - xp.sum(grad * a, axis=-1, keepdims=True))


HIDDEN = {cls.name: cls() for cls in (Sigmoid, Tanh, ReLU, Identity)}
OUTPUT = {cls.name: cls() for cls in (Sigmoid, Softmax, Identity)}


def hidden_activation(name: str | Activation) -> Activation:
    """Look up a hidden-layer activation by name (sigmoid, tanh, relu, identity)."""
    return _lookup(name, HIDDEN, "hidden")


def output_activation(name: str | Activation) -> Activation:
    """Look up an output activation by name (sigmoid, softmax, identity)."""
    return _lookup(name, OUTPUT, "output")


def _lookup(name: Any, table: dict[str, Activation], role: str) -> Activation:
    if isinstance(name, Activation):
        name = name.name
    if not isinstance(name, str) or name.lower() not in table:
        article = "an" if role == "output" else "a"
        raise ConfigError(f"{role}={name!r} is not {article} {role} activation bpgpu knows; valid: {', '.join(table)}.")
    return table[name.lower()]
