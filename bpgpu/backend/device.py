"""Which array library and device a network lives on.

Precedence: an explicit ``device=`` / ``xp=`` argument, then the ``BPGPU_DEVICE`` environment
variable (read every time a network or array is created), then ``"cpu"``. A GPU that was asked for
but cannot be used raises :class:`~bpgpu.errors.DeviceError` saying why and how to fix it; bpgpu
never falls back to the CPU silently. CuPy is imported only when a GPU is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import array_api_compat

from bpgpu.backend.probe import cuda_status  # noqa: F401  (re-exported: the GPU probe lives in probe.py)
from bpgpu.errors import ConfigError, DeviceError

ENV_VAR = "BPGPU_DEVICE"
VALID_DEVICES = ("cpu", "gpu", "cuda", "cuda:N", "auto")
_CUDA_RE = re.compile(r"^(?:gpu|cuda)(?::(\d+))?$")
log = logging.getLogger("bpgpu")


@dataclass(frozen=True)
class Backend:
    """An array namespace plus the device object arrays are created on."""

    xp: Any
    device: Any
    name: str  # "numpy", "cupy", "torch", "array_api_strict", ... (the library)
    tf32: bool = field(default=False, compare=False)  # CuPy float32 matmuls in TF32 (backend/precision.py)

    @property
    def label(self) -> str:
        """Short human-readable name: ``cpu``, ``cuda:0``, ``torch:cpu``, ``array_api_strict:device1``."""
        if self.name == "numpy":
            return "cpu"
        if self.name == "cupy":
            return f"cuda:{self.device.id}"
        dev = str(self.device)
        if self.name == "array_api_strict":
            dev = getattr(self.device, "_device", dev)
        return f"{self.name}:{dev}"

    @property
    def is_gpu(self) -> bool:
        if self.name == "cupy":
            return True
        return self.name == "torch" and getattr(self.device, "type", "") == "cuda"

    def dtype(self, dtype: Any) -> Any:
        """Turn ``"float32"`` / ``"float64"`` (or a dtype of this namespace) into this namespace's dtype."""
        if isinstance(dtype, str):
            if dtype not in ("float32", "float64"):
                raise ConfigError(f"dtype={dtype!r} is not supported; expected 'float32' or 'float64'.")
            return getattr(self.xp, dtype)
        for name in ("float32", "float64"):
            if dtype == getattr(self.xp, name):
                return dtype
        raise ConfigError(
            f"dtype={dtype!r} is not supported; expected 'float32' or 'float64' "
            f"(or {self.name}'s float32/float64)."
        )

    def activate(self) -> Any:
        """A context manager that makes this backend's device the current one (CuPy allocates and runs
        on the current device and ignores ``device=``); a no-op context for every other library."""
        if self.name == "cupy":  # and CuPy's float32 matmuls in TF32 or full float32, as ``tf32`` says
            from bpgpu.backend.precision import cupy_device_scope

            return cupy_device_scope(self)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait for queued device work (GPU timings); a no-op on the CPU."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.Device(self.device.id).synchronize()
        elif self.is_gpu:
            import torch

            torch.cuda.synchronize(self.device)


def _library_name(xp: Any) -> str:
    name = getattr(xp, "__name__", str(xp))
    if name.startswith("array_api_compat."):
        name = name.split(".", 1)[1]
    return name.split(".")[0]


def _normalise_namespace(xp: Any, device: Any = None) -> Any:
    """The array-API-compatible namespace for a library module (numpy → array_api_compat.numpy)."""
    probe = xp.asarray(0.0) if device is None else xp.asarray(0.0, device=device)
    return array_api_compat.array_namespace(probe)


def _numpy_backend() -> Backend:
    import numpy

    return Backend(array_api_compat.array_namespace(numpy.empty(0)), "cpu", "numpy")


def _cupy_backend(index: int, asked: str) -> Backend:
    status = cuda_status(index)
    if status != "ok":
        raise DeviceError(f"A GPU was asked for (device {asked!r}) but it is not usable: {status}")
    import cupy

    namespace = array_api_compat.array_namespace(cupy.empty(0))
    return Backend(namespace, cupy.cuda.Device(index), "cupy")


def _default_gpu_index() -> int:
    """The GPU "gpu"/"cuda"/"auto" mean: 0, or this MPI rank's local rank modulo the GPU count."""
    from bpgpu.distributed.local import default_gpu_index, local_rank

    if local_rank() is None:
        return 0
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001  (no usable CuPy: the probe of GPU 0 reports why)
        return 0
    return default_gpu_index(count)


def _is_gpu_index(device: Any) -> bool:
    return isinstance(device, int) and not isinstance(device, bool)


