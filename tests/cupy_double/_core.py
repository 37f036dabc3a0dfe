"""The double's ``cupy.ndarray`` and the machinery every operation goes through.

CuPy's rules kept (CuPy 14.2, ``cupy/_core/_kernel.pyx``, ``core.pyx``, ``_routines_indexing.pyx``):
- an operation runs on the *current* device; an operand on another device raises ``ValueError: The
  device where the array resides (1) is different from the current device (0). Peer access is
  unavailable between these devices.``
- NumPy arrays are refused as operands (``TypeError: Unsupported type <class 'numpy.ndarray'>``), and
  ``numpy.asarray(x)`` raises (``__array__`` refuses implicit conversion); ``.get()`` is the way out;
- reductions and scalar indexing give 0-d device arrays; views (slices, reshape, transpose) are free;
- results are allocated on the current device; views keep the device of their base.
Each kernel launch is one device operation; each new buffer an allocation from the memory pool."""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any

import numpy as np

from . import cuda as _cuda

RECORDERS = _cuda.RECORDERS
_LIVE: dict[int, int] = {}  # id(root NumPy buffer) -> device id
_SCALARS = (bool, int, float, complex, np.generic)


class _Fuse(threading.local):
    """State of the ``cupy.fuse`` trace in progress (``depth`` 0 = not fusing)."""

    def __init__(self) -> None:
        self.depth = 0
        self.reductions = 0
        self.inplace = 0


FUSE = _Fuse()


def _device_error(arr_dev: int, dev: int) -> ValueError:
    return ValueError(
        f"The device where the array resides ({arr_dev}) is different from the current device ({dev}). "
        "Peer access is unavailable between these devices.")


def unwrap(x: Any, dev: int) -> Any:
    """The NumPy buffer of a device operand (checked to be on ``dev``); scalars pass; host arrays and
    other objects are refused like CuPy refuses them."""
    if isinstance(x, ndarray):
        if x._dev != dev:
            raise _device_error(x._dev, dev)
        return x._a
    if x is None or isinstance(x, _SCALARS):
        return x
    raise TypeError(f"Unsupported type {type(x)}")


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _release(key: int, dev: int, size: int) -> None:
    _LIVE.pop(key, None)
    _cuda.POOL._free(dev, size)


def adopt(a: Any, dev: int) -> "ndarray":
    """Wrap a NumPy result as a device array: a view of a live buffer keeps that buffer's device; a new
    buffer is an allocation on ``dev`` (none while a fused kernel is being traced: no temporaries)."""
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    root = _root(a)
    key = id(root)
    if key in _LIVE:
        return ndarray._wrap(a, _LIVE[key])
    if FUSE.depth:
        return ndarray._wrap(a, dev)
    size = _cuda.POOL._malloc(dev, root.nbytes)
    _LIVE[key] = dev
    weakref.finalize(root, _release, key, dev, size)
    return ndarray._wrap(a, dev)


def is_view_of_live(a: np.ndarray) -> bool:
    return id(_root(a)) in _LIVE


def _fuse_check(name: str, kind: str, has_out: bool) -> None:
    if kind in ("other", "creation", "view"):
        raise TypeError(f"cupy.fuse cannot fuse {name}(): only elementwise ufuncs and one final reduction "
                        "(sum/prod/max/min) may appear in a fused function")
    if kind == "reduction":
        FUSE.reductions += 1
        if FUSE.reductions > 1:
            raise NotImplementedError("Multiple reduction is not implemented yet")
    if has_out:
        FUSE.inplace += 1


