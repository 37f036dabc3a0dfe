"""Step engines: one object per (network, optimizer, batch shape, backend) that runs a training step —
forward, BP1–BP4, the batch cost, the per-layer gradient norms, the all-reduce and the update — and
inference, on workspaces it owns. ``fit``, ``net.backprop`` / ``net.cost``, ``evaluate`` / ``predict``
and ``gradcheck`` all run through one.

Side by side, one interface (:class:`bpgpu.engines.base.Engine`), the same file names per backend::

    engines/generic/step.py   the reference: array API only (torch, array-api-strict, anything)
    engines/numpy/step.py     NumPy: flat buffers, in-place kernels (engines/numpy/kernels.py)
    engines/cupy/step.py      CuPy: fused kernels (when present)

Each fast engine is tested equal to the generic one (tests/test_engine*.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from bpgpu.engines.base import Engine, EpochStats, StepConfig, StepDiverged
from bpgpu.errors import ConfigError

__all__ = ["Engine", "EpochStats", "StepConfig", "StepDiverged", "make_engine", "engine_class"]

_MODULES = {"numpy": "bpgpu.engines.numpy.step", "cupy": "bpgpu.engines.cupy.step"}
GENERIC = "bpgpu.engines.generic.step"


def engine_class(backend_name: str) -> type:
    """The engine class for a backend: its fast engine where one exists, else the generic reference."""
    module = _MODULES.get(backend_name, GENERIC)
    try:
        return importlib.import_module(module).Engine
    except ModuleNotFoundError as exc:
        if module == GENERIC or exc.name != module:  # a missing dependency inside an engine is a real error
            raise
        return importlib.import_module(GENERIC).Engine


def make_engine(net: Any, optimizer: Any = None, config: StepConfig | None = None, generic: bool = False) -> Engine:
    """The step engine for ``net`` (by ``net.backend.name``; ``generic=True``: the reference engine).
    With an ``optimizer`` the engine trains (it may re-home the parameters and the optimizer state as
    views of flat buffers); without one it only computes gradients and outputs."""
    cls = importlib.import_module(GENERIC).Engine if generic else engine_class(net.backend.name)
    if not generic and str(getattr(net, "precision", "")).startswith("mixed"):  # float16/bfloat16 math
        cls = importlib.import_module("bpgpu.engines.mixed").Engine
    missing = config.features() - cls.supports if config is not None else frozenset()
    if missing and cls.name == "mixed":
        raise ConfigError(f"{', '.join(sorted(missing))} is not available with precision={net.precision!r}; "
                          "train in float32 (precision='float32') to use it.")
    if missing:  # a fast engine without the feature: the reference engine runs it (never silently without)
        cls = importlib.import_module(GENERIC).Engine
    return cls(net, optimizer, config)
