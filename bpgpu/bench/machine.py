"""What machine a benchmark ran on: CPU, cores, BLAS and its kernel, threads, GPU, CUDA, TF32 state."""

from __future__ import annotations

import os
import platform
import re
from typing import Any

from bpgpu.cli.info import package_version


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else platform)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process with their kernel (``architecture``) and threads."""
    import numpy  # noqa: F401  (loads the BLAS)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer", "prefix", "filepath")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def gpu_info() -> dict[str, Any]:
    """The card, CUDA versions and TF32 state, or why there is no usable GPU."""
    from bpgpu.backend.device import cuda_status
    from bpgpu.backend.precision import tf32_report

    info: dict[str, Any] = {"cupy_tf32_env (CUPY_TF32)": os.environ.get("CUPY_TF32", "unset (off)")}
    status = cuda_status(0)
    info["status"] = "usable" if status == "ok" else status
    info["tf32"] = tf32_report(status == "ok")  # what bpgpu uses and what CuPy's float32 GEMMs really do
    if status == "ok":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        info["name"] = name.decode() if isinstance(name, bytes) else name
        info["memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        info["cupy"] = cupy.__version__
    return info


def torch_info() -> dict[str, Any]:
    if package_version("torch") is None:
        return {"status": "not installed"}
    import torch

    info: dict[str, Any] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        info["cuda"] = torch.version.cuda
    return info


def machine_info() -> dict[str, Any]:
    """Everything a result needs to be read against (also ``bpgpu info``'s fields)."""
    from bpgpu.cli.info import gather

    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                      "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BPGPU_DEVICE") if k in os.environ}
    return {
        "cpu": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
        "platform": platform.platform(), "python": platform.python_version(),
        "blas": blas_info(), "env": env, "gpu": gpu_info(), "torch": torch_info(),
        "scikit-learn": package_version("scikit-learn") or "not installed",
        "bpgpu_info": gather(),
    }


def slug(machine: dict[str, Any], gpu: bool) -> str:
    """A file-name part naming the card (GPU runs) or the CPU and its core count."""
    if gpu and machine["gpu"].get("name"):
        name = machine["gpu"]["name"]
    else:
        name = f"{machine['cpu']}-{machine['usable_cores']}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
