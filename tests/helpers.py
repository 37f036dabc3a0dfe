"""Small shared helpers for the tests: data for a network, and comparing gradients across backends."""

from __future__ import annotations

import numpy as np

from bpgpu import to_host

# Every supported (hidden, output, cost) combination.
HIDDEN = ("sigmoid", "tanh", "relu", "identity")
PAIRS = (
    ("softmax", "cross_entropy"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "quadratic"),
    ("sigmoid", "quadratic"),
    ("identity", "quadratic"),
)
COMBOS = [(h, o, c) for h in HIDDEN for o, c in PAIRS]
TOL = {"float64": 1e-12, "float32": 1e-5}


def make_data(sizes, output, m, rng, labels=True):
    """Host (x, y) for a network: integer labels for softmax (if ``labels``, else one-hot rows), 0/1
    rows for sigmoid (integer 0/1 labels for a single sigmoid unit if ``labels``), real targets for
    identity."""
    x = rng.normal(size=(m, sizes[0]))
    n_out = sizes[-1]
    if output == "softmax":
        y = rng.integers(0, n_out, size=m)
        if not labels:
            y = np.eye(n_out)[y]
    elif output == "sigmoid":
        y = rng.integers(0, 2, size=(m, n_out))
        y = y[:, 0] if (labels and n_out == 1) else y.astype(np.float64)
    else:
        y = rng.normal(size=(m, n_out))
    return x, y


def max_scaled_difference(got, want) -> float:
    """max |got − want| over all entries, divided by the largest |want| entry of that array."""
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(to_host(g), dtype=np.float64), np.asarray(to_host(w), dtype=np.float64)
        assert g.shape == w.shape
        scale = max(float(np.max(np.abs(w))), 1e-30)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


def fake_cupy(count=1, count_error=None, kernel_error=None, compile_error=None, matmul_error=None):
    """A stand-in ``cupy`` module for the GPU probe (simulates GPU failures on a machine without one):
    ``getDeviceCount`` returns ``count`` or raises ``count_error``; ``arange`` (CuPy's elementwise
    kernels) raises ``kernel_error``; compiling a ``RawKernel`` (NVRTC) raises ``compile_error``;
    ``matmul`` (cuBLAS) raises ``matmul_error``. Without errors the probe's kernel and matrix product
    compute their true values on NumPy underneath."""
    import types

    def get_device_count():
        if count_error is not None:
            raise count_error
        return count

    class Device:
        def __init__(self, i):
            self.id = i

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Array:
        def __init__(self, a):
            self.a = np.asarray(a)

        def sum(self):
            return Array(self.a.sum())

        def item(self):
            return self.a.item()

        def reshape(self, *shape):
            return Array(self.a.reshape(*shape))

    def arange(n, dtype=None):
        if kernel_error is not None:
            raise kernel_error
        return Array(np.arange(n, dtype=np.float32))

    class RawKernel:
        def __init__(self, source, name):
            if compile_error is not None:
                raise compile_error
            self.name = name

        def __call__(self, grid, block, args):
            x, y, n = args
            y.a[: int(n)] = 2 * x.a[: int(n)] + 1

    def matmul(a, b):
        if matmul_error is not None:
            raise matmul_error
        return Array(a.a @ b.a)

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=runtime, Device=Device), arange=arange, RawKernel=RawKernel,
        matmul=matmul, empty_like=lambda x: Array(np.empty_like(x.a)), float32="float32", int32=np.int32,
        ndarray=type("ndarray", (), {}),  # array_api_compat.is_cupy_array looks it up
    )


def counting(calls, key, real):
    """``real`` wrapped so that each call adds 1 to ``calls[key]`` (to count transfers and checks)."""

    def wrapper(*args, **kwargs):
        calls[key] += 1
        return real(*args, **kwargs)

    return wrapper


class ThreadComm:
    """A Communicator whose ranks are threads of one process (tests only): every collective is an
    exchange through ``shared["slots"]`` between two waits on ``shared["barrier"]`` (see
    :func:`thread_ranks`). ``allreduce_sum`` copies its inputs, as MPI sends them (the caller may reuse
    its buffers at once), and records each call's array shapes in ``shared["calls"][rank]`` when the
    shared dict has that list (one all-reduce per step: the engine tests count them)."""

    name = "threads"

    def __init__(self, rank, shared):
        self.rank, self.size, self.shared = rank, len(shared["slots"]), shared

    def _exchange(self, value):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = value
        barrier.wait()
        everything = list(slots)
        barrier.wait()
        return everything

    def allreduce_sum(self, arrays):
        if "calls" in self.shared:
            self.shared["calls"][self.rank].append([tuple(a.shape) for a in arrays])
        everything = self._exchange([np.array(a, copy=True) for a in arrays])
        return [sum(parts[i] for parts in everything) for i in range(len(arrays))]

    def broadcast(self, arrays, root=0):
        return [np.array(a, copy=True) for a in self._exchange(list(arrays))[root]]

    def allreduce_scalar(self, value):
        return float(sum(self._exchange(float(value))))

    def barrier(self):
        self._exchange(None)

    def abort(self, code=1):
        raise SystemExit(code)


def thread_ranks(size, record_calls=False, timeout=None):
    """The dict the ThreadComm ranks of one run share (slots, a barrier; per-rank call lists if asked)."""
    import threading

    shared = {"size": size, "slots": [None] * size, "barrier": threading.Barrier(size, timeout=timeout)}
    if record_calls:
        shared["calls"] = [[] for _ in range(size)]
    return shared


def stand_in_gpu_runner(peak_bytes=None):
    """bpgpu on NumPy posing as the GPU contender ("bpgpu cupy"): exercises the bench's GPU reporting
    paths without a GPU; ``peak_bytes`` is what it reports as the device-memory high-water mark."""
    from bpgpu.bench.runners import BpgpuRunner

    class StandInGpu(BpgpuRunner):
        def __init__(self, device: str = "gpu") -> None:
            super().__init__("cpu")
            self.device, self.name = "gpu", "bpgpu cupy"

        def skip_reason(self, workload, dtype):
            return None

        def import_library(self) -> None:
            pass

        def setup(self, *args) -> None:
            self.device = "cpu"
            try:
                super().setup(*args)
            finally:
                self.device = "gpu"

        def reset_peak(self) -> None:
            pass

        def device_peak_bytes(self):
            return peak_bytes

    return StandInGpu()


def import_real_cupy():
    """The real ``cupy`` module, imported with any stand-in in ``sys.modules`` set aside and put back
    afterwards (the stand-in stays installed for the rest of the test); skips where CuPy does not import."""
    import importlib
    import sys

    import pytest

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
