"""A CuPy test double: ``cupy`` over NumPy, with CuPy 14.2's rules where bpgpu could trip and counters
of what a card would run.

What it keeps from CuPy (each checked in tests/test_cupy_double.py against CuPy's source):
- ``cupy.ndarray`` is its own type: ``numpy.asarray(x)`` raises ``TypeError``; NumPy operands are refused;
  ``.get()`` / ``cupy.asnumpy`` copy to the host;
- several devices (2 by default) and a *current* device: ``with cupy.cuda.Device(1):``; results live on
  the current device; an operand on another device raises CuPy's ``ValueError`` ("The device where the
  array resides (1) is different from the current device (0) ...");
- creation functions without ``device=``; 0-d device arrays from reductions and scalar indexing;
- ``cupy.fuse`` (one device operation per call, fusion's restrictions enforced), ``ElementwiseKernel`` /
  ``RawKernel`` through registered NumPy twins; CUDA DLPack capsules (``__dlpack_device__() == (2, id)``);
- ``cupy.cuda.runtime.getDeviceCount``, ``is_available``, a memory pool (``used_bytes``/``total_bytes``,
  ``set_limit`` → ``OutOfMemoryError``).

What it counts (``with cupy_double.record() as rec:``): device operations (kernel launches), allocations
(bytes) and device→host syncs (``.get()``, ``item``, ``float``/``int``/``bool``, ``tolist``, ``repr``,
boolean-mask indexing, ``nonzero``), each by the source line outside the double that caused it, and the
peak of live device bytes.

Install it as ``cupy`` with the ``cupy_double`` fixture (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import sys
import types
from typing import Any, Iterator

import numpy as np

from . import _kernels, _namespace, cuda as _cuda
from ._counts import Record
from ._core import ndarray
from ._kernels import ElementwiseKernel, RawKernel, ReductionKernel, fuse, register_twin

__version__ = "14.2.0"
_HELPERS = {"annotations", "np", "Any", "RECORDERS", "adopt", "call", "unwrap", "ndarray", "ufunc"}


def _public(mod: Any) -> dict:
    return {k: v for k, v in vars(mod).items() if not k.startswith("_") and k not in _HELPERS
            and not isinstance(v, types.ModuleType)}


def _wrap_module(name: str, np_mod: Any, kind: str = "other") -> types.ModuleType:
    mod = types.ModuleType(name)
    names = [n for n in getattr(np_mod, "__all__", dir(np_mod)) if not n.startswith("_")]
    for n in names:
        obj = getattr(np_mod, n)
        if callable(obj) and not isinstance(obj, type):
            setattr(mod, n, _namespace._make(n, obj, kind))
        elif isinstance(obj, type) and issubclass(obj, Exception):
            setattr(mod, n, obj)
    mod.__all__ = [n for n in names if hasattr(mod, n)]
    return mod


def _build() -> dict[str, types.ModuleType]:
    cupy = types.ModuleType("cupy", __doc__)
    ns = _public(_namespace)
    for k, v in ns.items():
        setattr(cupy, k, v)
    cupy.ndarray, cupy.ufunc = ndarray, _namespace.ufunc
    cupy.fuse, cupy.ElementwiseKernel, cupy.RawKernel, cupy.ReductionKernel = (
        fuse, ElementwiseKernel, RawKernel, ReductionKernel)
    cupy.__version__ = __version__
    cupy.__all__ = sorted(set(ns) | {"ndarray", "ufunc", "fuse", "ElementwiseKernel", "RawKernel",
                                     "ReductionKernel"})
    cuda = types.ModuleType("cupy.cuda")
    for k in ("Device", "Stream", "ExternalStream", "MemoryPool", "get_current_stream", "is_available",
              "runtime", "memory", "device", "get_device_id", "OutOfMemoryError"):
        setattr(cuda, k, getattr(_cuda, k))
    cuda.PinnedMemoryPool = type(_namespace.get_default_pinned_memory_pool())
    cupy.cuda = cuda
    linalg = _wrap_module("cupy.linalg", np.linalg)
    fft = _wrap_module("cupy.fft", np.fft)
    cupy.linalg, cupy.fft = linalg, fft
    runtime = types.ModuleType("cupy.cuda.runtime")
    runtime.__dict__.update(vars(_cuda.runtime))
    memory = types.ModuleType("cupy.cuda.memory")
    memory.__dict__.update(vars(_cuda.memory))
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.__dict__.update(vars(_cuda.nccl))
    cuda.nccl = nccl
    device = types.ModuleType("cupy.cuda.device")
    device.__dict__.update(vars(_cuda.device))
    cuda.runtime, cuda.memory, cuda.device = runtime, memory, device
    for mod in (cupy, cuda):
        mod.__path__ = []  # packages, so that ``import cupy.cuda.device`` resolves
    return {"cupy": cupy, "cupy.cuda": cuda, "cupy.linalg": linalg, "cupy.fft": fft,
            "cupy.cuda.runtime": runtime, "cupy.cuda.memory": memory, "cupy.cuda.device": device,
            "cupy.cuda.nccl": nccl}


MODULES = _build()
cupy = MODULES["cupy"]


def reset(device_count: int = 2) -> None:
    """A fresh machine: ``device_count`` devices, device 0 current, no pool limit, no recorders."""
    _cuda.CONFIG.device_count = device_count
    _cuda.STATE.current = 0
    _cuda.POOL.set_limit(0)
    _cuda.POOL.free_all_blocks()
    _cuda.RECORDERS.active.clear()


@contextlib.contextmanager
def record() -> Iterator[Record]:
    """Count what the block runs: ``rec.ops``, ``rec.syncs``, ``rec.allocations``, ``rec.alloc_bytes``
    (Counters by ``path:line``), ``rec.peak_bytes``."""
    rec = Record(base_bytes=_cuda.RECORDERS.live_bytes)
    _cuda.RECORDERS.active.append(rec)
    try:
        yield rec
    finally:
        _cuda.RECORDERS.active.remove(rec)


def live_bytes() -> int:
    """Device bytes held by live arrays, all devices (512-byte blocks, as CuPy's pool hands them out)."""
    return _cuda.RECORDERS.live_bytes


def install(monkeypatch: Any, device_count: int = 2) -> types.ModuleType:
    """Make ``import cupy`` (and ``array_api_compat.cupy``) give the double for this test."""
    import array_api_compat

    reset(device_count)
    _kernels.TWINS.clear()
    for name in [n for n in sys.modules if n == "cupy" or n.startswith("cupy.") or n.startswith("cupy_backends")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n.startswith("array_api_compat.cupy")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(array_api_compat, "cupy", raising=False)
    for name, mod in MODULES.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return cupy


__all__ = ["MODULES", "Record", "cupy", "install", "live_bytes", "record", "register_twin", "reset"]
