"""Device failures: arrays of another library or device, unknown BPGPU_DEVICE values, unusable GPUs
(simulated), and a failed move that must leave the network as it was."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import bpgpu
from bpgpu.backend import device as devmod
from helpers import counting, fake_cupy

xps = pytest.importorskip("array_api_strict")  # a test dependency
try:
    import torch  # optional for users: the torch cases drop out without it
except ImportError:  # pragma: no cover
    torch = None

X = np.random.default_rng(0).normal(size=(5, 3))
LABELS = np.array([0, 1, 0, 1, 1])


@pytest.fixture(autouse=True)
def _fresh_cuda_status(fresh_cuda_status):
    """Every test here probes the GPU afresh."""


def _strict(dev):
    return lambda a: xps.asarray(a, device=xps.Device(dev))


NETS = {
    "numpy": {"device": "cpu"},
    "strict-device1": {"xp": xps, "device": xps.Device("device1")},
}
FOREIGN = {
    "strict-device1": _strict("device1"),
    "strict-device2": _strict("device2"),
    "strict-CPU_DEVICE": _strict("CPU_DEVICE"),
}
if torch is not None:
    NETS["torch-cpu"] = {"xp": torch, "device": "cpu"}
    FOREIGN["torch-cpu"] = lambda a: torch.asarray(a)
# Host memory on both sides is taken over by DLPack (tests/test_interop.py); array-api-strict's
# device1/device2 stand in for other devices.
HOST = {"numpy", "torch-cpu", "strict-CPU_DEVICE"}
MISMATCHES = [(n, f) for n in NETS for f in FOREIGN if n != f and not (n in HOST and f in HOST)]


@pytest.mark.parametrize("net_id,data_id", MISMATCHES)
def test_arrays_of_another_library_or_device_are_a_device_mismatch(net_id, data_id):
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0, **NETS[net_id])
    conv = FOREIGN[data_id]
    native = (lambda a: a) if net_id == "numpy" else FOREIGN[net_id]
    calls = {
        "forward": lambda: net.forward(conv(X)),
        "backprop-x": lambda: net.backprop(conv(X), native(LABELS)),
        "backprop-y": lambda: net.backprop(native(X), conv(LABELS)),
        "cost": lambda: net.cost(conv(X), native(LABELS)),
        "gradcheck": lambda: bpgpu.gradcheck(net, conv(X), native(LABELS), max_entries=1, directions=0),
    }
    for name, call in calls.items():
        with pytest.raises(bpgpu.DeviceMismatchError) as info:
            call()
        msg = str(info.value)
        assert net.backend.label in msg, (name, msg)
        assert "move the data" in msg and "net.to(" in msg, (name, msg)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("net_id", list(NETS))
def test_host_numpy_and_lists_are_converted_once_at_the_boundary(net_id):
    """The documented conversion: NumPy arrays and nested lists are copied to the network's device."""
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0, **NETS[net_id])
    for x, y in ((X, LABELS), (X.tolist(), LABELS.tolist())):
        out = net.forward(x)
        assert bpgpu.backend.device.backend_of(out).label == net.backend.label
        cost, grad_w, _ = net.backprop(x, y)
        assert np.isfinite(cost)
        assert bpgpu.backend.device.backend_of(grad_w[0]).label == net.backend.label


@pytest.mark.parametrize(
    "value", ["tpu", "cuda:x", "cuda:-1", "gpu0", "cuda0", "mps", "numpy", "cuda:0:1", "0"]
)
def test_unknown_bpgpu_device_values_list_the_valid_ones(monkeypatch, value):
    monkeypatch.setenv("BPGPU_DEVICE", value)
    with pytest.raises(bpgpu.ConfigError) as info:
        bpgpu.MLP([2, 2])
    msg = str(info.value)
    assert f"BPGPU_DEVICE={value!r}" in msg
    for valid in ("cpu", "gpu", "cuda", "cuda:N", "auto"):
        assert valid in msg
    with pytest.raises(bpgpu.ConfigError):
        bpgpu.default_device()


def test_blank_bpgpu_device_means_the_cpu(monkeypatch):
    monkeypatch.setenv("BPGPU_DEVICE", "  ")
    assert bpgpu.MLP([2, 2]).backend.label == "cpu"


