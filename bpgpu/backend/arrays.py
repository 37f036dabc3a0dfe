"""Moving arrays between the host (NumPy) and a backend: ``to_host``, ``to_backend``, and ``adopt``,
which takes over an array of another library (CuPy, torch, any DLPack producer) without a copy where
it already lives on the network's device."""

from __future__ import annotations

import logging
from typing import Any

import array_api_compat
import numpy as np

from bpgpu.backend.device import Backend

log = logging.getLogger("bpgpu")


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy (or view, for NumPy input and host DLPack producers) of any array: CuPy, torch,
    array-api-strict, any DLPack producer (a device one is asked for a host copy), lists."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    if array_api_compat.is_array_api_obj(x):
        where = dlpack_device(x)
        if where is not None and where[0] != KDL_CPU:  # a device array of another library: ask for a host copy
            return np.from_dlpack(x, device="cpu", copy=True)
        return np.from_dlpack(x)
    return np.asarray(x)


def to_backend(x: Any, backend: Backend, dtype: Any = None, copy: bool = False) -> Any:
    """``x`` (host or any library) as an array of ``backend`` on its device, with ``dtype`` if given.

    Without ``copy`` the result may share memory with ``x`` (NumPy input to NumPy or torch CPU);
    ``copy=True`` guarantees an independent array (parameters are always copied in)."""
    if dtype is not None and isinstance(dtype, str):
        dtype = backend.dtype(dtype)
    host = to_host(x)
    if backend.name == "numpy":
        return np.array(host, dtype=dtype, copy=True) if copy else np.asarray(host, dtype=dtype)
    host = np.ascontiguousarray(host)
    if not host.dtype.isnative:  # big-endian data (from a file): torch/CuPy take native byte order only
        host = host.astype(host.dtype.newbyteorder("="))
    return backend.xp.asarray(host, dtype=dtype, device=backend.device, copy=True if copy else None)


# -- taking over arrays of another library (DLPack) ------------------------------------------------
# DLPack device types (dlpack.h): what ``x.__dlpack_device__()`` returns first.
KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13
_warned: set[tuple[str, str]] = set()


def dlpack_device(x: Any) -> tuple[int, int] | None:
    """``(DLPack device type, index)`` of an array: ``(1, 0)`` host memory, ``(2, N)`` CUDA device N;
    None for an array that is not a DLPack producer, or lives on one of array-api-strict's fake devices
    (``device1``/``device2`` stand in for *other* devices, so nothing is taken over from them)."""
    if type(x).__module__.startswith("array_api_strict"):
        return (KDL_CPU, 0) if str(getattr(x.device, "_device", x.device)) == "CPU_DEVICE" else None
    probe = getattr(x, "__dlpack_device__", None)
    if probe is None:
        return None
    try:
        kind, index = probe()
    except Exception:  # e.g. a producer that cannot export this array (sparse, lazy)
        return None
    kind = int(kind)
    return (KDL_CPU, 0) if kind in (KDL_CPU, KDL_CUDA_HOST) else (kind, int(index))


def backend_dlpack_device(backend: Backend) -> tuple[int, int] | None:
    """Where a backend's arrays live, in DLPack's terms (None: a fake device nothing else lives on)."""
    if backend.name == "numpy":
        return (KDL_CPU, 0)
    if backend.name == "cupy":
        return (KDL_CUDA, int(backend.device.id))
    if backend.name == "torch":
        dev = backend.device
        return (KDL_CUDA, int(dev.index or 0)) if dev.type == "cuda" else ((KDL_CPU, 0) if dev.type == "cpu" else None)
    if backend.name == "array_api_strict":
        return (KDL_CPU, 0) if str(getattr(backend.device, "_device", backend.device)) == "CPU_DEVICE" else None
    return None


def _from_dlpack(x: Any, backend: Backend) -> Any:
    """``x`` as an array of ``backend`` sharing its memory (same device): the library's own
    ``from_dlpack``, on the backend's device."""
    if backend.name == "numpy":
        return np.from_dlpack(x)
    if backend.name == "cupy":
        import cupy

        with cupy.cuda.Device(backend.device.id):
            return cupy.from_dlpack(x)
    if backend.name == "torch":
        import torch

        return torch.from_dlpack(x)
    return backend.xp.from_dlpack(x)


def adopt(x: Any, backend: Backend, name: str = "x") -> Any | None:
    """An array of another library taken over by a network on ``backend``, or None (a device mismatch).

    * same device (a torch CPU tensor into a NumPy network, a torch CUDA tensor into a CuPy network on
      that GPU, a CuPy array into a torch network on it): zero copy, by DLPack;
    * host memory into a GPU network: copied to the device, like NumPy input;
    * a GPU array into a CPU network: copied to the host, with a log line (once per source and
      argument) saying so and how to avoid the copy;
    * a GPU array on *another* GPU: None, so the caller raises DeviceMismatchError (bpgpu never moves
      data between GPUs behind the caller's back)."""
    if array_api_compat.is_torch_array(x) and getattr(x, "requires_grad", False):
        x = x.detach()
    src, dst = dlpack_device(x), backend_dlpack_device(backend)
    if src is None or dst is None:
        return None
    if src == dst:
        return _from_dlpack(x, backend)
    if src[0] == KDL_CPU:
        return to_backend(x, backend)
    if dst[0] == KDL_CPU and src[0] in (KDL_CUDA, KDL_CUDA_MANAGED):
        key = (type(x).__module__.split(".")[0], name)
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "%s is a %s array on cuda:%d but the network is on %s: copying it to the host (each call); "
                "move the network (net.to('cuda:%d')) or the data once (bpgpu.to_host(%s)) to avoid this",
                name, key[0], src[1], backend.label, src[1], name)
        return to_backend(to_host(x), backend)
    return None
