"""Every fused kernel of the CuPy engine traces under real CuPy 14's fusion (cupy/_core/fusion.pyx),
not only under the test double's rules: where CuPy imports (it does without a GPU), each kernel is
called as the engine calls it; the old fusion path must build its kernel (no fall-back to the new
fusion, no trace error). Without a GPU the launch then fails for want of a driver (expected: the
arrays are host memory wrapped as device arrays, never touched); with one the kernels run.

Where NVRTC is installed too (``pip install nvidia-cuda-nvrtc-cu12``; no GPU needed), the CUDA source
CuPy generates for each traced kernel (its own code generators, ``_get_elementwise_kernel_code`` and
``_ReductionKernel_get_cached_function_code``) is compiled by NVRTC to PTX for sm_90."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers import import_real_cupy

pytestmark = pytest.mark.gpu


@pytest.fixture
def real_cupy():
    return import_real_cupy()


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


def _calls(arr):
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
    return calls


def _traced(cp):
    """(kernels, calls, GPU usable): every kernel called once, as the engine calls it."""
    from bpgpu.engines.cupy.kernels import _build

    k = _build(cp)                                    # fresh Fusion objects (no cached traces)
    arr, usable, keep = _arrays(cp)
    calls = _calls(arr)
    for name, args in calls.items():
        try:
            getattr(k, name)(*args)
        except Exception as exc:  # noqa: BLE001
            if usable or "CUDA" not in type(exc).__name__ + str(exc):
                raise
    return k, calls, keep


def test_every_engine_kernel_traces_under_cupys_own_fusion(real_cupy):
    k, calls, _keep = _traced(real_cupy)
    assert set(calls) == set(vars(k)), "a kernel of kernels.py is not exercised here"
    for name in calls:
        fused = getattr(k, name)
        assert fused.new_fusion is None, f"{name}: CuPy's fusion could not trace it (fell back to new fusion)"
        assert fused._memo, f"{name}: no kernel was built"


def _nvrtc():
    """libnvrtc (from the nvidia-cuda-nvrtc wheel on sys.path, CUDA_PATH or the system), or None."""
    import ctypes
    import ctypes.util
    import glob
    import os

    candidates = []
    for base in sys.path + [os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]:
        candidates += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*")))
        candidates += sorted(glob.glob(os.path.join(base, "lib64", "libnvrtc.so*")))
    found = ctypes.util.find_library("nvrtc")
    for path in candidates + ([found] if found else []):
        if "builtins" in os.path.basename(path) or ".alt." in os.path.basename(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _compile(lib, source: str, options: list[str]) -> tuple[int, str]:
    import ctypes

    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kern.cu", 0, None, None) == 0
    argv = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    result = lib.nvrtcCompileProgram(prog, len(options), argv)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return result, log.value.decode(errors="replace")


def _source(cp, kern, args) -> str:
    """The CUDA source CuPy 14 generates for a traced fused kernel launched on ``args``."""
    import cupy._core._carray as carray
    import cupy._core._kernel as K
    import cupy._core._reduction as R
    import cupy._core._scalar as scalar
    import cupy._core.core as core

    ND, IDX, SC = 1, 2, 3                              # _ArgKind: NDARRAY, INDEXER, SCALAR
    args = [a for a in args if a is not None]
    ndim = max(a.ndim for a in args if isinstance(a, cp.ndarray))   # operands are broadcast before launch
    info = [K._ArgInfo(ND, cp.ndarray, a.dtype, ndim, True, True) if isinstance(a, cp.ndarray)
            else K._ArgInfo(SC, scalar.CScalar, np.dtype(type(a)), 0, True, True) for a in args]
    in_dtypes = tuple(p.dtype for p in kern.in_params)
    header = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    if isinstance(kern, K.ElementwiseKernel):
        *_, type_map = kern._decide_params_type(in_dtypes, ())
        arginfos = tuple(info) + (K._ArgInfo(IDX, carray.Indexer, None, ndim, True, True),)
        return header + K._get_elementwise_kernel_code(arginfos, type_map, kern.params, kern.operation, kern.name,
                                                       kern.preamble, **kern.kwargs)
    out_dtypes = tuple(p.dtype for p in kern.out_params)
    *_, type_map = K._decide_params_type(kern.in_params, kern.out_params, in_dtypes, out_dtypes)
    type_map = K._TypeMap(type_map._pairs + (("IndexT", "int32"),))
    in_ndim = ndim
    out_ndim = max(in_ndim - 1, 0) if kern.name in ("bpgpu_row_max", "bpgpu_row_expsum", "bpgpu_sq_chunks",
                                                     "bpgpu_softmax_quad_rowdot") else 0
    arginfos = tuple(info) + tuple(K._ArgInfo(ND, cp.ndarray, p.dtype, out_ndim, True, True) for p in kern.out_params) + (
        K._ArgInfo(IDX, carray.Indexer, None, in_ndim, True, True),
        K._ArgInfo(IDX, carray.Indexer, None, out_ndim, True, True),
        K._ArgInfo(SC, scalar.CScalar, np.dtype(np.int32), 0, True, True))
    return header + R._ReductionKernel_get_cached_function_code(
        kern.nin, kern.nout, kern._params, arginfos, type_map, kern.name, 512, kern.reduce_type, kern.identity,
        kern.map_expr, kern.reduce_expr, kern.post_map_expr, kern.preamble, kern.options)


def test_nvrtc_compiles_the_cuda_source_cupy_generates_for_every_kernel(real_cupy):
    lib = _nvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed: pip install nvidia-cuda-nvrtc-cu12 (no GPU needed)")
    import cupy._core.core as core

    try:
        options = list(core.assemble_cupy_compiler_options(()))
    except RuntimeError as exc:  # no CUDA headers for CuPy's includes
        pytest.skip(f"CuPy finds no CUDA headers: {exc}")
    options += ["-arch=compute_90", "--device-as-default-execution-space", "-ftz=true"]
    k, calls, _keep = _traced(real_cupy)
    failures = {}
    for name, args in calls.items():
        kern, _ = next(iter(getattr(k, name)._memo.values()))
        result, log = _compile(lib, _source(real_cupy, kern, args), options)
        if result != 0:
            failures[name] = log[-1500:]
    assert not failures, failures