GPU_FAILURES = {
    "not-installed": (None, ["CuPy is not installed", 'pip install "bpgpu[cuda12]"', "device='cpu'"]),
    "no-device": (fake_cupy(count_error=RuntimeError("cudaErrorNoDevice: no CUDA-capable device")),
                  ["no NVIDIA driver or GPU is usable", "cudaErrorNoDevice", "nvidia-smi", "device='cpu'"]),
    "zero-devices": (fake_cupy(count=0), ["found no GPU", "CUDA_VISIBLE_DEVICES"]),
    "compile-failure": (fake_cupy(kernel_error=RuntimeError("nvrtc: error: invalid value for --gpu-architecture")),
                        ["could not compile or run a kernel", "nvrtc", "NVRTC", "[ctk]"]),
    "no-nvrtc": (fake_cupy(compile_error=RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: not found")),
                 ["could not compile or run a kernel", "libnvrtc.so.12", "pip install nvidia-cuda-nvrtc"]),
    "no-cublas": (fake_cupy(matmul_error=ImportError('Failure finding "libcublas.so"')),
                  ["could not run a matrix product (cuBLAS)", "libcublas.so", "pip install nvidia-cublas"]),
}


@pytest.mark.parametrize("how", list(GPU_FAILURES))
@pytest.mark.parametrize("path", ["argument", "variable", "move"])
def test_an_unusable_gpu_is_a_device_error_with_reason_and_fix(monkeypatch, how, path):
    module, words = GPU_FAILURES[how]
    net = bpgpu.MLP([3, 4, 2], dtype="float64", seed=0)
    before = net.get_parameters()
    monkeypatch.setitem(sys.modules, "cupy", module)
    with pytest.raises(bpgpu.DeviceError) as info:
        if path == "argument":
            bpgpu.MLP([2, 2], device="cuda:0")
        elif path == "variable":
            monkeypatch.setenv("BPGPU_DEVICE", "gpu")
            bpgpu.MLP([2, 2])
        else:
            net.to("cuda")
    msg = str(info.value)
    assert "GPU was asked for" in msg
    for word in words:
        assert word in msg, (word, msg)
    # a failed move leaves the network where it was, with the same weights, and usable
    assert net.backend.label == "cpu"
    for a, b in zip(before[0] + before[1], net.get_parameters()[0] + net.get_parameters()[1]):
        assert np.array_equal(a, b)
    assert np.isfinite(net.cost(X, LABELS))


def test_auto_never_raises_for_a_missing_gpu(monkeypatch):
    for module in (None, fake_cupy(count_error=RuntimeError("no driver")), fake_cupy(kernel_error=RuntimeError("x"))):
        devmod.cuda_status.cache_clear()
        monkeypatch.setitem(sys.modules, "cupy", module)
        assert bpgpu.MLP([2, 2], device="auto").backend.label == "cpu"


def test_fit_moves_host_data_to_the_device_once_not_per_batch(monkeypatch):
    """Host NumPy data is converted once at the API boundary; inside the loop only the per-epoch
    permutation goes host → device and one stacked summary comes back per epoch."""
    import bpgpu.engines.generic.step as engine
    import bpgpu.training.loop as loop
    import bpgpu.validation as validation

    calls = {"boundary": 0, "loop_to_device": 0, "loop_to_host": 0}

    monkeypatch.setattr(validation, "to_backend", counting(calls, "boundary", validation.to_backend))
    monkeypatch.setattr(loop, "to_backend", counting(calls, "loop_to_device", loop.to_backend))
    monkeypatch.setattr(engine, "to_host", counting(calls, "loop_to_host", engine.to_host))  # the epoch's one read
    net = bpgpu.MLP([3, 4, 2], xp=xps, device=xps.Device("device1"), seed=0)
    x = np.random.default_rng(1).normal(size=(40, 3))
    y = np.arange(40) % 2
    net.fit(x, y, 3, 4, progress=False, seed=0)  # 3 epochs × 10 batches
    assert calls == {"boundary": 2, "loop_to_device": 3, "loop_to_host": 3}, calls
