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
    if name == "cupy":
        status = cuda_status(0)
        if status != "ok":
            pytest.skip(f"no usable GPU: {status}")
        return {"device": dev}
    raise AssertionError(name)


@pytest.fixture(params=BACKENDS)
def backend_kwargs(request) -> dict:
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
