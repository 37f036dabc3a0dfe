"""NumPy twins of the CUDA kernels bpgpu launches, registered with the double by name: the GPU probe's
``bpgpu_probe`` (bpgpu/backend/probe.py) and those of the CuPy engine (bpgpu/engines/cupy/kernels.py
``TWINS``, where each kernel's source sits beside its twin)."""

from __future__ import annotations

import importlib

import numpy as np

from ._kernels import register_twin


def _probe(grid: tuple, block: tuple, x: np.ndarray, y: np.ndarray, n: np.integer) -> None:
    """``y[i] = 2 x[i] + 1`` for ``i < n`` (one thread per element, as the probe launches it)."""
    threads = int(np.prod(grid)) * int(np.prod(block))
    k = min(int(n), threads)
    y[:k] = 2.0 * x[:k] + 1.0


def register_all() -> None:
    register_twin("bpgpu_probe", _probe)
    try:
        kernels = importlib.import_module("bpgpu.engines.cupy.kernels")
    except ImportError:
        return
    for name, fn in getattr(kernels, "TWINS", {}).items():
        register_twin(name, fn)
