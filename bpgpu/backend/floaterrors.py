"""Silence NumPy's floating-point warnings (overflow, invalid) inside the training loop.

``fit`` detects NaN/inf itself and raises :class:`~bpgpu.errors.DivergenceError` naming the epoch
and batch, so NumPy's ``RuntimeWarning: overflow encountered`` on the way there is noise (and an
exception under ``-W error``). NumPy and array-api-strict (NumPy underneath) warn; other backends do
not, and for them this is a no-op.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager


def quiet_float_errors(backend: Any) -> ContextManager[Any]:
    """``numpy.errstate(over="ignore", invalid="ignore", divide="ignore")`` for NumPy-based backends, else nothing."""
    if getattr(backend, "name", None) in ("numpy", "array_api_strict"):  # array-api-strict runs on NumPy
        import numpy

        return numpy.errstate(over="ignore", invalid="ignore", divide="ignore")
    return contextlib.nullcontext()
