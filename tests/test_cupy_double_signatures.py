"""Where real CuPy imports (it does without a GPU), the CuPy test double's functions take the same
parameters as CuPy's, for every function bpgpu and array-api-compat call on it; skipped elsewhere."""

from __future__ import annotations

import inspect

import pytest

from helpers import import_real_cupy

pytestmark = pytest.mark.gpu

NAMES = """asarray array zeros ones empty full arange eye linspace zeros_like ones_like empty_like full_like
asnumpy take concatenate stack where clip sum max min mean prod any all argmax matmul copy reshape
transpose moveaxis expand_dims broadcast_to squeeze from_dlpack maximum minimum exp log sqrt tanh""".split()


def _params(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p.name for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_doubles_functions_take_cupys_parameters():
    import cupy_double

    real = import_real_cupy()
    checked = 0
    for name in NAMES:
        want, got = _params(getattr(real, name)), _params(getattr(cupy_double.cupy, name))
        if want is None or got is None:
            continue  # a ufunc or Cython function without a signature on one side
        # the first parameter (the operand) is passed by position; every keyword CuPy has, the double has
        assert set(want[1:]) <= set(got[1:]) or got[:len(want)] == want, (name, want, got)
        assert "device" not in got or "device" in want, (name, "the double must not accept device=")
        checked += 1
    assert checked >= 10