def call(name: str, fn: Any, kind: str, args: tuple, kwargs: dict, seq: bool = False) -> Any:
    """Run ``fn`` (NumPy) on the unwrapped operands under CuPy's rules; count one device operation
    (views excepted) and the allocation of its result."""
    dev = _cuda.STATE.current
    out = kwargs.get("out")
    if FUSE.depth:
        _fuse_check(name, kind, out is not None)
        if kind == "reduction" and kwargs.get("keepdims"):
            raise NotImplementedError(f"cupy.{name} does not support `keepdims` in fusion yet.")
    if seq:
        first = [unwrap(a, dev) for a in args[0]]
        np_args = [first] + [unwrap(a, dev) for a in args[1:]]
    elif kind in ("elementwise", "reduction"):
        np_args = [unwrap(a, dev) for a in args]
    else:  # shapes, axes, repeats: tuples and lists of Python numbers pass
        np_args = [a if _is_shape(a) else unwrap(a, dev) for a in args]
    if kwargs:
        kwargs = {k: (unwrap(v, dev) if k == "out" or isinstance(v, (ndarray, np.ndarray)) else v)
                  for k, v in kwargs.items()}
        if isinstance(out, tuple):
            kwargs["out"] = tuple(unwrap(o, dev) for o in out)
    with np.errstate(all="ignore"):  # CuPy never warns about overflow, division by zero or invalid values
        res = fn(*np_args, **kwargs)
    if out is not None:
        if not FUSE.depth:
            RECORDERS.op()
        return out
    if isinstance(res, tuple):
        wrapped = tuple(adopt(r, dev) for r in res)
        copied = not all(is_view_of_live(r._a) for r in wrapped) or kind != "view"
    else:
        if kind == "view" and isinstance(res, np.ndarray) and is_view_of_live(res):
            return adopt(res, dev)
        wrapped = adopt(res, dev)
        copied = True
    if copied and not FUSE.depth:
        RECORDERS.op()
    return wrapped


def _is_shape(a: Any) -> bool:
    return isinstance(a, (tuple, list)) and all(isinstance(v, (int, np.integer)) or v is None for v in a)


def _no_fuse(what: str) -> None:
    if FUSE.depth:
        raise TypeError(f"{what} is not supported inside cupy.fuse (use the cupy functions on the inputs)")


def _index_key(key: Any, dev: int) -> tuple[Any, bool, bool]:
    """``(NumPy key, advanced, boolean mask)``: device index arrays are checked; host index arrays and
    lists are accepted (CuPy uploads them)."""
    parts = key if isinstance(key, tuple) else (key,)
    out, advanced, mask = [], False, False
    for k in parts:
        if isinstance(k, ndarray):
            k = unwrap(k, dev)
        elif isinstance(k, list):
            k = np.asarray(k)
            RECORDERS.h2d()
        elif isinstance(k, np.ndarray):
            RECORDERS.h2d()
        if isinstance(k, np.ndarray):
            advanced = True
            mask = mask or k.dtype == np.bool_
        out.append(k)
    if not advanced and not any(k is Ellipsis for k in out):
        out.append(Ellipsis)  # scalar indexing gives a 0-d view, as in CuPy
    return tuple(out), advanced, mask


class _Flags:
    def __init__(self, a: np.ndarray) -> None:
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


class _Data:
    def __init__(self, arr: "ndarray") -> None:
        self.ptr = arr._a.__array_interface__["data"][0]
        self.device_id = arr._dev
        self.mem = self


def _binary(ufunc: np.ufunc, reflected: bool = False) -> Any:
    name = ufunc.__name__

    def method(self, other):
        if isinstance(other, np.ndarray) and not reflected:
            raise TypeError(f"Unsupported type {type(other)}")
        args = (other, self) if reflected else (self, other)
        return call(name, ufunc, "elementwise", args, {})

    return method


def _inplace(ufunc: np.ufunc) -> Any:
    name = ufunc.__name__

    def method(self, other):
        call(name, ufunc, "elementwise", (self, other), {"out": self})
        return self

    return method


def _reduction_method(fn: Any, name: str) -> Any:
    def method(self, axis=None, dtype=None, out=None, keepdims=False):
        _no_fuse(f"x.{name}()")
        kwargs = {"axis": axis, "keepdims": keepdims}
        if dtype is not None:
            kwargs["dtype"] = dtype
        if out is not None:
            kwargs["out"] = out
        return call(name, fn, "reduction", (self,), kwargs)

    return method


