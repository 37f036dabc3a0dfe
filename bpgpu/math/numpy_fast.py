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


class _Constants:
    """0-d arrays of one dtype, made once: NumPy applies them faster than Python floats (no promotion)."""

    def __init__(self, xp: Any, dtype: Any) -> None:
        self.zero = xp.asarray(0.0, dtype=dtype)
        self.one = xp.asarray(1.0, dtype=dtype)
        self.exp_max = xp.asarray(88.0 if dtype == xp.float32 else 708.0, dtype=dtype)  # e^x finite below
        self.inv_m: dict[int, Any] = {}
        self._xp, self._dtype = xp, dtype

    def inverse(self, m: int) -> Any:
        """1/m as a 0-d array (cached per batch size)."""
        c = self.inv_m.get(m)
        if c is None:
            if len(self.inv_m) > 64:
                self.inv_m.clear()
            c = self.inv_m[m] = self._xp.asarray(1.0 / m, dtype=self._dtype)
        return c


_CONSTANTS: dict[Any, _Constants] = {}


def _constants(xp: Any, dtype: Any) -> _Constants:
    k = _CONSTANTS.get(dtype)
    if k is None:
        k = _CONSTANTS[dtype] = _Constants(xp, dtype)
    return k


def _sigmoid_(xp: Any, z: Any, k: _Constants) -> Any:
    """σ(z) = e^z / (1 + e^z), overwriting z; z is first clipped at the dtype's exp limit (σ = 1 there
    to the dtype), and e^z underflowing to 0 for very negative z is σ's true value to the dtype."""
    xp.minimum(z, k.exp_max, out=z)
    xp.exp(z, out=z)
    return xp.divide(z, z + k.one, out=z)


def _relu_(xp: Any, z: Any, k: _Constants) -> Any:
    return xp.maximum(z, k.zero, out=z)


def _tanh_(xp: Any, z: Any, k: _Constants) -> Any:
    return xp.tanh(z, out=z)


def _identity_(xp: Any, z: Any, k: _Constants) -> Any:
    return z


def _sigmoid_back_(xp: Any, a: Any, g: Any, k: _Constants) -> Any:
    """g ⊙ σ'(z) = g ⊙ (a − a²), overwriting g."""
    t = a * a
    xp.subtract(a, t, out=t)
    g *= t
    return g


def _relu_back_(xp: Any, a: Any, g: Any, k: _Constants) -> Any:
    return xp.multiply(g, a > k.zero, out=g)


def _tanh_back_(xp: Any, a: Any, g: Any, k: _Constants) -> Any:
    t = a * a
    xp.subtract(k.one, t, out=t)
    g *= t
    return g


def _identity_back_(xp: Any, a: Any, g: Any, k: _Constants) -> Any:
    return g


FORWARD: dict[str, Callable[[Any, Any, _Constants], Any]] = {
    "sigmoid": _sigmoid_, "relu": _relu_, "tanh": _tanh_, "identity": _identity_}
BACKWARD: dict[str, Callable[[Any, Any, Any, _Constants], Any]] = {
    "sigmoid": _sigmoid_back_, "relu": _relu_back_, "tanh": _tanh_back_, "identity": _identity_back_}


_NUMPY: list[Any] = []  # [array_api_compat.numpy, numpy.ndarray, numpy.matmul], looked up once


def namespace(x: Any, y: Any) -> Any:
    """The NumPy namespace if ``x`` and ``y`` are NumPy arrays (two cheap type checks), else None."""
    if not _NUMPY:
        if not (is_numpy_array(x) and is_numpy_array(y)):
            return None
        xp = array_namespace(x, y)
        if not is_numpy_namespace(xp):  # pragma: no cover - array_api_compat always maps NumPy to itself
            return None
        base = xp.empty(0)
        _NUMPY.extend([xp, type(base), base.__array_namespace__().matmul])  # the matmul ufunc takes out=
    if type(x) is _NUMPY[1] and type(y) is _NUMPY[1]:
        return _NUMPY[0]
    return None


