"""Checks at the API boundary: every bad input becomes a ValueError/TypeError that names the argument,
what was expected and what was given. Array-API only; host data is moved once, explicitly."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import array_api_compat
from array_api_compat import array_namespace

from bpgpu.backend.arrays import adopt, to_backend, to_host
from bpgpu.backend.device import Backend, backend_of
from bpgpu.errors import ConfigError, DataError, DeviceMismatchError, ShapeError

_HOST_TYPES = (list, tuple, int, float)


def _is_host(x: Any) -> bool:
    """Lists, Python numbers, NumPy arrays and NumPy scalars (``np.float32(3.0)``, taken as 0-d)."""
    return isinstance(x, _HOST_TYPES) or array_api_compat.is_numpy_array(x)


def _describe(x: Any) -> str:
    """A short description of what the caller passed, for error messages."""
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype"):
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r:.60}"


def _kind(x: Any, name: str = "x") -> str:
    """'bool', 'int', 'float', 'complex' or 'other' for an array or host data; anything that is
    neither an array nor a (nested) list of numbers is a TypeError/DataError naming ``name``."""
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise TypeError(
            f"{name} must be an array (NumPy, CuPy, torch, …) or a nested list of numbers; got {_describe(x)}."
        )
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        import numpy  # host data only: lists and scalars

        try:
            dtype = numpy.asarray(x).dtype
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{name} could not be read as a rectangular array of numbers (ragged rows or mixed "
                f"types?): {exc}"
            ) from None
    if not isinstance(x, _HOST_TYPES) and not array_api_compat.is_array_api_obj(x):
        raise TypeError(
            f"{name} must be an array (NumPy, CuPy, torch, …) or a nested list of numbers; got {_describe(x)}."
        )
    xp = array_namespace(x) if not isinstance(x, _HOST_TYPES) else None
    if xp is None or array_api_compat.is_numpy_array(x):
        kind = getattr(dtype, "kind", "O")
        return {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}.get(kind, "other")
    for kind, names in (("bool", "bool"), ("int", "integral"), ("float", "real floating"), ("complex", "complex floating")):
        if xp.isdtype(dtype, names):
            return kind
    return "other"


def on_backend(x: Any, backend: Backend, name: str, dtype: Any = None, values: bool = True) -> Any:
    """``x`` as an array of the network's backend: host data (NumPy, lists) is copied to the device
    here, once; an array of another library or device is an error (move it, or move the network).
    ``values=False``: a device array's range is not read back before a narrowing cast (no sync)."""
    if _is_host(x):
        masked = getattr(x, "mask", None)  # numpy.ma: the hidden values would silently be trained on
        if masked is not None and bool(masked.any()):
            raise DataError(
                f"{name} is a masked array with {int(masked.sum())} masked value(s); fill or drop them first "
                f"(e.g. {name}.filled(0.0))."
            )
        if type(x).__module__ == "numpy" and not hasattr(x, "__dlpack__"):
            import numpy  # a NumPy scalar: its 0-d array (then the caller's shape check names the argument)

            x = numpy.asarray(x)
        check_range(x, backend, name, dtype)
        try:
            return to_backend(x, backend, dtype)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{name} could not be turned into a numeric array: {exc}") from None
    if not array_api_compat.is_array_api_obj(x):
        raise TypeError(f"{name} must be an array (NumPy, CuPy, torch, …) or a nested list; got {type(x).__name__}.")
    if getattr(x, "is_sparse", False) or str(getattr(x, "layout", "strided")).split(".")[-1] not in ("strided",):
        raise TypeError(f"{name} is a sparse {type(x).__name__}; pass a dense array (e.g. {name}.to_dense()).")
    other = backend_of(x)
    if other.name != backend.name or str(other.device) != str(backend.device):
        taken = adopt(x, backend, name)  # same device by DLPack (zero copy), or host <-> device once
        if taken is not None:
            return on_backend(taken, backend, name, dtype, values)
        raise DeviceMismatchError(
            f"{name} lives on {other.label} but the network is on {backend.label}; move the data "
            f"(bpgpu.to_backend(x, net.backend) or a NumPy array) or the network (net.to(...))."
        )
    if getattr(x, "requires_grad", False):  # a torch tensor in an autograd graph: bpgpu's math is its own
        x = x.detach()
    if dtype is not None and x.dtype != dtype:
        if values:
            check_range(x, backend, name, dtype)
        x = backend.xp.astype(x, dtype)
    return x


