"""The NumPy fast path of backprop (bpgpu/math/numpy_fast.py) equals the generic array-API path."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.math import backprop as bp
from bpgpu.math import numpy_fast

COMBOS = [  # (hidden, output, cost)
    (h, o, c)
    for h in ("sigmoid", "tanh", "relu", "identity")
    for o, c in (("sigmoid", "quadratic"), ("sigmoid", "cross_entropy"), ("softmax", "cross_entropy"),
                 ("softmax", "quadratic"), ("identity", "quadratic"))
]
TOL = {"float32": dict(rtol=2e-4, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-13)}


def _case(hidden: str, output: str, cost: str, dtype: str, scale: float = 1.0, seed: int = 0):
    net = bpgpu.MLP([7, 6, 5, 4], hidden=hidden, output=output, cost=cost, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((9, 7))).astype(dtype)
    y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 9)]
    if output == "identity":
        y = rng.standard_normal((9, 4)).astype(dtype)
    return net, x, y


def _both(net, x, y):
    xp = numpy_fast.namespace(x, y)
    fast = numpy_fast.backprop_numpy(xp, net.weights, net.biases, net.hidden, net.objective, x, y)
    generic = bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y)
    return fast, generic


def _assert_close(fast, generic, dtype):
    np.testing.assert_allclose(float(fast[0]), float(generic[0]), **TOL[dtype])
    for f, g in zip(fast[1] + fast[2], generic[1] + generic[2]):
        assert f.dtype == g.dtype and f.shape == g.shape
        np.testing.assert_allclose(f, g, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,output,cost", COMBOS, ids=lambda v: str(v))
def test_fast_path_equals_generic(hidden, output, cost, dtype):
    net, x, y = _case(hidden, output, cost, dtype)
    _assert_close(*_both(net, x, y), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,output,cost", [("sigmoid", "sigmoid", "quadratic"), ("relu", "softmax", "cross_entropy"),
                                                ("tanh", "sigmoid", "cross_entropy")])
def test_fast_path_equals_generic_when_saturated(hidden, output, cost, dtype):
    """Inputs so large that sigmoids saturate and the exp clip is hit: same values, no warnings."""
    net, x, y = _case(hidden, output, cost, dtype, scale=300.0, seed=1)
    fast, generic = _both(net, x, y)
    _assert_close(fast, generic, dtype)
    assert np.isfinite(float(fast[0]))


def test_fast_path_leaves_inputs_and_parameters_alone():
    net, x, y = _case("sigmoid", "softmax", "cross_entropy", "float32")
    before = [a.copy() for a in (x, y, *net.weights, *net.biases)]
    _both(net, x, y)
    for b, a in zip(before, (x, y, *net.weights, *net.biases)):
        np.testing.assert_array_equal(a, b)


def test_backprop_dispatches_numpy_to_the_fast_path(monkeypatch):
    net, x, y = _case("relu", "softmax", "cross_entropy", "float32")
    calls = []
    real = numpy_fast.backprop_numpy
    monkeypatch.setattr(numpy_fast, "backprop_numpy", lambda *a: calls.append(1) or real(*a))
    cost, gw, gb = bp.backprop(net.weights, net.biases, net.hidden, net.objective, x, y)
    assert calls == [1]
    _assert_close((cost, gw, gb), bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y),
                  "float32")


def test_other_libraries_take_the_generic_path(monkeypatch):
    strict = pytest.importorskip("array_api_strict")
    net = bpgpu.MLP([3, 4, 2], hidden="relu", xp=strict, device=strict.Device("CPU_DEVICE"), seed=0)
    monkeypatch.setattr(numpy_fast, "backprop_numpy", lambda *a: pytest.fail("fast path used for array_api_strict"))
    cost, _, _ = net.backprop(np.ones((2, 3)), np.array([0, 1]))
    assert np.isfinite(cost)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_buffers_receive_the_same_gradients(dtype):
    net, x, y = _case("relu", "softmax", "cross_entropy", dtype)
    gw_out = [np.full(w.shape, np.nan, dtype=dtype) for w in net.weights]
    gb_out = [np.full(b.shape, np.nan, dtype=dtype) for b in net.biases]
    cost, gw, gb = bp.backprop(net.weights, net.biases, net.hidden, net.objective, x, y, out=(gw_out, gb_out))
    assert all(a is b for a, b in zip(gw + gb, gw_out + gb_out))
    _assert_close((cost, gw, gb), bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y), dtype)


def test_unusable_out_buffers_are_ignored():
    net, x, y = _case("sigmoid", "sigmoid", "quadratic", "float32")
    wrong = ([np.empty((2, 2), np.float32)] * 3, [np.empty(2, np.float32)] * 3)
    for out in (wrong, ([w.astype(np.float64) for w in net.weights], [b.copy() for b in net.biases]), "junk"):
        cost, gw, gb = bp.backprop(net.weights, net.biases, net.hidden, net.objective, x, y, out=out)
        _assert_close((cost, gw, gb), bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y),
                      "float32")