class ndarray:
    """The double's device array. No implicit host conversion: ``numpy.asarray`` raises, use
    ``.get()``."""

    __slots__ = ("_a", "_dev", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:
        nd = adopt(np.empty(shape, dtype=dtype, order=order), _cuda.STATE.current)
        self._a, self._dev = nd._a, nd._dev

    @classmethod
    def _wrap(cls, a: np.ndarray, dev: int) -> "ndarray":
        obj = object.__new__(cls)
        obj._a = a
        obj._dev = dev
        return obj

    # --- attributes -------------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _Data(self))
    device = property(lambda self: _cuda.Device(self._dev))

    @property
    def base(self) -> Any:
        return None if self._a.base is None else ndarray._wrap(self._a.base, self._dev)

    @property
    def T(self) -> "ndarray":
        return ndarray._wrap(self._a.T, self._dev)

    @property
    def mT(self) -> "ndarray":
        return ndarray._wrap(np.swapaxes(self._a, -1, -2), self._dev)

    @property
    def real(self) -> "ndarray":
        return ndarray._wrap(self._a.real, self._dev)

    @property
    def __cuda_array_interface__(self) -> dict:
        iface = dict(self._a.__array_interface__)
        iface["version"] = 3
        iface["stream"] = 1
        return iface

    # --- leaving the device (each a device->host sync) ---------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
        _no_fuse("x.get()")
        RECORDERS.sync()
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def item(self) -> Any:
        _no_fuse("x.item()")
        RECORDERS.sync()
        return self._a.item()

    def tolist(self) -> Any:
        RECORDERS.sync()
        return self._a.tolist()

    def __float__(self) -> float:
        _no_fuse("float(x)")
        RECORDERS.sync()
        return float(self._a)

    def __int__(self) -> int:
        _no_fuse("int(x)")
        RECORDERS.sync()
        return int(self._a)

    def __complex__(self) -> complex:
        RECORDERS.sync()
        return complex(self._a)

    def __bool__(self) -> bool:
        if FUSE.depth:
            raise Exception("Can't cast to bool")
        RECORDERS.sync()
        return bool(self._a)

    def __repr__(self) -> str:
        RECORDERS.sync()
        return "array(" + np.array2string(self._a, separator=", ", prefix="array(") + f", device={self._dev})"

    __str__ = __repr__

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def __reduce__(self) -> Any:
        return (_unpickle, (self.get(),))

    # --- NumPy protocols: NumPy functions on device arrays dispatch to the double ------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        from . import _namespace

        fn = getattr(_namespace, ufunc.__name__, None)
        if method != "__call__" or fn is None:
            return NotImplemented
        return fn(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        from . import _namespace

        fn = getattr(_namespace, func.__name__, None)
        if fn is None:
            return NotImplemented
        return fn(*args, **kwargs)

    # --- DLPack: CUDA capsules --------------------------------------------------------------------
    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:
        if dl_device is None or tuple(dl_device) == self.__dlpack_device__():
            if copy is True:
                raise BufferError("copy=True only supported for copy to CPU.")
            return _cuda_capsule(self)
        if tuple(dl_device) == (1, 0):
            if copy is False:
                raise ValueError("GPU memory cannot be exported to CPU without copy.")
            return self.get().__dlpack__()
        raise BufferError("unsupported device requested.")

    # --- shape and copies -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        for i in range(len(self._a)):
            yield self[i]

    def __getitem__(self, key: Any) -> "ndarray":
        _no_fuse("indexing")
        dev = _cuda.STATE.current
        np_key, advanced, mask = _index_key(key, dev if _has_device_index(key) else self._dev)
        if not advanced:
            return ndarray._wrap(self._a[np_key], self._dev)
        if self._dev != dev:
            raise _device_error(self._dev, dev)
        if mask:
            RECORDERS.sync()  # the number of True entries is read back to size the result
        res = self._a[np_key]
        RECORDERS.op()
        return adopt(res, dev)

    def __setitem__(self, key: Any, value: Any) -> None:
        if FUSE.depth:
            if key is Ellipsis or key == slice(None):
                from . import _namespace

                _namespace.copyto(self, value)
                return
            raise ValueError("The fusion supports `[...]` or `[:]`.")
        dev = _cuda.STATE.current
        if self._dev != dev:
            raise _device_error(self._dev, dev)
        np_key, _, _ = _index_key(key, dev)
        if isinstance(value, np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value[()]
        value = unwrap(value, dev)
        self._a[np_key] = value
        RECORDERS.op()

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> "ndarray":
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return call("astype", lambda a: a.astype(dtype, order=order), "elementwise", (self,), {})

    def copy(self, order: str = "C") -> "ndarray":
        from . import _namespace

        return _namespace.copy(self, order=order)

    def __copy__(self) -> "ndarray":
        return self.copy()

    def __deepcopy__(self, memo: Any) -> "ndarray":
        with _cuda.Device(self._dev):
            return self.copy()

    def reshape(self, *shape: Any, order: str = "C") -> "ndarray":
        _no_fuse("x.reshape()")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        res = self._a.reshape(shape, order=order)
        if _root(res) is _root(self._a):
            return ndarray._wrap(res, self._dev)  # a view: no kernel, stays on the array's device
        dev = _cuda.STATE.current
        if self._dev != dev:
            raise _device_error(self._dev, dev)
        RECORDERS.op()
        return adopt(res, dev)

    def ravel(self, order: str = "C") -> "ndarray":
        return self.reshape(-1, order=order)

    def flatten(self) -> "ndarray":
        return self.copy().reshape(-1)

    def view(self, dtype: Any = None) -> "ndarray":
        return ndarray._wrap(self._a.view() if dtype is None else self._a.view(dtype), self._dev)

    def transpose(self, *axes: Any) -> "ndarray":
        return ndarray._wrap(self._a.transpose(*axes), self._dev)

    def swapaxes(self, a: int, b: int) -> "ndarray":
        return ndarray._wrap(self._a.swapaxes(a, b), self._dev)

    def squeeze(self, axis: Any = None) -> "ndarray":
        return ndarray._wrap(self._a.squeeze(axis), self._dev)

    def fill(self, value: Any) -> None:
        _no_fuse("x.fill()")
        self[...] = value

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Host -> device copy into this array (``cupy.ndarray.set``)."""
        RECORDERS.h2d()
        self._a[...] = arr

    def take(self, indices: Any, axis: Any = None, out: Any = None) -> "ndarray":
        from . import _namespace

        return _namespace.take(self, indices, axis=axis, out=out)

    def clip(self, min: Any = None, max: Any = None, out: Any = None) -> "ndarray":
        from . import _namespace

        return _namespace.clip(self, min, max, out=out)

    def dot(self, b: Any, out: Any = None) -> "ndarray":
        from . import _namespace

        return _namespace.dot(self, b, out=out)

    def conj(self) -> "ndarray":
        from . import _namespace

        return _namespace.conj(self)

    def argsort(self, axis: int = -1) -> "ndarray":
        from . import _namespace

        return _namespace.argsort(self, axis=axis)

    def nonzero(self) -> tuple:
        from . import _namespace

        return _namespace.nonzero(self)

    def __matmul__(self, other: Any) -> "ndarray":
        from . import _namespace

        return _namespace.matmul(self, other)

    def __rmatmul__(self, other: Any) -> "ndarray":
        from . import _namespace

        return _namespace.matmul(other, self)

    def __neg__(self) -> "ndarray":
        return call("negative", np.negative, "elementwise", (self,), {})

    def __pos__(self) -> "ndarray":
        return call("positive", np.positive, "elementwise", (self,), {})

    def __abs__(self) -> "ndarray":
        return call("absolute", np.absolute, "elementwise", (self,), {})

    def __invert__(self) -> "ndarray":
        return call("invert", np.invert, "elementwise", (self,), {})

    __hash__ = None  # type: ignore[assignment]


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                   ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))
    setattr(ndarray, f"__r{_name}__", _binary(_uf, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name, _uf in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_uf))
for _name, _fn in [("sum", np.sum), ("prod", np.prod), ("max", np.max), ("min", np.min), ("mean", np.mean),
                   ("any", np.any), ("all", np.all)]:
    setattr(ndarray, _name, _reduction_method(_fn, _name))


def _argreduce(fn: Any, name: str) -> Any:
    def method(self, axis=None, out=None, keepdims=False):
        _no_fuse(f"x.{name}()")
        return call(name, fn, "other", (self,), {"axis": axis, "keepdims": keepdims})

    return method


ndarray.argmax = _argreduce(np.argmax, "argmax")
ndarray.argmin = _argreduce(np.argmin, "argmin")
ndarray.__module__ = "cupy"


def _has_device_index(key: Any) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, ndarray) for k in parts)


def _unpickle(host: np.ndarray) -> ndarray:
    RECORDERS.h2d()
    return adopt(np.array(host, copy=True), _cuda.STATE.current)


# --- a CUDA DLPack capsule (device type kDLCUDA), so consumers see where the memory lives ------------
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_KEEP: list = []  # the capsules' structs and their arrays (the deleter is NULL; tests are short-lived)
_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


def _cuda_capsule(x: ndarray) -> Any:
    a = x._a
    kind = {"f": 2, "i": 0, "u": 1, "b": 6, "c": 5}[a.dtype.kind]
    shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
    strides = (ctypes.c_int64 * max(a.ndim, 1))(*[s // a.itemsize for s in a.strides])
    managed = _DLManagedTensor()
    managed.dl_tensor = _DLTensor(a.__array_interface__["data"][0], _DLDevice(2, x._dev), a.ndim,
                                  _DLDataType(kind, a.itemsize * 8, 1), shape, strides, 0)
    _KEEP.append((managed, shape, strides, a))
    return _PyCapsule_New(ctypes.addressof(managed), b"dltensor", None)
