"""In-place NumPy kernels of the NumPy step engine: activations, their g ⊙ σ' products and the
output layer's cost and BP1, each written with ufuncs and ``out=`` into buffers the engine owns (no
temporary the size of a layer). Same equations as ``bpgpu/math`` (MATH.md), different rounding in
places (σ = e^z/(1+e^z) after clipping z; a − a² for σ'), hence the engines' tests use the float
tolerances there.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class Constants:
    """0-d arrays of one dtype (NumPy applies them without promotion), made once per dtype."""

    def __init__(self, dtype: Any) -> None:
        self.zero = np.asarray(0.0, dtype=dtype)
        self.one = np.asarray(1.0, dtype=dtype)
        self.half = np.asarray(0.5, dtype=dtype)
        self.exp_max = np.asarray(88.0 if dtype == np.float32 else 708.0, dtype=dtype)  # e^z finite below


_CONSTANTS: dict[Any, Constants] = {}


def constants(dtype: Any) -> Constants:
    k = _CONSTANTS.get(np.dtype(dtype))
    if k is None:
        k = _CONSTANTS[np.dtype(dtype)] = Constants(dtype)
    return k


# Outputs are passed positionally (``np.add(a, b, out)``) or by in-place operators: on the small
# arrays of small networks the keyword ``out=`` costs ~25% of a call.

# -- hidden activations: A = σ(Z) over Z's buffer; g ← g ⊙ σ'(Z) read from A ----------------------------

def sigmoid_(z: Any, k: Constants, tmp: Any) -> None:
    """σ(z) = e^z / (1 + e^z) over z; z is first clipped at the dtype's exp limit (σ = 1 there to the
    dtype), and e^z underflowing to 0 for very negative z is σ's true value to the dtype."""
    np.minimum(z, k.exp_max, out=z)
    np.exp(z, z)
    np.add(z, k.one, tmp)
    z /= tmp


def relu_(z: Any, k: Constants, tmp: Any) -> None:
    np.maximum(z, k.zero, out=z)


def tanh_(z: Any, k: Constants, tmp: Any) -> None:
    np.tanh(z, z)


def identity_(z: Any, k: Constants, tmp: Any) -> None:
    return None


def sigmoid_back_(a: Any, g: Any, k: Constants, tmp: Any, mask: Any) -> None:
    """g ⊙ σ'(z) = g ⊙ (a − a²)."""
    np.multiply(a, a, tmp)
    np.subtract(a, tmp, tmp)
    g *= tmp


def relu_back_(a: Any, g: Any, k: Constants, tmp: Any, mask: Any) -> None:
    """g ⊙ 1[a > 0] (``mask``: a boolean buffer shaped like a; a multiply by it is ~30× faster than
    ``copyto(where=)``, at the price of NumPy's fixed-size cast buffer)."""
    np.greater(a, k.zero, mask)
    g *= mask


def tanh_back_(a: Any, g: Any, k: Constants, tmp: Any, mask: Any) -> None:
    """g ⊙ (1 − a²)."""
    np.multiply(a, a, tmp)
    np.subtract(k.one, tmp, tmp)
    g *= tmp


def identity_back_(a: Any, g: Any, k: Constants, tmp: Any, mask: Any) -> None:
    return None


FORWARD: dict[str, Callable[..., None]] = {"sigmoid": sigmoid_, "relu": relu_, "tanh": tanh_, "identity": identity_}
BACKWARD: dict[str, Callable[..., None]] = {
    "sigmoid": sigmoid_back_, "relu": relu_back_, "tanh": tanh_back_, "identity": identity_back_}


# -- the output layer: A^L over Z^L's buffer, the per-example costs, Δ^L (before the 1/m scale) --------
# Each kernel takes (z, y, d, tmp, col, rows, k): z the logits (overwritten: A^L, or the shifted
# logits for softmax + cross-entropy, whose Δ^L is made in d directly), y the targets, d
# the buffer Δ^L goes to, tmp a scratch shaped like z, col an (m, 1) scratch; with ``rows`` (an (m,)
# buffer) it writes each example's cost there and returns None, else it returns Σ_i C_i.

def _total_or_rows(c: Any, rows: Any) -> Any:
    if rows is None:
        return np.add.reduce(c, axis=None)
    np.add.reduce(c, axis=1, out=rows)
    return None


