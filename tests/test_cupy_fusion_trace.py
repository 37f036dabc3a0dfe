"""Every fused kernel of the CuPy engine traces under real CuPy 14's fusion (cupy/_core/fusion.pyx),
not only under the test double's rules: where CuPy imports (it does without a GPU), each kernel is
called as the engine calls it; the old fusion path must build its kernel (no fall-back to the new
fusion, no trace error). Without a GPU the launch then fails for want of a driver (expected: the
arrays are host memory wrapped as device arrays, never touched); with one the kernels run."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture
def real_cupy():
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in saved:
        del sys.modules[k]
    try:
        yield importlib.import_module("cupy")
    except Exception as exc:  # noqa: BLE001 - not installed, or a broken CUDA library underneath
        pytest.skip(f"real CuPy does not import here ({type(exc).__name__}: {exc})")
    finally:
        for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _arrays(cp):
    try:
        usable = cp.cuda.runtime.getDeviceCount() > 0 and cp.is_available()
    except Exception:  # noqa: BLE001
        usable = False
    keep = []

    def arr(*shape):
        if usable:
            return cp.zeros(shape, dtype=cp.float32)
        host = np.zeros(max(int(np.prod(shape)), 1), np.float32)
        keep.append(host)
        mem = cp.cuda.memory.UnownedMemory(host.ctypes.data, host.nbytes, host, device_id=0)
        return cp.ndarray(shape, dtype=np.float32, memptr=cp.cuda.memory.MemoryPointer(mem, 0))

    return arr, usable, keep


def test_every_engine_kernel_traces_under_cupys_own_fusion(real_cupy):
    from bpgpu.engines.cupy.kernels import _build

    cp = real_cupy
    k = _build(cp)                                    # fresh Fusion objects (no cached traces)
    arr, usable, _keep = _arrays(cp)
    m, n = 4, 3
    z, b, y, d, col = arr(m, n), arr(n), arr(m, n), arr(m, n), arr(m, 1)
    flat = lambda: arr(40)  # noqa: E731
    calls = {
        "bias_sigmoid": (z, b), "bias_tanh": (z, b), "bias_relu": (z, b), "bias_identity": (z, b),
        "back_sigmoid": (d, z, z), "back_tanh": (d, z, z), "back_relu": (d, z, z),
        "row_max": (z, b), "row_expsum": (z, b, col), "softmax_ce_cost": (z, b, y, col, col, 0.25),
        "softmax_ce_delta": (d, z, b, y, col, col, 0.25), "softmax_out": (d, z, 0.0, col, col),
        "softmax_quad_cost": (z, b, y, col, col, col), "softmax_quad_rowdot": (z, b, y, col, col),
        "softmax_quad_delta": (d, z, b, y, col, col, col, 0.25), "sigmoid_ce_cost": (z, b, y, 0.25),
        "sigmoid_ce_delta": (d, z, b, y, 0.25), "sigmoid_quad_cost": (z, b, y, 0.25),
        "sigmoid_quad_delta": (d, z, b, y, 0.25), "sigmoid_out": (d, z, 0.0), "identity_quad_cost": (z, b, y, 0.25),
        "identity_quad_delta": (d, z, b, y, 0.25), "sq_chunks": (arr(5, 8),), "sq_total": (flat(),),
        "clip_norm": (flat(), arr(), 1.0, 1e-6), "clip_value": (flat(), 0.5),
        "clip_norm_value": (flat(), arr(), 1.0, 1e-6, 0.5), "sgd": (flat(), flat(), 0.1),
        "sgd_momentum": (flat(), flat(), flat(), 0.1, 0.9), "sgd_nesterov": (flat(), flat(), flat(), 0.1, 0.9),
        "adam": (flat(), flat(), flat(), flat(), 0.9, 0.1, 0.999, 0.001, 0.5, 1e-8, 0.01),
        "sgd_decay": (flat(), flat(), 0.1, 0.01), "sgd_momentum_decay": (flat(), flat(), flat(), 0.1, 0.9, 0.01),
        "sgd_nesterov_decay": (flat(), flat(), flat(), 0.1, 0.9, 0.01),
        "adam_decay": (flat(), flat(), flat(), flat(), 0.9, 0.1, 0.999, 0.001, 0.5, 1e-8, 0.01, 0.01),
    }
    assert set(calls) == set(vars(k)), "a kernel of kernels.py is not exercised here"
    for name, args in calls.items():
        fused = getattr(k, name)
        try:
            fused(*args)
        except Exception as exc:  # noqa: BLE001
            if usable or "CUDA" not in type(exc).__name__ + str(exc):
                raise
        assert fused.new_fusion is None, f"{name}: CuPy's fusion could not trace it (fell back to new fusion)"
        assert fused._memo, f"{name}: no kernel was built"
