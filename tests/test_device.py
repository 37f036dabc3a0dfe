"""The device switch: BPGPU_DEVICE, explicit arguments, clear errors, lazy CuPy."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import bpgpu
from helpers import fake_cupy


@pytest.fixture(autouse=True)
def _fresh_cuda_status(fresh_cuda_status):
    """Every test here probes the GPU afresh."""


def test_default_is_the_cpu(monkeypatch):
    monkeypatch.delenv("BPGPU_DEVICE", raising=False)
    assert bpgpu.default_device() == "cpu"
    assert bpgpu.MLP([2, 2]).backend.name == "numpy"


def test_the_variable_is_read_when_a_network_is_created(monkeypatch):
    monkeypatch.setenv("BPGPU_DEVICE", "nonsense")
    with pytest.raises(bpgpu.ConfigError) as err:
        bpgpu.MLP([2, 2])
    msg = str(err.value)
    assert "BPGPU_DEVICE='nonsense'" in msg and all(v in msg for v in ("cpu", "gpu", "cuda:N", "auto"))
    monkeypatch.setenv("BPGPU_DEVICE", "CPU")
    assert bpgpu.MLP([2, 2]).backend.label == "cpu"


def test_an_explicit_argument_beats_the_variable(monkeypatch):
    monkeypatch.setenv("BPGPU_DEVICE", "cuda:3")
    assert bpgpu.MLP([2, 2], device="cpu").backend.label == "cpu"


def test_unknown_device_argument_lists_the_valid_values():
    with pytest.raises(ValueError, match="expected one of cpu, gpu, cuda, cuda:N, auto"):
        bpgpu.MLP([2, 2], device="tpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda", "cuda:0", "cuda:1"])
def test_gpu_without_cupy_is_an_error_not_a_fallback(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(bpgpu.DeviceError) as err:
        bpgpu.MLP([2, 2], device=spec)
    assert "CuPy is not installed" in str(err.value) and "bpgpu[cuda12]" in str(err.value)
    monkeypatch.setenv("BPGPU_DEVICE", spec)
    with pytest.raises(bpgpu.DeviceError):
        bpgpu.MLP([2, 2])


def test_gpu_with_no_driver_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count_error=RuntimeError("cudaErrorInsufficientDriver")))
    with pytest.raises(bpgpu.DeviceError, match="no NVIDIA driver or GPU is usable.*cudaErrorInsufficientDriver"):
        bpgpu.MLP([2, 2], device="gpu")


def test_gpu_index_out_of_range_says_how_many(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=1))
    with pytest.raises(bpgpu.DeviceError, match="cuda:2 does not exist: this machine has 1 GPU"):
        bpgpu.MLP([2, 2], device="cuda:2")


def test_gpu_kernel_compile_failure_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=1, kernel_error=RuntimeError("nvrtc: error")))
    with pytest.raises(bpgpu.DeviceError, match="could not compile or run a kernel.*nvrtc"):
        bpgpu.MLP([2, 2], device="cuda")


def test_auto_uses_the_cpu_and_says_so_when_no_gpu(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setenv("BPGPU_DEVICE", "auto")
    with caplog.at_level(logging.INFO, logger="bpgpu"):
        net = bpgpu.MLP([2, 2])
    assert net.backend.label == "cpu"
    assert "no usable GPU" in caplog.text and "using the CPU" in caplog.text


def test_cupy_is_imported_only_when_a_gpu_is_asked_for():
    code = "import sys, bpgpu; bpgpu.MLP([2, 2]); bpgpu.default_device(); print('cupy' in sys.modules)"
    env = {**os.environ, "BPGPU_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


def test_device_objects_of_other_libraries():
    xps = pytest.importorskip("array_api_strict")
    net = bpgpu.MLP([3, 2], device=xps.Device("device1"))
    assert net.backend.label == "array_api_strict:device1"
    torch = pytest.importorskip("torch")
    net = bpgpu.MLP([3, 2], device=torch.device("cpu"))
    assert net.backend.name == "torch"
    assert isinstance(net.weights[0], torch.Tensor)


def test_xp_numpy_module_is_the_cpu_backend():
    assert bpgpu.MLP([2, 2], xp=np).backend.label == "cpu"
    with pytest.raises(ValueError, match="NumPy arrays live on 'cpu'"):
        bpgpu.MLP([2, 2], xp=np, device="cuda:0")


def test_bpgpu_info_prints_the_device_and_libraries(capsys, monkeypatch):
    from bpgpu.cli.main import main

    monkeypatch.delenv("BPGPU_DEVICE", raising=False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("device: cpu", "numpy:", "cupy:", "gpu:", "tf32", "blas:"):
        assert key in out


def test_python_m_bpgpu_info_reports_a_bad_variable_without_crashing():
    env = {**os.environ, "BPGPU_DEVICE": "bogus"}
    out = subprocess.run([sys.executable, "-m", "bpgpu", "info"], capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert "error: BPGPU_DEVICE='bogus'" in out.stdout


def test_the_device_can_come_from_the_input_arrays():
    xps = pytest.importorskip("array_api_strict")
    x = xps.ones((2, 3), dtype=xps.float64, device=xps.Device("device2"))
    net = bpgpu.MLP([3, 2], device=x, dtype="float64")
    assert net.backend.label == "array_api_strict:device2"
    assert tuple(net.forward(x).shape) == (2, 2)
    assert bpgpu.MLP([3, 2], device=np.ones(3)).backend.label == "cpu"


def test_a_one_unit_softmax_is_refused():
    with pytest.raises(bpgpu.ConfigError, match="single output unit"):
        bpgpu.MLP([3, 1], output="softmax")
