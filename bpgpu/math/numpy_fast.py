"""The NumPy fast path of ``backprop``: the same BP1–BP4 as ``backprop.backprop_generic``, written with
NumPy's in-place ``out=`` ufuncs and array methods, so a step allocates few temporaries and looks up
no namespace per operation. ``backprop.backprop`` uses it only for NumPy arrays (detected with
``array_api_compat.is_numpy_namespace``); the generic path stays the reference, and
``tests/test_bench_fastpath.py`` checks that both give the same cost and gradients.

Like the rest of ``bpgpu.math`` it imports no array library: ``xp`` is the namespace of the arrays
(``array_api_compat.numpy``, whose ufuncs are NumPy's own and accept ``out=``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from array_api_compat import array_namespace, is_numpy_array, is_numpy_namespace

from bpgpu.math.activations import Activation
from bpgpu.math.costs import Objective


_CONSTANTS: dict[tuple[Any, float], Any] = {}


def _const(xp: Any, value: float, dtype: Any) -> Any:
    """A cached 0-d array of ``dtype``: NumPy applies it faster than a Python float, with no promotion."""
    key = (dtype, value)
    c = _CONSTANTS.get(key)
    if c is None:
        if len(_CONSTANTS) > 512:
            _CONSTANTS.clear()
        c = _CONSTANTS[key] = xp.asarray(value, dtype=dtype)
    return c


def _sigmoid_(xp: Any, z: Any) -> Any:
    """σ(z) = 1/(1+e^{−z}), overwriting z. −z is clipped at the dtype's exp limit so e^{−z} stays finite
    (σ of the clipped values is < 1e−38 in float32, < 1e−307 in float64: the same to the dtype)."""
    xp.negative(z, out=z)
    xp.minimum(z, _const(xp, 88.0 if z.dtype == xp.float32 else 708.0, z.dtype), out=z)
    xp.exp(z, out=z)
    xp.add(z, _const(xp, 1.0, z.dtype), out=z)
    return xp.reciprocal(z, out=z)


def _relu_(xp: Any, z: Any) -> Any:
    return xp.maximum(z, _const(xp, 0.0, z.dtype), out=z)


def _tanh_(xp: Any, z: Any) -> Any:
    return xp.tanh(z, out=z)


def _identity_(xp: Any, z: Any) -> Any:
    return z


def _sigmoid_back_(xp: Any, a: Any, g: Any) -> Any:
    """g ⊙ σ'(z) = g ⊙ (a − a²), overwriting g."""
    t = a * a
    xp.subtract(a, t, out=t)
    g *= t
    return g


def _relu_back_(xp: Any, a: Any, g: Any) -> Any:
    return xp.multiply(g, a > 0, out=g)


def _tanh_back_(xp: Any, a: Any, g: Any) -> Any:
    t = a * a
    xp.subtract(_const(xp, 1.0, t.dtype), t, out=t)
    g *= t
    return g


def _identity_back_(xp: Any, a: Any, g: Any) -> Any:
    return g


FORWARD: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": _sigmoid_, "relu": _relu_, "tanh": _tanh_, "identity": _identity_}
BACKWARD: dict[str, Callable[[Any, Any, Any], Any]] = {
    "sigmoid": _sigmoid_back_, "relu": _relu_back_, "tanh": _tanh_back_, "identity": _identity_back_}


_NUMPY: list[Any] = []  # array_api_compat.numpy, looked up once


def namespace(x: Any, y: Any) -> Any:
    """The NumPy namespace if ``x`` and ``y`` are NumPy arrays (two cheap type checks), else None."""
    if not (is_numpy_array(x) and is_numpy_array(y)):
        return None
    if not _NUMPY:
        xp = array_namespace(x, y)
        if not is_numpy_namespace(xp):  # pragma: no cover - array_api_compat always maps NumPy to itself
            return None
        _NUMPY.append(xp)
    return _NUMPY[0]


def supports(xp: Any, hidden: Activation, x: Any) -> bool:
    """True if the fast path covers this hidden activation and dtype (float32/float64)."""
    return hidden.name in FORWARD and (x.dtype == xp.float32 or x.dtype == xp.float64)


def _output_cost_error(xp: Any, objective: Objective, z: Any, y: Any, m: int) -> tuple[Any, Any]:
    """Output layer, mean cost and BP1's Δ^L (already ÷m), overwriting the logits z where possible."""
    out, cost = objective.output.name, objective.cost.name
    if out == "softmax":
        z -= z.max(axis=1, keepdims=True)  # shifted logits (softmax and its costs are shift-invariant)
        a = xp.exp(z)
        s = a.sum(axis=1, keepdims=True)
        a /= s  # A^L
        if cost == "cross_entropy":  # C = Σ y (log Σe − z_shifted) / m;  BP1: Δ^L = (A − Y)/m
            t = xp.log(s) - z
            value = (y.reshape(-1) @ t.reshape(-1)) * (1.0 / m)
            a -= y
            a *= _const(xp, 1.0 / m, a.dtype)
            return value, a
    elif out == "sigmoid" and cost == "quadratic":  # C = ½‖A − Y‖²/m;  BP1: Δ^L = (A − Y) ⊙ A(1 − A)/m
        a = _sigmoid_(xp, z)
        d = a - y
        value = (d.reshape(-1) @ d.reshape(-1)) * (0.5 / m)
        d = _sigmoid_back_(xp, a, d)
        d *= _const(xp, 1.0 / m, d.dtype)
        return value, d
    else:
        a = _sigmoid_(xp, xp.asarray(z, copy=True)) if out == "sigmoid" else z
    return objective.value(z, a, y), objective.output_error(z, a, y) * (1.0 / m)  # the generic costs


def backprop_numpy(
    xp: Any, weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
) -> tuple[Any, list[Any], list[Any]]:
    """``backprop`` for NumPy arrays: (mean cost, ∂C/∂W^l, ∂C/∂b^l). Stores only A^0 … A^{L−1}."""
    forward, backward = FORWARD[hidden.name], BACKWARD[hidden.name]
    m, n = x.shape[0], len(weights)
    activations = [x]
    a = x
    for l in range(n - 1):
        z = a @ weights[l].T                                   # Z^l = A^{l−1} W^{lT} + b^l (BLAS, no copy)
        z += biases[l]
        a = forward(xp, z)                                     # A^l = σ(Z^l), in place
        activations.append(a)
    z = a @ weights[n - 1].T
    z += biases[n - 1]
    cost, delta = _output_cost_error(xp, objective, z, y, m)   # BP1 (÷m: batch mean)
    grad_w: list[Any] = [None] * n
    grad_b: list[Any] = [None] * n
    for l in range(n - 1, -1, -1):
        grad_b[l] = delta.sum(axis=0)                                       # BP3
        grad_w[l] = delta.T @ activations[l]                                # BP4
        if l > 0:
            delta = backward(xp, activations[l], delta @ weights[l])        # BP2
    return cost, grad_w, grad_b
