"""The functions of the double's ``cupy`` namespace, each a NumPy function run under CuPy's rules by
``_core.call``: elementwise ufuncs (fusable), reductions (fusable once, at the end of a fused function),
views (free), and everything else (one kernel each, not fusable). Creation functions take no
``device=``: they allocate on the current device, as CuPy's do."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from . import _core, cuda as _cuda
from ._core import RECORDERS, adopt, call, ndarray, unwrap


class ufunc:
    """``cupy.ufunc``: call, ``reduce``, ``accumulate``, ``outer`` and ``at``."""

    def __init__(self, np_ufunc: np.ufunc) -> None:
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types = np_ufunc.types

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        nin = self._u.nin
        if len(args) > nin:  # an output given positionally
            outs = args[nin:]
            kwargs["out"] = outs[0] if len(outs) == 1 else tuple(outs)
            args = args[:nin]
        return call(self.__name__, self._u, "elementwise", args, kwargs)

    def reduce(self, a: Any, axis: Any = 0, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        kwargs = {"axis": axis, "keepdims": keepdims, "dtype": dtype}
        if out is not None:
            kwargs["out"] = out
        return call(f"{self.__name__}.reduce", self._u.reduce, "reduction", (a,), kwargs)

    def accumulate(self, a: Any, axis: int = 0, dtype: Any = None, out: Any = None) -> Any:
        return call(f"{self.__name__}.accumulate", self._u.accumulate, "other", (a,), {"axis": axis, "dtype": dtype})

    def outer(self, a: Any, b: Any) -> Any:
        return call(f"{self.__name__}.outer", self._u.outer, "other", (a, b), {})

    def at(self, a: Any, indices: Any, b: Any = None) -> None:
        dev = _cuda.STATE.current
        args = (unwrap(a, dev), unwrap(indices, dev)) + (() if b is None else (unwrap(b, dev),))
        self._u.at(*args)
        RECORDERS.op()

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"


_UFUNCS = """absolute add arccos arccosh arcsin arcsinh arctan arctan2 arctanh bitwise_and bitwise_or
bitwise_xor cbrt ceil conjugate copysign cos cosh deg2rad degrees divide equal exp exp2 expm1 fabs
float_power floor floor_divide fmax fmin fmod frexp gcd greater greater_equal heaviside hypot invert
isfinite isinf isnan lcm ldexp left_shift less less_equal log log10 log1p log2 logaddexp logaddexp2
logical_and logical_not logical_or logical_xor maximum minimum modf multiply negative nextafter
not_equal positive power rad2deg radians reciprocal remainder right_shift rint sign signbit sin sinh
spacing sqrt square subtract tan tanh true_divide trunc""".split()
_g = globals()
for _n in _UFUNCS:
    _g[_n] = ufunc(getattr(np, _n))
abs = _g["absolute"]  # noqa: A001
conj = _g["conjugate"]
mod = _g["remainder"]
bitwise_not = bitwise_invert = _g["invert"]


def _make(name: str, fn: Any, kind: str, seq: bool = False) -> Any:
    def f(*args: Any, **kwargs: Any) -> Any:
        return call(name, fn, kind, args, kwargs, seq=seq)

    f.__name__ = name
    f.__qualname__ = name
    f.__wrapped__ = fn  # its signature is NumPy's (what the double accepts)
    return f


for _n in "sum prod max min amax amin mean std var any all nansum nanmax nanmin nanmean".split():
    _g[_n] = _make(_n, getattr(np, _n), "reduction")
for _n in """matmul dot vdot inner outer tensordot einsum take take_along_axis sort argsort
searchsorted cumsum cumprod diff roll tile repeat pad tril triu diag trace isin kron cross
count_nonzero interp bincount put_along_axis""".split():
    _g[_n] = _make(_n, getattr(np, _n), "other")
for _n in "concatenate stack vstack hstack column_stack dstack".split():
    _g[_n] = _make(_n, getattr(np, _n), "other", seq=True)
for _n in """ravel transpose swapaxes moveaxis rollaxis expand_dims squeeze broadcast_to flip fliplr
flipud diagonal atleast_1d atleast_2d atleast_3d split array_split""".split():
    _g[_n] = _make(_n, getattr(np, _n), "view")
for _n in "clip where isclose nan_to_num real imag around round fix".split():
    _g[_n] = _make(_n, getattr(np, _n), "elementwise")
round_ = _g["around"]


def _arg_reduction(name: str, np_fn: Any) -> Any:
    def f(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        kwargs = {"axis": axis, "keepdims": keepdims}
        if out is not None:
            kwargs["out"] = out
        res = call(name, np_fn, "other", (a,), kwargs)
        return res if dtype is None or out is not None else res.astype(dtype, copy=False)

    f.__name__ = name
    return f


argmax = _arg_reduction("argmax", np.argmax)   # CuPy's take dtype= (NumPy's do not)
argmin = _arg_reduction("argmin", np.argmin)


def reshape(a: Any, newshape: Any, order: str = "C", copy: Any = None) -> Any:
    """CuPy 14.2's ``reshape(a, newshape, order, copy)`` (a view where possible, free)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    out = a.reshape(newshape, order=order)
    if copy is True:
        return out.copy()
    if copy is False and not _core.is_view_of_live(out._a):
        raise ValueError("Unable to avoid copy while reshaping.")
    return out


