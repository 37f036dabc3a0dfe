"""CuPy on a real GPU: skipped with the reason where no GPU is usable. Run with CUPY_TF32=0."""

from __future__ import annotations

import os

import numpy as np
import pytest

import bpgpu
from helpers import COMBOS, make_data, max_scaled_difference

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("gpu_cupy")]




def test_arrays_really_live_on_the_gpu(monkeypatch):
    import cupy

    monkeypatch.setenv("BPGPU_DEVICE", "gpu")
    net = bpgpu.MLP([8, 16, 4], seed=0)
    assert net.backend.label == "cuda:0"
    for p in net.weights + net.biases:
        assert isinstance(p, cupy.ndarray) and p.device.id == 0
    _, gw, gb = net.backprop(np.ones((3, 8)), np.array([0, 1, 2]))
    assert all(isinstance(g, cupy.ndarray) for g in gw + gb)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_cupy_gradients_equal_numpy(hidden, output, cost, dtype, tol):
    assert os.environ.get("CUPY_TF32", "0") != "1", "run parity tests with CUPY_TF32=0"
    rng = np.random.default_rng(1)
    sizes = [20, 33, 17, 5]
    x, y = make_data(sizes, output, 64, rng)
    gpu = bpgpu.MLP(sizes, hidden, output, cost, dtype=dtype, device="cuda:0", seed=3)
    cpu = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", device="cpu", seed=3)
    cpu.set_parameters(*gpu.get_parameters())
    c1, w1, b1 = gpu.backprop(x, y)
    c2, w2, b2 = cpu.backprop(x.astype(dtype).astype(np.float64), y)
    assert max_scaled_difference(w1 + b1, w2 + b2) <= tol
    assert c1 == pytest.approx(c2, rel=10 * tol)


def test_move_between_cpu_and_gpu():
    net = bpgpu.MLP([4, 3, 2], dtype="float64", seed=0)
    before = net.get_parameters()
    net.to("cuda:0").to("cpu")
    for a, b in zip(before[0] + before[1], net.get_parameters()[0] + net.get_parameters()[1]):
        np.testing.assert_array_equal(a, b)