def supports(xp: Any, hidden: Activation, x: Any) -> bool:
    """True if the fast path covers this hidden activation and dtype (float32/float64)."""
    return hidden.name in FORWARD and (x.dtype == xp.float32 or x.dtype == xp.float64)


def _output_cost_error(xp: Any, objective: Objective, z: Any, y: Any, m: int, k: _Constants) -> tuple[Any, Any]:
    """Output layer, mean cost and BP1's Δ^L (already ÷m), overwriting the logits z where possible."""
    out, cost = objective.output.name, objective.cost.name
    if out == "softmax":
        z -= z.max(axis=1, keepdims=True)  # shifted logits (softmax and its costs are shift-invariant)
        a = xp.exp(z)
        s = a.sum(axis=1, keepdims=True)
        a /= s  # A^L
        if cost == "cross_entropy":  # C = Σ y (log Σe − z_shifted) / m;  BP1: Δ^L = (A − Y)/m
            t = xp.log(s) - z
            value = xp.vdot(y, t) * (1.0 / m)
            a -= y
            a *= k.inverse(m)
            return value, a
    elif out == "sigmoid" and cost == "quadratic":  # C = ½‖A − Y‖²/m;  BP1: Δ^L = (A − Y) ⊙ A(1 − A)/m
        a = _sigmoid_(xp, z, k)
        d = a - y
        value = xp.vdot(d, d) * (0.5 / m)
        d = _sigmoid_back_(xp, a, d, k)
        d *= k.inverse(m)
        return value, d
    else:
        a = _sigmoid_(xp, xp.asarray(z, copy=True), k) if out == "sigmoid" else z
    return objective.value(z, a, y, xp), objective.output_error(z, a, y, xp) * (1.0 / m)  # the generic costs


def usable_out(xp: Any, out: Any, weights: Sequence[Any], biases: Sequence[Any], dtype: Any) -> bool:
    """True if ``out`` is (grad_w, grad_b): writable C-contiguous NumPy arrays shaped like the parameters."""
    try:
        gw, gb = out
        arrays = list(zip(gw, weights)) + list(zip(gb, biases))
        return len(gw) == len(weights) and len(gb) == len(biases) and all(
            type(g) is _NUMPY[1] and g.shape == p.shape and g.dtype == dtype and g.flags.c_contiguous
            and g.flags.writeable for g, p in arrays)
    except (TypeError, ValueError, AttributeError, IndexError):
        return False


def backprop_numpy(
    xp: Any, weights: Sequence[Any], biases: Sequence[Any], hidden: Activation, objective: Objective, x: Any, y: Any,
    out: Any = None,
) -> tuple[Any, list[Any], list[Any]]:
    """``backprop`` for NumPy arrays: (mean cost, ∂C/∂W^l, ∂C/∂b^l). Stores only A^0 … A^{L−1}.
    With ``out=(grad_w, grad_b)`` (checked by ``usable_out``) the gradients are written into those arrays."""
    forward, backward, matmul = FORWARD[hidden.name], BACKWARD[hidden.name], _NUMPY[2]
    k = _constants(xp, x.dtype)
    m, n = x.shape[0], len(weights)
    activations = [x]
    a = x
    for l in range(n - 1):
        z = a @ weights[l].T                                   # Z^l = A^{l−1} W^{lT} + b^l (BLAS, no copy)
        z += biases[l]
        a = forward(xp, z, k)                                  # A^l = σ(Z^l), in place
        activations.append(a)
    z = a @ weights[n - 1].T
    z += biases[n - 1]
    cost, delta = _output_cost_error(xp, objective, z, y, m, k)  # BP1 (÷m: batch mean)
    grad_w: list[Any] = list(out[0]) if out is not None else [None] * n
    grad_b: list[Any] = list(out[1]) if out is not None else [None] * n
    for l in range(n - 1, -1, -1):
        grad_b[l] = xp.add.reduce(delta, axis=0, out=grad_b[l])             # BP3
        grad_w[l] = matmul(delta.T, activations[l], out=grad_w[l])          # BP4 (Δᵀ: a BLAS flag, no copy)
        if l > 0:
            delta = backward(xp, activations[l], delta @ weights[l], k)     # BP2
    return cost, grad_w, grad_b
