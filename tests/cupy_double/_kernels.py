"""``cupy.fuse`` and user kernels in the double.

``fuse`` runs the Python function itself on the double's arrays with CuPy's fusion rules (CuPy 14.2
``cupy/_core/fusion.pyx``): positional array/scalar arguments only; elementwise ufuncs, ``where``,
``clip``, ``astype``, in-place updates of arguments (``x += y``, ``x[...] = v``) and at most one reduction
(``sum``/``max``/... with ``axis``), which may not be combined with in-place writes (a fused reduction's
pre-map receives its inputs by value). The whole call is ONE device operation; only its outputs are
allocated (no temporaries).

``ElementwiseKernel``, ``ReductionKernel`` and ``RawKernel`` carry CUDA source the double cannot run:
they run through the NumPy twin registered under the kernel's name (``register_twin``), one operation
per launch; a kernel without a twin raises ``NotImplementedError``."""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from . import cuda as _cuda
from ._core import FUSE, RECORDERS, adopt, ndarray, unwrap

TWINS: dict[str, Callable] = {}
_ACCEPTABLE = (ndarray, np.generic, bool, int, float, complex, type(None))


def register_twin(name: str, fn: Callable) -> None:
    """Run kernels named ``name`` through ``fn`` (NumPy arrays in, NumPy arrays out / written)."""
    TWINS[name] = fn


class Fusion:
    def __init__(self, func: Callable, name: str | None) -> None:
        self.func = func
        self.name = name or func.__name__

    def __call__(self, *args: Any) -> Any:
        if FUSE.depth:  # a fused function called inside another: traced inline
            return self.func(*args)
        if not any(isinstance(a, ndarray) for a in args):
            return self.func(*args)
        for a in args:
            if not isinstance(a, _ACCEPTABLE):
                types = ", ".join(repr(type(x)) for x in args)
                raise TypeError(f"Invalid argument type for '{self.name}': ({types})")
        dev = _cuda.STATE.current
        for a in args:
            unwrap(a, dev)
        saved = (FUSE.reductions, FUSE.inplace)
        FUSE.depth, FUSE.reductions, FUSE.inplace = FUSE.depth + 1, 0, 0
        try:
            ret = self.func(*args)
            if FUSE.reductions and FUSE.inplace:
                raise NotImplementedError(
                    f"fused function {self.name!r} writes to an argument and reduces: CuPy's fused "
                    "reduction receives its inputs by value, so the writes would be lost")
        finally:
            FUSE.depth -= 1
            FUSE.reductions, FUSE.inplace = saved
        outs = ret if isinstance(ret, tuple) else (ret,)
        if not all(o is None or isinstance(o, (ndarray,) + _ACCEPTABLE) for o in outs):
            raise TypeError(f"Fusion function can't return {type(ret)}")
        RECORDERS.op()
        adopted = tuple(adopt(o._a, dev) if isinstance(o, ndarray) else o for o in outs)
        return adopted if isinstance(ret, tuple) else adopted[0]


def fuse(*args: Any, **kwargs: Any) -> Any:
    def wrapper(f: Callable, kernel_name: str | None = None) -> Fusion:
        return Fusion(f, kernel_name)

    if len(args) == 1 and not kwargs and callable(args[0]):
        return functools.update_wrapper(wrapper(args[0]), args[0])
    return lambda f: functools.update_wrapper(wrapper(f, *args, **kwargs), f)


def _twin(kind: str, name: str) -> Callable:
    if name not in TWINS:
        raise NotImplementedError(
            f"the CuPy test double runs {kind} {name!r} only through a NumPy twin registered with "
            "cupy_double.register_twin(name, fn)")
    return TWINS[name]


def _run(name: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
    if FUSE.depth:
        raise NotImplementedError("Fusion for elementwise-kernel is not implemented yet")
    dev = _cuda.STATE.current
    res = fn(*[unwrap(a, dev) for a in args], **kwargs)
    RECORDERS.op()
    if res is None:
        return None
    if isinstance(res, tuple):
        return tuple(_back(r, args, dev) for r in res)
    return _back(res, args, dev)


def _back(res: Any, args: tuple, dev: int) -> Any:
    """The device array for a twin's result: an argument it wrote to is returned as that argument."""
    for a in args:
        if isinstance(a, ndarray) and a._a is res:
            return a
    return adopt(res, dev)


class ElementwiseKernel:
    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                 reduce_dims: bool = True, preamble: str = "", no_return: bool = False,
                 return_tuple: bool = False, **kwargs: Any) -> None:
        self.in_params, self.out_params, self.operation = in_params, out_params, operation
        self.name, self.preamble = name, preamble
        self.nin = len([p for p in in_params.split(",") if p.strip()])
        self.nout = len([p for p in out_params.split(",") if p.strip()])

    def __call__(self, *args: Any, size: Any = None, block_size: Any = None, **kwargs: Any) -> Any:
        return _run(self.name, _twin("ElementwiseKernel", self.name), args, {})


class ReductionKernel(ElementwiseKernel):
    def __init__(self, in_params: str, out_params: str, map_expr: str, reduce_expr: str, post_map_expr: str,
                 identity: Any, name: str = "reduce_kernel", **kwargs: Any) -> None:
        super().__init__(in_params, out_params, map_expr, name)
        self.reduce_expr, self.post_map_expr, self.identity = reduce_expr, post_map_expr, identity

    def __call__(self, *args: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        return _run(self.name, _twin("ReductionKernel", self.name), args, {"axis": axis, "keepdims": keepdims})


class RawKernel:
    def __init__(self, code: str, name: str, options: tuple = (), backend: str = "nvrtc",
                 translate_cucomplex: bool = False, *, enable_cooperative_groups: bool = False,
                 jitify: bool = False) -> None:
        self.code, self.name, self.options = code, name, options

    def compile(self, log_stream: Any = None) -> None:
        _twin("RawKernel", self.name)

    def __call__(self, grid: tuple, block: tuple, args: tuple, *, shared_mem: int = 0, **kwargs: Any) -> None:
        _run(self.name, functools.partial(_twin("RawKernel", self.name), grid, block), tuple(args), {})
