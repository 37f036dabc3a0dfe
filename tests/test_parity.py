"""Same network, weights and batch → same cost and gradients on every backend present.

Backends: NumPy; array-api-strict on CPU_DEVICE and on its fake devices device1/device2 (device2
defaults to float32 and both reject mixing devices, so a forgotten dtype=/device= fails here); PyTorch
CPU; CuPy when a GPU is usable. The reference is NumPy in float64. Tolerances scale with the dtype and
the largest gradient entry: float64 1e-12, float32 1e-5.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

import bpgpu
from helpers import COMBOS, TOL, make_data, max_scaled_difference


def _reference(sizes, hidden, output, cost, x, y):
    net = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", device="cpu", seed=7)
    return net.backprop(x, y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_every_backend_gives_the_reference_gradients(backend_kwargs, dtype, hidden, output, cost):
    rng = np.random.default_rng(3)
    sizes = [5, 7, 6, 4]
    x, y = make_data(sizes, output, 9, rng)
    ref_cost, ref_w, ref_b = _reference(sizes, hidden, output, cost, x, y)

    net = bpgpu.MLP(sizes, hidden, output, cost, dtype=dtype, seed=7, **backend_kwargs)
    got_cost, got_w, got_b = net.backprop(x, y)

    for g in got_w + got_b:  # the gradients really live on the network's backend and device
        assert array_api_compat.array_namespace(g) is net.xp
        assert array_api_compat.device(g) == net.device
        assert g.dtype == net.dtype
    tol = TOL[dtype]
    assert abs(got_cost - ref_cost) <= tol * max(abs(ref_cost), 1.0) * 10
    # float32 parameters are rounded from the float64 draws, so compare against the float64
    # reference run on the same rounded weights when the dtype is float32.
    if dtype == "float32":
        rounded = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", device="cpu", seed=7)
        rounded.set_parameters(*net.get_parameters())
        ref_cost, ref_w, ref_b = rounded.backprop(x.astype(np.float32).astype(np.float64), y)
    assert max_scaled_difference(got_w + got_b, ref_w + ref_b) <= tol


def test_same_seed_same_starting_weights_on_every_backend(backend_kwargs):
    ref = bpgpu.MLP([4, 3, 2], dtype="float64", device="cpu", seed=11)
    net = bpgpu.MLP([4, 3, 2], dtype="float64", seed=11, **backend_kwargs)
    for a, b in zip(ref.get_parameters()[0] + ref.get_parameters()[1], net.get_parameters()[0] + net.get_parameters()[1]):
        np.testing.assert_array_equal(a, b)


def test_forward_has_one_row_per_example(backend_kwargs):
    net = bpgpu.MLP([3, 5, 4], seed=0, **backend_kwargs)
    a = net.forward(np.ones((6, 3)))
    assert tuple(a.shape) == (6, 4)
    np.testing.assert_allclose(bpgpu.to_host(net.xp.sum(a, axis=1)), np.ones(6), rtol=1e-6)


def test_parameters_have_the_documented_shapes(backend_kwargs):
    net = bpgpu.MLP([784, 30, 10], seed=0, **backend_kwargs)
    assert [tuple(w.shape) for w in net.weights] == [(30, 784), (10, 30)]
    assert [tuple(b.shape) for b in net.biases] == [(30,), (10,)]
    assert all(array_api_compat.device(p) == net.device for p in net.weights + net.biases)


def test_moving_a_network_keeps_its_parameters():
    xps = pytest.importorskip("array_api_strict")
    torch = pytest.importorskip("torch")
    net = bpgpu.MLP([4, 3, 2], dtype="float64", device="cpu", seed=1)
    before = net.get_parameters()
    net.to(xp=xps, device=xps.Device("device1"))
    assert net.backend.label == "array_api_strict:device1"
    net.to(xp=torch, device="cpu")
    assert net.backend.name == "torch"
    net.to("cpu")
    for a, b in zip(before[0] + before[1], net.get_parameters()[0] + net.get_parameters()[1]):
        np.testing.assert_array_equal(a, b)


def test_set_parameters_copies_so_the_callers_arrays_stay_theirs(backend_kwargs):
    net = bpgpu.MLP([3, 2], dtype="float64", seed=0, **backend_kwargs)
    w, b = [np.zeros((2, 3))], [np.zeros(2)]
    net.set_parameters(w, b)
    w[0][:] = 5.0
    b[0][:] = 5.0
    assert float(bpgpu.to_host(net.weights[0]).max()) == 0.0
    assert float(bpgpu.to_host(net.biases[0]).max()) == 0.0
