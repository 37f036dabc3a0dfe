"""The GPU probe (bpgpu/backend/probe.py): each thing a machine with only the NVIDIA driver can lack —
the driver, NVRTC, cuBLAS — is a DeviceError at MLP(...) that names the package to install. CuPy's
own error texts (cupy_backends/cuda/_softlink.pyx, cupy_backends/cuda/libs/__init__.py) are simulated
with a fake cupy module."""

from __future__ import annotations

import sys

import pytest

import bpgpu
from bpgpu.backend import probe
from helpers import fake_cupy

# What CuPy 14 raises when libnvrtc cannot be loaded (SoftLink, at the first kernel compile) ...
NO_NVRTC = RuntimeError(
    "CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file: "
    "No such file or directory"
)
# ... when cuda-pathfinder finds no cuBLAS (the first matrix product imports cupy_backends.cuda.libs.cublas) ...
NO_CUBLAS = ImportError('Failure finding "libcublas.so": No such file: libcublas.so.12')
# ... and when there is no driver / no device.
NO_DRIVER = RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
OLD_DRIVER = RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")


@pytest.fixture(autouse=True)
def _fresh(fresh_cuda_status):
    """Each test probes afresh."""


@pytest.fixture
def cuda12(monkeypatch):
    monkeypatch.setattr(probe, "cupy_distribution", lambda: ("cupy-cuda12x", "12"))


def _device_error(monkeypatch, module, device="cuda:0") -> str:
    monkeypatch.setitem(sys.modules, "cupy", module)
    with pytest.raises(bpgpu.DeviceError) as info:
        bpgpu.MLP([3, 2], device=device)
    return str(info.value)


def test_a_working_gpu_passes_the_kernel_and_the_matrix_product(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=2))
    assert probe.cuda_status(0) == "ok" and probe.cuda_status(1) == "ok"


def test_missing_nvrtc_names_the_nvrtc_package(monkeypatch, cuda12):
    for where in ({"compile_error": NO_NVRTC}, {"kernel_error": NO_NVRTC}):
        probe.cuda_status.cache_clear()
        msg = _device_error(monkeypatch, fake_cupy(**where))
        assert "could not compile or run a kernel on cuda:0" in msg, msg
        assert "libnvrtc.so.12" in msg  # CuPy's own words are kept
        assert "NVRTC" in msg and "pip install nvidia-cuda-nvrtc-cu12" in msg
        assert 'pip install ".[cuda12]"' in msg and "bpgpu[cuda12]" in msg


def test_missing_cublas_names_the_cublas_package_and_fails_at_construction_not_in_fit(monkeypatch, cuda12):
    msg = _device_error(monkeypatch, fake_cupy(matmul_error=NO_CUBLAS), device="cuda")
    assert "could not run a matrix product (cuBLAS) on cuda:0" in msg, msg
    assert "libcublas.so" in msg
    assert "pip install nvidia-cublas-cu12" in msg and 'pip install ".[cuda12]"' in msg


def test_the_cuda13_build_names_the_cuda13_packages(monkeypatch):
    monkeypatch.setattr(probe, "cupy_distribution", lambda: ("cupy-cuda13x", "13"))
    msg = _device_error(monkeypatch, fake_cupy(matmul_error=ImportError('Failure finding "libcublas.so"')))
    assert "pip install nvidia-cublas." in msg and "nvidia-cublas-cu12" not in msg
    assert 'pip install ".[cuda13]"' in msg
    probe.cuda_status.cache_clear()
    msg = _device_error(monkeypatch, fake_cupy(compile_error=NO_NVRTC))
    assert "pip install nvidia-cuda-nvrtc." in msg and "nvrtc-cu12" not in msg


def test_no_driver_says_check_the_driver(monkeypatch, cuda12):
    msg = _device_error(monkeypatch, fake_cupy(count_error=NO_DRIVER), device="gpu")
    assert "no NVIDIA driver or GPU is usable" in msg and "cudaErrorNoDevice" in msg
    assert "nvidia-smi" in msg and "CUDA_VISIBLE_DEVICES" in msg and "device='cpu'" in msg


def test_a_driver_too_old_for_cuda13_points_to_the_cuda12_build(monkeypatch):
    monkeypatch.setattr(probe, "cupy_distribution", lambda: ("cupy-cuda13x", "13"))
    msg = _device_error(monkeypatch, fake_cupy(count_error=OLD_DRIVER))
    assert "driver is too old for cupy-cuda13x" in msg and 'pip install "bpgpu[cuda12]"' in msg


def test_a_wrong_result_is_not_usable(monkeypatch):
    module = fake_cupy()

    class Wrong(module.RawKernel):
        def __call__(self, grid, block, args):
            args[1].a[:] = 0  # a kernel that ran but computed nothing (e.g. an arch mismatch)

    module.RawKernel = Wrong
    msg = _device_error(monkeypatch, module)
    assert "probe kernel computed" in msg and "expected 256.0" in msg


def test_an_unclassified_kernel_failure_still_names_the_install(monkeypatch, cuda12):
    msg = _device_error(monkeypatch, fake_cupy(kernel_error=RuntimeError("cudaErrorNoKernelImageForDevice")))
    assert "cupy-cudaXXx package matches the installed driver" in msg and 'pip install ".[cuda12]"' in msg


def test_not_installed_names_the_extra(monkeypatch, cuda12):
    msg = _device_error(monkeypatch, None)
    assert "CuPy is not installed" in msg and 'pip install ".[cuda12]"' in msg and "cupy-cuda12x[ctk]" in msg


def test_the_extras_bring_cupys_runtime_libraries():
    """pyproject's cuda12/cuda13 extras use CuPy's [ctk] extra (NVRTC, cuBLAS, … from PyPI)."""
    import pathlib
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11

    root = pathlib.Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.replace(" ", "").startswith("cupy-cuda12x[ctk]") for r in extras["cuda12"]), extras["cuda12"]
    assert any(r.replace(" ", "").startswith("cupy-cuda13x[ctk]") for r in extras["cuda13"]), extras["cuda13"]


@pytest.mark.gpu
def test_the_probe_passes_on_the_cupy_test_double(cupy_double):
    """The probe's kernel runs through its NumPy twin (tests/cupy_double/twins.py), its matrix
    product on the double's matmul; a missing index still says how many GPUs there are."""
    assert probe.cuda_status(0) == "ok" and probe.cuda_status(1) == "ok"
    assert probe.cuda_status(2).startswith("cuda:2 does not exist: this machine has 2 GPU(s)")