def _cupy_from_device(device: Any, source: str) -> Backend:
    """The CuPy backend for ``device``: "cuda:N"-style strings, an integer N, a ``cupy.cuda.Device``, or
    None (CuPy's current device, as ``import cupy`` code expects)."""
    if isinstance(device, str):
        return _from_string(device, source)
    if device is None:
        import cupy

        index = cupy.cuda.Device().id
        return _cupy_backend(index, f"cuda:{index}")
    if _is_gpu_index(device) or type(device).__module__.split(".")[0] == "cupy":
        index = device if _is_gpu_index(device) else int(getattr(device, "id", -1))
        if index < 0:
            raise ConfigError(f"device={device!r} is not a GPU index; expected an integer N >= 0 (cuda:N).")
        return _cupy_backend(index, f"cuda:{index}")
    raise ConfigError(
        f"device={device!r} is not understood with xp=cupy; expected 'cuda:N', an integer N or "
        "cupy.cuda.Device(N)."
    )


def _from_string(spec: str, source: str) -> Backend:
    value = spec.strip().lower()
    if value == "cpu":
        return _numpy_backend()
    if value == "auto":
        index = _default_gpu_index()
        if cuda_status(index) == "ok":
            log.info("BPGPU_DEVICE=auto: using the GPU cuda:%d", index)
            return _cupy_backend(index, spec)
        log.info("BPGPU_DEVICE=auto: no usable GPU (%s); using the CPU", cuda_status(index))
        return _numpy_backend()
    match = _CUDA_RE.match(value)
    if match:
        index = int(match.group(1)) if match.group(1) is not None else _default_gpu_index()
        return _cupy_backend(index, spec)
    raise ConfigError(
        f"{source}={spec!r} is not a device bpgpu knows; expected one of {', '.join(VALID_DEVICES)} "
        "(e.g. 'cuda:1'), or pass xp= and a device object of that array library."
    )


def default_device() -> str:
    """The device a network created now would use (``BPGPU_DEVICE`` or ``"cpu"``), e.g. ``"cuda:0"``."""
    return resolve().label


def resolve(device: Any = None, xp: Any = None) -> Backend:
    """Pick the backend: explicit ``device``/``xp`` > ``BPGPU_DEVICE`` > ``"cpu"``.

    ``device`` may be "cpu", "gpu", "cuda", "cuda:N", "auto", an integer N (GPU N), a device object of
    the library given as ``xp`` (``cupy.cuda.Device(1)``, ``array_api_strict.Device("device1")``,
    ``torch.device("cpu")``), or an array (the network then lives where that array lives). With
    ``xp=cupy`` (or ``array_api_compat.cupy``) and no device, CuPy's current device.
    """
    if xp is not None:
        name = _library_name(xp)
        if isinstance(device, str) and name == "torch":
            import torch

            device = torch.device(device)
        if name == "cupy":  # raw cupy or array_api_compat.cupy: CuPy takes no device= (current device)
            return _cupy_from_device(device, "xp=cupy")
        if isinstance(device, str) and name == "numpy":
            if device != "cpu":
                raise ConfigError(f"device={device!r} does not exist for NumPy; NumPy arrays live on 'cpu'.")
            return _numpy_backend()
        namespace = _normalise_namespace(xp, device)
        if device is None:
            device = array_api_compat.device(namespace.asarray(0.0))
        if name == "numpy":
            return _numpy_backend()
        return Backend(namespace, device, _library_name(namespace))
    if device is None:
        spec = os.environ.get(ENV_VAR, "").strip()
        return _from_string(spec, ENV_VAR) if spec else _numpy_backend()
    if isinstance(device, Backend):
        return device
    if array_api_compat.is_array_api_obj(device):  # "where this array lives"
        return backend_of(device)
    if isinstance(device, str):
        return _from_string(device, "device")
    module = type(device).__module__.split(".")[0]
    if module == "cupy":
        return _cupy_from_device(device, "device")
    if module in ("torch", "array_api_strict"):
        import importlib

        return resolve(device, importlib.import_module(module))
    hint = f" (GPU {device}: device='cuda:{device}', or xp=cupy with device={device})" if _is_gpu_index(device) else ""
    raise ConfigError(
        f"device={device!r} is not understood; expected one of {', '.join(VALID_DEVICES)} or a device "
        f"object of the library passed as xp={hint}."
    )


def backend_of(x: Any) -> Backend:
    """The backend an existing array lives on."""
    namespace = array_api_compat.array_namespace(x)
    name = _library_name(namespace)
    if name == "numpy":
        return _numpy_backend()
    return Backend(namespace, array_api_compat.device(x), name)
