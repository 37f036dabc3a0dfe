"""``bpgpu info``: the chosen device, the array libraries present, CuPy/CUDA versions, TF32 state."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
from typing import Any

from bpgpu.backend.device import ENV_VAR, cuda_status, default_device
from bpgpu.backend.precision import tf32_report, tf32_summary


def package_version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gather() -> dict[str, Any]:
    """Everything ``bpgpu info`` prints, as a dict (benchmarks record it too)."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    info[ENV_VAR] = os.environ.get(ENV_VAR, "(unset: cpu)")
    try:
        info["device"] = default_device()
    except Exception as exc:  # an invalid BPGPU_DEVICE or unusable GPU: report it, do not crash
        info["device"] = f"error: {exc}"
    for dist in ("numpy", "array-api-compat", "array-api-extra", "array-api-strict", "torch", "mpi4py"):
        info[dist] = package_version(dist) or "not installed"
    cupy_dist = next((d for d in ("cupy-cuda13x", "cupy-cuda12x", "cupy") if package_version(d)), None)
    info["cupy"] = f"{cupy_dist} {package_version(cupy_dist)}" if cupy_dist else "not installed"
    status = cuda_status(0) if cupy_dist else "CuPy not installed"
    info["gpu"] = "usable" if status == "ok" else status
    if status == "ok":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu name"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["cuda runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda driver"] = cupy.cuda.runtime.driverGetVersion()
    info["tf32"] = tf32_summary(tf32_report(status == "ok"))
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
                for p in threadpool_info() if p.get("user_api") == "blas"]
        info["blas"] = "; ".join(blas) or "unknown"
    except ImportError:
        info["blas"] = "unknown (pip install threadpoolctl)"
    return info


def run(args: argparse.Namespace) -> int:
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)

    for key, value in gather().items():
        print(f"{key:>24}: {value}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show the chosen device, backends and versions")
    p.set_defaults(func=run)
