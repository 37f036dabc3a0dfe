"""Moving arrays between the host (NumPy) and a backend: the one portable ``to_host`` helper."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from bpgpu.backend.device import Backend


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy (or view, for NumPy input) of any array: CuPy, torch, array-api-strict, lists."""
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