def check_range(x: Any, backend: Backend, name: str, dtype: Any) -> None:
    """Finite values of a wider float dtype that would overflow ``dtype`` (1e300 into float32) are a
    DataError saying so (not a later "NaN or infinite" that blames the data's cleanliness)."""
    if dtype is None:
        return
    import numpy  # only for the dtype's range (finfo); the data stays where it is

    try:
        target = numpy.dtype(dtype)
    except TypeError:  # torch.float32, array_api_strict.float32, ...
        target = numpy.dtype(str(dtype).split(".")[-1])
    if target.kind != "f":
        return
    if _is_host(x):
        a = numpy.asarray(x)
        if a.dtype.kind != "f" or a.dtype.itemsize <= target.itemsize or a.size == 0:
            return
        lo, hi = float(numpy.min(a)), float(numpy.max(a))
    else:
        src = array_namespace(x)
        if not src.isdtype(x.dtype, "real floating") or x.dtype == src.float32 or x.size == 0:
            return
        lo, hi = float(src.min(x)), float(src.max(x))
    limit = float(numpy.finfo(target).max)
    worst = max((abs(v) for v in (lo, hi) if math.isfinite(v)), default=0.0)  # NaN/inf: check_finite's case
    if worst > limit:
        raise DataError(
            f"{name} holds {worst:.3g}, which overflows {target.name} (largest {limit:.3g}); scale the data "
            f"(e.g. standardise each feature) or use a float64 network (dtype='float64')."
        )


def check_features(x: Any, backend: Backend, n_in: int, dtype: Any, name: str = "x", check: bool = True) -> Any:
    """A 2-D float array (m, n_in) of finite values on the network's device. ``check=False``: an
    array already on a device is not read back for its values (no host sync; shapes are still checked)."""
    values = check or _is_host(x)
    kind = _kind(x, name)
    if kind not in ("int", "float"):
        raise DataError(
            f"{name} must hold real numbers (an integer or floating dtype); got dtype "
            f"{getattr(x, 'dtype', kind)} ({kind}). Convert it first, e.g. {name}.astype('float32')."
        )
    x = on_backend(x, backend, name, dtype, values)
    if x.ndim != 2:
        hint = " For one example use x[None, :]." if x.ndim == 1 else ""
        raise ShapeError(f"{name} must be 2-D (examples, {n_in} features); got shape {tuple(x.shape)}.{hint}")
    if x.shape[1] != n_in:
        raise ShapeError(
            f"{name} has {x.shape[1]} features per example but the network's input layer has {n_in} "
            f"(got shape {tuple(x.shape)}, expected (m, {n_in}))."
        )
    if x.shape[0] == 0:
        raise DataError(f"{name} is empty (0 examples, shape {tuple(x.shape)}); give at least one row.")
    if values:
        check_finite(x, name)
    return x


def check_finite(x: Any, name: str) -> None:
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise DataError(f"{name} contains {bad} NaN or infinite value(s); clean or impute them first.")


def check_targets(
    y: Any, backend: Backend, m: int, n_out: int, output: str, dtype: Any, name: str = "y",
    cost: str | None = None, check: bool = True,
) -> Any:
    """Targets as float rows (m, n_out): one-hot/target rows, or integer class labels (one-hot encoded
    here) for a softmax output, 0/1 labels for a single sigmoid unit. With ``cost="cross_entropy"``
    the targets must be probabilities in [0, 1] (rows summing to 1 for a softmax output).
    ``check=False``: device arrays are not read back for finiteness, label range or probabilities."""
    values = check or _is_host(y)
    kind = _kind(y, name)
    if kind not in ("int", "float"):
        raise DataError(
            f"{name} must hold numbers (target rows) or integers (class labels); got dtype "
            f"{getattr(y, 'dtype', kind)} ({kind}). Convert it: y.astype('int64') for labels, "
            "y.astype('float32') for 0/1 target rows."
        )
    xp = backend.xp
    if kind == "int":
        y = on_backend(y, backend, name)
        if y.ndim == 1:
            _check_rows(y, m, name)
        if y.ndim == 2 and y.shape[1] == n_out:
            y = xp.astype(y, dtype)  # integer one-hot / 0-1 target rows
        elif y.ndim != 1:
            raise ShapeError(
                f"{name} holds integers, so it must be 1-D class labels of length {m} or integer target "
                f"rows of shape ({m}, {n_out}); got shape {tuple(y.shape)}."
            )
        elif output == "softmax":
            if values:
                _check_label_range(y, n_out, name)
            import array_api_extra as xpx

            y = xpx.one_hot(y, n_out, dtype=dtype, xp=xp)
        elif output == "sigmoid" and n_out > 1:
            raise DataError(
                f"{name} holds integer class labels (shape {tuple(y.shape)}), but the output is {n_out} "
                f"independent sigmoid units; give 0/1 target rows of shape ({m}, {n_out}), or use "
                "output='softmax' for single-label classes."
            )
        elif n_out == 1:
            if output == "sigmoid":
                if values:
                    _check_label_range(y, 2, name, what="binary labels for the single sigmoid unit")
            y = xp.reshape(xp.astype(y, dtype), (-1, 1))
        else:
            raise DataError(
                f"{name} holds integer class labels, which need output='softmax' (or one sigmoid unit); "
                f"the output is {output!r} with {n_out} units: give float target rows of shape ({m}, {n_out})."
            )
    else:
        y = on_backend(y, backend, name, dtype, values)
        if y.ndim == 1 and n_out == 1:
            y = xp.reshape(y, (-1, 1))
        elif y.ndim == 1:
            raise ShapeError(
                f"{name} has shape {tuple(y.shape)} with a floating dtype, but the output layer has {n_out} "
                f"units: give target rows of shape ({m}, {n_out}), or, if these are class labels, pass "
                "them as integers (y.astype('int64'))."
            )
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ShapeError(
            f"{name} must have shape ({m}, {n_out}) (one row of {n_out} targets per example, the output "
            f"layer's width); got {tuple(y.shape)}."
        )
    _check_rows(y, m, name)
    if values:
        check_finite(y, name)
    if values and cost == "cross_entropy":
        _check_probabilities(y, output, name)
    return y


