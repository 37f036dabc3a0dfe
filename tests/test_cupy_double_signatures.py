"""Where real CuPy imports (it does without a GPU), the CuPy test double's functions take the same
parameters as CuPy's, for every function bpgpu and array-api-compat call on it; skipped elsewhere."""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

pytestmark = pytest.mark.gpu

NAMES = """asarray array zeros ones empty full arange eye linspace zeros_like ones_like empty_like full_like
asnumpy take concatenate stack where clip sum max min mean prod any all argmax matmul copy reshape
transpose moveaxis expand_dims broadcast_to squeeze from_dlpack maximum minimum exp log sqrt tanh""".split()


def _real_cupy():
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in saved:
        del sys.modules[k]
    try:
        return importlib.import_module("cupy")
    except Exception as exc:  # noqa: BLE001 - not installed, or a broken CUDA library underneath
        pytest.skip(f"real CuPy does not import here ({type(exc).__name__}: {exc})")
    finally:
        for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _params(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p.name for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_doubles_functions_take_cupys_parameters():
    import cupy_double

    real = _real_cupy()
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
