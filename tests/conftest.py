"""Shared fixtures: the backends every parity test runs on."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bpgpu.backend.device import cuda_status


def _backend_params() -> list:
    params = [pytest.param(("numpy", None), id="numpy")]
    if importlib.util.find_spec("array_api_strict"):
        for dev in ("CPU_DEVICE", "device1", "device2"):
            params.append(pytest.param(("array_api_strict", dev), id=f"strict-{dev}"))
    params.append(pytest.param(("torch", "cpu"), id="torch-cpu"))
    params.append(pytest.param(("cupy-double", "cuda:0"), id="cupy-double", marks=pytest.mark.gpu))
    params.append(pytest.param(("cupy", "cuda:0"), id="cupy", marks=pytest.mark.gpu))
    return params


BACKENDS = _backend_params()


def make_backend_kwargs(spec: tuple[str, str | None]) -> dict:
    """MLP(...) keyword arguments that put a network on the backend ``spec``; skips when absent."""
    name, dev = spec
    if name == "numpy":
        return {"device": "cpu"}
    if name == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
        return {"xp": xp, "device": xp.Device(dev)}
    if name == "torch":
        torch = pytest.importorskip("torch", reason="torch is optional: pip install torch==2.13.0")
        return {"xp": torch, "device": dev}
    if name == "cupy-double":
        import sys

        if getattr(sys.modules.get("cupy"), "__doc__", "") != _double_doc():
            raise AssertionError("install the CuPy test double first (the cupy_double fixture)")
        return {"device": dev}
    if name == "cupy":
        status = cuda_status(0)
        if status != "ok":
            pytest.skip(f"no usable GPU: {status}")
        return {"device": dev}
    raise AssertionError(name)


@pytest.fixture(params=BACKENDS)
def backend_kwargs(request) -> dict:
    if request.param[0] == "cupy-double":
        request.getfixturevalue("cupy_double")
    return make_backend_kwargs(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def need_gpu() -> None:
    """Skip, with the reason, where CuPy cannot use GPU 0."""
    status = cuda_status(0)
    if status != "ok":
        pytest.skip(f"no usable GPU: {status}")


@pytest.fixture
def fresh_cuda_status():
    """Forget cached GPU probes before and after a test that fakes or hides CuPy."""
    cuda_status.cache_clear()
    yield
    cuda_status.cache_clear()


# --- the GPU tests: on the CuPy test double (tests/cupy_double/, always) and on real CuPy (where a card is) ---
def _double_doc() -> str:
    import cupy_double

    return cupy_double.cupy.__doc__


@pytest.fixture
def cupy_double(monkeypatch):
    """The CuPy test double installed as ``cupy`` (two devices, device 0 current, counters idle);
    array-api-compat's ``cupy`` wrapper and the GPU probe's cache are rebuilt around it."""
    import cupy_double as double
    from cupy_double.twins import register_all

    cuda_status.cache_clear()
    double.install(monkeypatch)
    register_all()
    yield double
    cuda_status.cache_clear()


GPU_IMPLS = [pytest.param("double", id="double", marks=pytest.mark.gpu),
             pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=GPU_IMPLS)
def gpu_cupy(request):
    """The ``cupy`` a GPU test runs on: the test double here, real CuPy where ``cuda_status(0) == "ok"``
    (skipped with the reason otherwise)."""
    if request.param == "double":
        return request.getfixturevalue("cupy_double").cupy
    request.getfixturevalue("need_gpu")
    import cupy

    return cupy


@pytest.fixture
def two_gpus(gpu_cupy):
    """``gpu_cupy`` where it has at least two GPUs (the double has two): for the tests of cuda:1."""
    if gpu_cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs (cuda:0 and cuda:1)")
    return gpu_cupy


@pytest.fixture
def saved(tmp_path):
    """A small float64 network and the model file it was saved to: (net, path)."""
    import bpgpu

    net = bpgpu.MLP([4, 5, 3], hidden="tanh", dtype="float64", seed=3)
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path
