"""Checks at the API boundary: every bad input becomes a ValueError/TypeError that names the argument,
what was expected and what was given. Array-API only; host data is moved once, explicitly."""

from __future__ import annotations

from typing import Any

import array_api_compat
from array_api_compat import array_namespace

from bpgpu.backend.arrays import to_backend
from bpgpu.backend.device import Backend, backend_of
from bpgpu.errors import ConfigError, DataError, DeviceMismatchError, ShapeError

_HOST_TYPES = (list, tuple, int, float)


def _is_host(x: Any) -> bool:
    return isinstance(x, _HOST_TYPES) or array_api_compat.is_numpy_array(x)


def _kind(x: Any) -> str:
    """'bool', 'int', 'float', 'complex' or 'other' for an array or host data."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        import numpy  # host data only: lists and scalars

        dtype = numpy.asarray(x).dtype
    xp = array_namespace(x) if not isinstance(x, _HOST_TYPES) else None
    if xp is None or array_api_compat.is_numpy_array(x):
        kind = getattr(dtype, "kind", "O")
        return {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}.get(kind, "other")
    for kind, names in (("bool", "bool"), ("int", "integral"), ("float", "real floating"), ("complex", "complex floating")):
        if xp.isdtype(dtype, names):
            return kind
    return "other"


def on_backend(x: Any, backend: Backend, name: str, dtype: Any = None) -> Any:
    """``x`` as an array of the network's backend: host data (NumPy, lists) is copied to the device
    here, once; an array of another library or device is an error (move it, or move the network)."""
    if _is_host(x):
        try:
            return to_backend(x, backend, dtype)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{name} could not be turned into a numeric array: {exc}") from None
    if not array_api_compat.is_array_api_obj(x):
        raise TypeError(f"{name} must be an array (NumPy, CuPy, torch, …) or a nested list; got {type(x).__name__}.")
    other = backend_of(x)
    if other.name != backend.name or str(other.device) != str(backend.device):
        raise DeviceMismatchError(
            f"{name} lives on {other.label} but the network is on {backend.label}; move the data "
            f"(bpgpu.to_backend(x, net.backend) or a NumPy array) or the network (net.to(...))."
        )
    if dtype is not None and x.dtype != dtype:
        x = backend.xp.astype(x, dtype)
    return x


def check_features(x: Any, backend: Backend, n_in: int, dtype: Any, name: str = "x") -> Any:
    """A 2-D float array (m, n_in) of finite values on the network's device."""
    kind = _kind(x)
    if kind not in ("int", "float"):
        raise DataError(f"{name} must hold real numbers; got dtype {getattr(x, 'dtype', kind)} ({kind}).")
    x = on_backend(x, backend, name, dtype)
    if x.ndim != 2:
        hint = " For one example use x[None, :]." if x.ndim == 1 else ""
        raise ShapeError(f"{name} must be 2-D (examples, {n_in} features); got shape {tuple(x.shape)}.{hint}")
    if x.shape[1] != n_in:
        raise ShapeError(
            f"{name} has {x.shape[1]} features per example but the network's input layer has {n_in} "
            f"(got shape {tuple(x.shape)}, expected (m, {n_in}))."
        )
    if x.shape[0] == 0:
        raise DataError(f"{name} is empty (0 examples); give at least one row.")
    check_finite(x, name)
    return x


def check_finite(x: Any, name: str) -> None:
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise DataError(f"{name} contains {bad} NaN or infinite value(s); clean or impute them first.")


def check_targets(y: Any, backend: Backend, m: int, n_out: int, output: str, dtype: Any, name: str = "y") -> Any:
    """Targets as float rows (m, n_out): one-hot/target rows, or integer class labels (one-hot encoded
    here) for a softmax output or a single sigmoid unit."""
    kind = _kind(y)
    if kind not in ("int", "float"):
        raise DataError(f"{name} must hold numbers (targets) or integers (labels); got {getattr(y, 'dtype', kind)}.")
    if kind == "int":
        y = on_backend(y, backend, name)
        xp = backend.xp
        if y.ndim == 2 and y.shape[1] == n_out:
            y = xp.astype(y, dtype)  # integer one-hot / 0-1 target rows
        elif y.ndim != 1:
            raise ShapeError(f"{name} holds integers, so it must be 1-D class labels of length {m}; got shape {tuple(y.shape)}.")
        elif output == "softmax" or (output == "sigmoid" and n_out > 1):
            if output != "softmax":
                raise DataError(
                    f"{name} holds integer class labels, but the output is {n_out} independent sigmoid units; "
                    "give 0/1 target rows of shape (m, n_out), or use output='softmax' for single-label classes."
                )
            lo, hi = int(xp.min(y)), int(xp.max(y))
            if lo < 0 or hi >= n_out:
                raise DataError(f"{name} has class labels in [{lo}, {hi}] but the output layer has {n_out} classes (labels 0…{n_out - 1}).")
            import array_api_extra as xpx

            y = xpx.one_hot(y, n_out, dtype=dtype, xp=xp)
        elif n_out == 1:
            y = xp.reshape(xp.astype(y, dtype), (-1, 1))
        else:
            raise DataError(
                f"{name} holds integer labels, which need output='softmax' (or one sigmoid unit); the "
                f"output is {output!r} with {n_out} units: give float target rows of shape (m, {n_out})."
            )
    else:
        y = on_backend(y, backend, name, dtype)
        if y.ndim == 1 and n_out == 1:
            y = backend.xp.reshape(y, (-1, 1))
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ShapeError(f"{name} must have shape ({m}, {n_out}) (one row per example); got {tuple(y.shape)}.")
    if y.shape[0] != m:
        raise ShapeError(f"x has {m} examples but {name} has {y.shape[0]}; they must have the same number of rows.")
    check_finite(y, name)
    return y


def check_sizes(sizes: Any) -> list[int]:
    try:
        out = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ConfigError(f"sizes must be a list of layer widths like [784, 30, 10]; got {sizes!r}.") from None
    if len(out) < 2:
        raise ConfigError(f"sizes needs at least two layers (input and output), like [784, 30, 10]; got {sizes!r}.")
    if any(s <= 0 or s != f for s, f in zip(out, sizes)):
        raise ConfigError(f"every layer width in sizes must be a positive integer; got {sizes!r}.")
    return out
