"""Is a GPU usable? The probe behind every ``device="cuda:N"``: it runs, on that device, the three things
a training step needs and that can each be missing on a machine with only the NVIDIA driver:

1. the driver and a device (``cudaGetDeviceCount``);
2. a kernel compiled at run time by NVRTC and launched (CuPy builds every elementwise kernel this way);
3. a matrix product by cuBLAS (every layer's ``Z = A W^T + b``, BP2 and BP4).

Each failure becomes a reason that names what is missing and the package that brings it, so an unusable
GPU is a :class:`~bpgpu.errors.DeviceError` at ``MLP(...)``, never a failure inside ``fit``. The result is
cached per device index (``cuda_status.cache_clear()`` forgets it). CuPy is imported only here, lazily.
"""

from __future__ import annotations

import importlib.metadata
from functools import lru_cache
from typing import Any

# The probe's own kernel: y = 2 x + 1 over n elements (compiled by NVRTC on first launch).
_KERNEL = r"""
extern "C" __global__ void bpgpu_probe(const float* x, float* y, int n) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i < n) y[i] = 2.0f * x[i] + 1.0f;
}
"""
_N = 16  # elements; the matrix product is on the (4, 4) matrix x.reshape(4, 4)


def cupy_distribution() -> tuple[str | None, str]:
    """``(installed CuPy wheel or None, CUDA major "12"/"13")``: the extra whose packages fit it."""
    for dist, major in (("cupy-cuda13x", "13"), ("cupy-cuda12x", "12"), ("cupy", "12")):
        try:
            importlib.metadata.version(dist)
            return dist, major
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, "12"


def runtime_packages(major: str) -> dict[str, str]:
    """The PyPI packages (in CuPy's ``[ctk]`` extra) that ship NVRTC and cuBLAS for CUDA ``major``."""
    suffix = "-cu12" if major == "12" else ""
    return {"nvrtc": f"nvidia-cuda-nvrtc{suffix}", "cublas": f"nvidia-cublas{suffix}"}


def install_hint(major: str = "12") -> str:
    """How to install a GPU-ready bpgpu: the extra that brings CuPy with its CUDA runtime libraries."""
    other = "13" if major == "12" else "12"
    return (
        f'pip install "bpgpu[cuda{major}]" (or pip install ".[cuda{major}]" from a bpgpu checkout), which '
        f"brings cupy-cuda{major}x[ctk] with NVRTC and cuBLAS (cuda{other} for a CUDA {other} driver)"
    )


def _library_fix(what: str, exc: BaseException, major: str) -> str:
    """The fix for a failed compile (``what="kernel"``) or matrix product (``"matmul"``), from CuPy's error."""
    text = f"{type(exc).__name__}: {exc}".lower()
    packages = runtime_packages(major)
    if "nvrtc" in text or (what == "kernel" and "failed to load" in text):
        return (f"NVRTC (the CUDA run-time compiler) is missing or broken: install it with {install_hint(major)}, "
                f"or alone: pip install {packages['nvrtc']}")
    if "cublas" in text or (what == "matmul" and ("failed to load" in text or isinstance(exc, ImportError))):
        return (f"cuBLAS (the CUDA matrix-product library) is missing or broken: install it with "
                f"{install_hint(major)}, or alone: pip install {packages['cublas']}")
    return (f"check that the cupy-cudaXXx package matches the installed driver/CUDA toolkit "
            f"(`nvidia-smi` shows the driver's CUDA version); {install_hint(major)}")


def _run_kernel(cupy: Any) -> Any:
    """``x = 0…15`` and ``y = 2x + 1`` by the probe's NVRTC-compiled kernel; returns ``x``, checked."""
    x = cupy.arange(_N, dtype=cupy.float32)
    y = cupy.empty_like(x)
    kernel = cupy.RawKernel(_KERNEL, "bpgpu_probe")
    kernel((1,), (_N,), (x, y, cupy.int32(_N)))
    got = float(y.sum().item())
    want = float(2 * sum(range(_N)) + _N)
    if got != want:
        raise RuntimeError(f"the probe kernel computed sum(2x + 1) = {got}, expected {want}")
    return x


def _run_matmul(cupy: Any, x: Any) -> None:
    """A (4, 4) float32 matrix product by cuBLAS, checked against the exact value."""
    a = x.reshape(4, 4)
    got = float(cupy.matmul(a, a).sum().item())
    rows = [[4 * i + j for j in range(4)] for i in range(4)]
    want = float(sum(rows[i][k] * rows[k][j] for i in range(4) for j in range(4) for k in range(4)))
    if got != want:
        raise RuntimeError(f"the probe's matrix product summed to {got}, expected {want}")


@lru_cache(maxsize=None)
def cuda_status(index: int = 0) -> str:
    """``"ok"`` if CuPy can compile and run a kernel and a cuBLAS matrix product on GPU ``index``, else
    the reason and the fix (the package to install)."""
    dist, major = cupy_distribution()
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA library underneath
        return f"CuPy is not installed or does not import ({exc}); {install_hint(major)}, or use device='cpu'."
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        text = str(exc)
        fix = "check `nvidia-smi`, the driver and CUDA_VISIBLE_DEVICES"
        if "insufficientdriver" in text.lower():
            fix = f"the NVIDIA driver is too old for {dist or 'CuPy'} (CUDA {major}): update the driver"
            if major == "13":
                fix += ', or use the CUDA 12 build: pip install "bpgpu[cuda12]"'
            fix += "; check `nvidia-smi`"
        return f"CuPy is installed but no NVIDIA driver or GPU is usable ({text}); {fix}, or use device='cpu'."
    if count == 0:
        return "CuPy found no GPU (0 devices); check CUDA_VISIBLE_DEVICES, or use device='cpu'."
    if index >= count:
        return f"cuda:{index} does not exist: this machine has {count} GPU(s), cuda:0 … cuda:{count - 1}."
    with cupy.cuda.Device(index):
        try:
            x = _run_kernel(cupy)
        except Exception as exc:
            return (f"CuPy could not compile or run a kernel on cuda:{index} ({type(exc).__name__}: {exc}); "
                    f"{_library_fix('kernel', exc, major)}.")
        try:
            _run_matmul(cupy, x)
        except Exception as exc:
            return (f"CuPy could not run a matrix product (cuBLAS) on cuda:{index} ({type(exc).__name__}: "
                    f"{exc}); {_library_fix('matmul', exc, major)}.")
    return "ok"