def _half_squared(d: Any, tmp: Any, rows: Any, k: Constants) -> Any:
    """The quadratic cost of the output error d = A − Y: ½‖d‖² over the batch (``rows`` None), else
    ½‖d_i‖² written into ``rows`` per row (weighted examples) and None returned."""
    if rows is None:
        return np.vdot(d, d) * k.half
    np.multiply(d, d, out=tmp)
    _total_or_rows(tmp, rows)
    np.multiply(rows, k.half, out=rows)
    return None


def _softmax_(z: Any, col: Any) -> None:
    """A = softmax(z) over z (max-shifted)."""
    np.max(z, axis=1, keepdims=True, out=col)
    np.subtract(z, col, out=z)
    np.exp(z, out=z)
    np.add.reduce(z, axis=1, keepdims=True, out=col)
    np.divide(z, col, out=z)


def softmax_cross_entropy(z: Any, y: Any, d: Any, tmp: Any, col: Any, rows: Any, k: Constants) -> Any:
    """C = Σ_j y_j (ln Σ e^{z−max} − (z_j − max));  Δ^L = A − Y."""
    np.max(z, axis=1, keepdims=True, out=col)
    np.subtract(z, col, out=z)                 # shifted logits
    np.exp(z, out=d)
    np.add.reduce(d, axis=1, keepdims=True, out=col)
    np.divide(d, col, out=d)                   # A^L
    np.log(col, out=col)
    np.subtract(col, z, out=tmp)               # ln Σe − z_shifted
    if rows is None:
        total = np.vdot(y, tmp)
    else:
        np.multiply(tmp, y, out=tmp)
        total = _total_or_rows(tmp, rows)
    np.subtract(d, y, out=d)                   # BP1 fused: σ' cancels
    return total


def sigmoid_quadratic(z: Any, y: Any, d: Any, tmp: Any, col: Any, rows: Any, k: Constants) -> Any:
    """C = ½‖A − Y‖²;  Δ^L = (A − Y) ⊙ A(1 − A)."""
    sigmoid_(z, k, tmp)
    np.subtract(z, y, out=d)
    total = _half_squared(d, tmp, rows, k)
    sigmoid_back_(z, d, k, tmp, None)
    return total


def sigmoid_cross_entropy(z: Any, y: Any, d: Any, tmp: Any, col: Any, rows: Any, k: Constants) -> Any:
    """C = Σ_j softplus(z_j) − y_j z_j with softplus(z) = max(z, 0) + ln(1 + e^{−|z|});  Δ^L = A − Y."""
    np.abs(z, out=tmp)
    np.negative(tmp, out=tmp)
    np.exp(tmp, out=tmp)
    np.log1p(tmp, out=tmp)
    np.maximum(z, k.zero, out=d)
    np.add(tmp, d, out=tmp)                    # softplus(z)
    np.multiply(y, z, out=d)
    np.subtract(tmp, d, out=tmp)
    total = _total_or_rows(tmp, rows)
    sigmoid_(z, k, tmp)
    np.subtract(z, y, out=d)                   # BP1 fused: σ' cancels
    return total


def softmax_quadratic(z: Any, y: Any, d: Any, tmp: Any, col: Any, rows: Any, k: Constants) -> Any:
    """C = ½‖A − Y‖²;  Δ^L = A ⊙ (G − Σ_j G_j A_j) with G = A − Y (softmax's Jacobian product)."""
    _softmax_(z, col)
    np.subtract(z, y, out=d)
    total = _half_squared(d, tmp, rows, k)
    np.multiply(d, z, out=tmp)
    np.add.reduce(tmp, axis=1, keepdims=True, out=col)
    np.subtract(d, col, out=d)
    np.multiply(d, z, out=d)
    return total


def identity_quadratic(z: Any, y: Any, d: Any, tmp: Any, col: Any, rows: Any, k: Constants) -> Any:
    """C = ½‖Z − Y‖²;  Δ^L = Z − Y."""
    np.subtract(z, y, out=d)
    return _half_squared(d, tmp, rows, k)


OUTPUT: dict[tuple[str, str], Callable[..., Any]] = {
    ("softmax", "cross_entropy"): softmax_cross_entropy, ("sigmoid", "quadratic"): sigmoid_quadratic,
    ("sigmoid", "cross_entropy"): sigmoid_cross_entropy, ("softmax", "quadratic"): softmax_quadratic,
    ("identity", "quadratic"): identity_quadratic,
}


def output_(name: str, z: Any, col: Any, k: Constants, tmp: Any) -> None:
    """A^L over z for inference."""
    if name == "softmax":
        _softmax_(z, col)
    elif name == "sigmoid":
        sigmoid_(z, k, tmp)