def broadcast_arrays(*args: Any) -> list:
    return list(call("broadcast_arrays", np.broadcast_arrays, "view", args, {}))


def nonzero(a: Any) -> tuple:
    RECORDERS.sync()  # the number of nonzero entries is read back to size the result
    return call("nonzero", np.nonzero, "other", (a,), {})


def argwhere(a: Any) -> Any:
    RECORDERS.sync()
    return call("argwhere", np.argwhere, "other", (a,), {})


def flatnonzero(a: Any) -> Any:
    RECORDERS.sync()
    return call("flatnonzero", np.flatnonzero, "other", (a,), {})


def unique(a: Any, *args: Any, **kwargs: Any) -> Any:
    RECORDERS.sync()
    return call("unique", np.unique, "other", (a,) + args, kwargs)


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Any:
    return _g["all"](_g["isclose"](a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def array_equal(a: Any, b: Any, equal_nan: bool = False) -> Any:
    if a.shape != b.shape:
        return asarray(False)
    return _g["all"](_g["equal"](a, b))


def copyto(dst: ndarray, src: Any, casting: str = "same_kind", where: Any = None) -> None:
    kwargs = {"casting": casting} if where is None else {"casting": casting, "where": where}
    call("copyto", lambda s, **k: np.copyto(unwrap(dst, _cuda.STATE.current), s, **k), "elementwise",
         (src,), kwargs)
    if _core.FUSE.depth:
        _core.FUSE.inplace += 1


def copy(a: ndarray, order: str = "K") -> ndarray:
    """A copy on the current device (CuPy copies across devices with a peer copy)."""
    if _core.FUSE.depth:
        return call("copy", np.copy, "elementwise", (a,), {})
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    RECORDERS.op()
    return adopt(np.array(a._a, order=order, copy=True), _cuda.STATE.current)


# --- creation: no device= (CuPy allocates on the current device) -----------------------------------
def _created(a: np.ndarray, fill: bool = True) -> ndarray:
    if _core.FUSE.depth:
        raise TypeError("array creation is not supported inside cupy.fuse")
    if fill:
        RECORDERS.op()
    return adopt(a, _cuda.STATE.current)


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _created(np.empty(shape, dtype=dtype, order=order), fill=False)


def zeros(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _created(np.zeros(shape, dtype=dtype, order=order))


def ones(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _created(np.ones(shape, dtype=dtype, order=order))


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> ndarray:
    if isinstance(fill_value, ndarray):
        fill_value = unwrap(fill_value, _cuda.STATE.current)
    return _created(np.full(shape, fill_value, dtype=dtype, order=order))


def _like(np_fn: Any, prototype: Any, args: tuple, dtype: Any, shape: Any, fill: bool) -> ndarray:
    if not isinstance(prototype, ndarray):
        raise TypeError(f"Unsupported type {type(prototype)}")
    args = tuple(unwrap(v, prototype._dev) if isinstance(v, ndarray) else v for v in args)
    return _created(np_fn(np.empty(prototype.shape, prototype.dtype), *args, dtype=dtype, order="C", shape=shape),
                    fill)


# CuPy 14.2's own parameter names (empty_like's first is ``prototype``, the others' ``a``)
def empty_like(prototype: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
    return _like(np.empty_like, prototype, (), dtype, shape, False)


def zeros_like(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
    return _like(np.zeros_like, a, (), dtype, shape, True)


def ones_like(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
    return _like(np.ones_like, a, (), dtype, shape, True)


def full_like(a: Any, fill_value: Any, dtype: Any = None, order: str = "K", subok: Any = None,
              shape: Any = None) -> ndarray:
    return _like(np.full_like, a, (fill_value,), dtype, shape, True)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> ndarray:
    if stop is None:
        start, stop = 0, start
    return _created(np.arange(start, stop, step, dtype=dtype))


def eye(N: int, M: Any = None, k: int = 0, dtype: Any = float, order: str = "C") -> ndarray:
    return _created(np.eye(N, M, k, dtype=dtype, order=order))


def identity(n: int, dtype: Any = float) -> ndarray:
    return _created(np.identity(n, dtype=dtype))


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    res = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis)
    if retstep:
        return _created(res[0]), res[1]
    return _created(res)


def meshgrid(*xi: Any, **kwargs: Any) -> list:
    return list(call("meshgrid", np.meshgrid, "other", xi, kwargs))


# --- host <-> device ---------------------------------------------------------------------------------
def _has_device_arrays(obj: Any) -> bool:
    return isinstance(obj, (list, tuple)) and builtins.any(isinstance(o, ndarray) or _has_device_arrays(o) for o in obj)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, copy: Any = None, blocking: bool = False) -> ndarray:
    """On the current device: a device array there is returned as is (``copy=None``, same dtype); one on
    another device is copied here; host data (NumPy, lists, scalars) is uploaded."""
    dev = _cuda.STATE.current
    if isinstance(a, ndarray):
        if a._dev != dev:
            out = globals()["copy"](a)
            return out if dtype is None or np.dtype(dtype) == out.dtype else out.astype(dtype)
        if copy is True:
            out = globals()["copy"](a)
            return out if dtype is None else out.astype(dtype, copy=False)
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested")
        return a.astype(dtype)
    if _has_device_arrays(a):
        return _g["stack"]([asarray(o, dtype=dtype) for o in a])
    if copy is False:
        raise ValueError("Unable to avoid copy while creating an array as requested")
    if hasattr(a, "__dlpack_device__") and not isinstance(a, np.ndarray) and a.__dlpack_device__()[0] == 2:
        raise TypeError(f"the CuPy test double cannot read the device memory of {type(a)}")
    host = np.array(a, dtype=dtype, copy=True)
    if not host.dtype.isnative:
        host = host.astype(host.dtype.newbyteorder("="))
    RECORDERS.h2d()
    return _created(host)


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, *, blocking: bool = False) -> ndarray:
    out = asarray(obj, dtype=dtype, copy=True if copy else None)
    while out.ndim < ndmin:
        out = out[None]
    return out


asanyarray = asarray


def ascontiguousarray(a: ndarray, dtype: Any = None) -> ndarray:
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return call("ascontiguousarray", np.ascontiguousarray, "other", (a,), {"dtype": dtype})


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, *, blocking: bool = True) -> np.ndarray:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def from_dlpack(array: Any, *, device: Any = None, copy: Any = None) -> ndarray:
    """Zero copy from a DLPack producer on a CUDA device (the double reads only its own arrays); host
    (kDLCPU) producers are refused as CuPy refuses them."""
    if device is not None:
        raise NotImplementedError("from_dlpack() does not support device yet.")
    dev_type, dev_id = array.__dlpack_device__()
    if dev_type == 1:
        raise TypeError("CPU arrays cannot be directly imported to CuPy. "
                        "Use `cupy.array(numpy.from_dlpack(input))` instead.")
    if dev_type != 2:
        raise TypeError(f"Unsupported array type: {dev_type}")
    if not isinstance(array, ndarray):
        raise TypeError(f"the CuPy test double cannot read the device memory of {type(array)}")
    array.__dlpack__(stream=1)
    return ndarray._wrap(array._a, array._dev)


def get_array_module(*args: Any) -> Any:
    import sys

    return sys.modules["cupy"] if builtins.any(isinstance(a, ndarray) for a in args) else np


def broadcast_shapes(*shapes: Any) -> tuple:
    return np.broadcast_shapes(*shapes)


def get_default_memory_pool() -> _cuda.MemoryPool:
    return _cuda.POOL


class _PinnedPool:
    def free_all_blocks(self) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0


_PINNED = _PinnedPool()


def get_default_pinned_memory_pool() -> _PinnedPool:
    return _PINNED


def is_available() -> bool:
    return _cuda.is_available()


# dtypes and constants are NumPy's (as in CuPy)
for _n in """bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64
complex128 intp uintp dtype finfo iinfo result_type can_cast promote_types issubdtype isdtype integer
floating number inexact signedinteger unsignedinteger complexfloating generic character
newaxis inf nan pi e euler_gamma min_scalar_type common_type""".split():
    _g[_n] = getattr(np, _n)
bool = np.bool_  # noqa: A001  (cupy.bool is numpy's bool dtype in CuPy 14)
half, single, double = np.float16, np.float32, np.float64