def _check_rows(y: Any, m: int, name: str) -> None:
    if y.shape[0] != m:
        raise ShapeError(
            f"x has {m} examples but {name} has {y.shape[0]} (shape {tuple(y.shape)}); they must have "
            "the same number of rows."
        )


def _scalars(xp: Any, *values: Any) -> list[Any]:
    """Several 0-d device results read back together: one device→host transfer instead of one each."""
    return to_host(xp.stack(list(values))).tolist()


def _check_label_range(y: Any, n: int, name: str, what: str = "") -> None:
    xp = array_namespace(y)
    lo, hi = (int(v) for v in _scalars(xp, xp.min(y), xp.max(y)))
    if lo < 0 or hi >= n:
        what = what or f"class labels for the {n}-class output layer"
        raise DataError(f"{name} must hold {what}, i.e. integers 0…{n - 1}; got labels in [{lo}, {hi}].")


def _check_probabilities(y: Any, output: str, name: str) -> None:
    """Cross-entropy is defined for targets in [0, 1] (rows of a softmax output summing to 1)."""
    xp = array_namespace(y)
    lo, hi, worst = _scalars(xp, xp.min(y), xp.max(y), xp.max(xp.abs(xp.sum(y, axis=1) - 1)))
    if lo < 0 or hi > 1:
        raise DataError(
            f"{name} holds values in [{lo:g}, {hi:g}], but cost='cross_entropy' needs targets in [0, 1] "
            "(probabilities, one-hot rows or 0/1 labels); rescale them, or use cost='quadratic'."
        )
    if output == "softmax":
        if worst > 1e-3:
            raise DataError(
                f"{name}'s rows must each sum to 1 for a softmax output with cross-entropy (one-hot rows or "
                f"class probabilities); a row is off by {worst:.3g}. Give one-hot rows or integer labels, "
                "or use output='sigmoid' for independent 0/1 targets."
            )


def check_sizes(sizes: Any) -> list[int]:
    """``sizes`` as a list of at least two positive integer layer widths."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise ConfigError(f"sizes must be a list of layer widths like [784, 30, 10]; got {sizes!r}.")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"sizes needs at least two layers (input and output), like [784, 30, 10]; got {sizes!r}.")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
            raise ConfigError(
                f"every layer width in sizes must be a positive integer; sizes[{i}] is {s!r} "
                f"(sizes={sizes!r})."
            )
    return [int(s) for s in sizes]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (batch_size ≥ 1, epochs ≥ 0, …); bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ≥ {minimum}; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}; got {value!r}.")
    return int(value)


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (≥ 0 with ``allow_zero``): learning rates, decays, eps."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}; got {value!r}.")
    return value


def check_choice(value: Any, name: str, valid: Sequence[str]) -> str:
    """``value`` as one of the names ``valid`` (case-insensitive); the error lists them."""
    if not isinstance(value, str) or value.lower() not in [v.lower() for v in valid]:
        raise ConfigError(f"{name}={value!r} is not one bpgpu knows; valid: {', '.join(valid)}.")
    return value.lower()


def check_seed(seed: Any, name: str = "seed") -> Any:
    """``None``, a non-negative integer or a ``numpy.random.Generator``."""
    if seed is None or type(seed).__name__ == "Generator":
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"{name} must be None or a non-negative integer (e.g. {name}=0); got {seed!r:.40} "
                          f"({type(seed).__name__}).")
    return int(seed)
