"""Numerics at the extremes: sigmoid, softmax and both cross-entropies stay finite at |z| = 1e4 with no
overflow / divide / invalid warnings (pytest runs with warnings as errors, and NumPy's error state is
set to raise here), and the gradients of a network driven that far are finite too.

Underflow is the one floating-point event allowed: e^{−1e4} rounds to 0, which is the correctly
rounded result (NumPy ignores underflow by default); clamping the exponent to avoid it would cost an
extra pass in the hot path and change no result that matters.
"""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.math.activations import HIDDEN, OUTPUT
from bpgpu.math.costs import Objective

RAISE = {"all": "raise", "under": "ignore"}
BIG = 1e4


def _z(dtype):
    return np.array([[-BIG, BIG, 0.0], [BIG, BIG, BIG], [-BIG, -BIG, -BIG], [-BIG, 0.0, -BIG]], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_softmax_are_finite_and_exact_at_1e4(dtype):
    z = _z(dtype)
    with np.errstate(**RAISE):
        s = OUTPUT["sigmoid"].forward(z)
        p = OUTPUT["softmax"].forward(z)
        t = HIDDEN["tanh"].forward(z)
    assert s.dtype == dtype and p.dtype == dtype
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(p)) and np.all(np.isfinite(t))
    assert np.array_equal(s[0], np.array([0.0, 1.0, 0.5], dtype=dtype))
    np.testing.assert_allclose(p, [[0, 1, 0], [1 / 3] * 3, [1 / 3] * 3, [0, 1, 0]], rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropies_are_finite_and_exact_at_1e4(dtype):
    z = _z(dtype)
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=dtype)
    with np.errstate(**RAISE):
        binary = Objective("cross_entropy", "sigmoid")
        a = OUTPUT["sigmoid"].forward(z)
        c_bin = binary.per_example(z, a, y)
        d_bin = binary.output_error(z, a, y)
        categorical = Objective("cross_entropy", "softmax")
        p = OUTPUT["softmax"].forward(z)
        c_cat = categorical.per_example(z, p, y)
        d_cat = categorical.output_error(z, p, y)
    for arr in (c_bin, d_bin, c_cat, d_cat):
        assert np.all(np.isfinite(arr)) and arr.dtype == dtype
    # binary: row 0 = softplus(1e4) [y=1 at z=−1e4] + softplus(1e4) [y=0 at z=1e4] + ln 2 [z=0, y=0]
    np.testing.assert_allclose(c_bin[0], 2 * BIG + np.log(2), rtol=1e-6)
    # categorical: row 0 = lse(z) − z_0 = 1e4 − (−1e4); row 1 = ln 3; row 3: z_1 is the max, y on it → 0
    # (to a few ulps of 1e4: logsumexp adds ln 3 to 1e4 before subtracting it again)
    atol = 4 * BIG * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(c_cat, [2 * BIG, np.log(3), np.log(3), 0.0], rtol=1e-6, atol=atol)


@pytest.mark.parametrize("cost_output", [("cross_entropy", "sigmoid"), ("cross_entropy", "softmax"),
                                         ("quadratic", "sigmoid"), ("quadratic", "softmax")])
@pytest.mark.parametrize("hidden", list(HIDDEN))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_stay_finite_when_logits_reach_1e4(cost_output, hidden, dtype):
    cost, output = cost_output
    net = bpgpu.MLP([3, 4, 3], hidden=hidden, output=output, cost=cost, dtype=dtype, seed=1)
    w, b = net.get_parameters()
    # scale so that the output logits reach |z| ≈ 1e4 (saturating everything on the way)
    net.set_parameters([w[0] * 50, w[1] * 2000], [b[0], b[1] * 2000])
    x = np.random.default_rng(2).normal(size=(8, 3)) * 10
    y = np.arange(8) % 3 if output == "softmax" else (np.arange(24).reshape(8, 3) % 2).astype(float)
    with np.errstate(**RAISE):
        z_max = float(np.max(np.abs(_logits(net, x))))
        value, grad_w, grad_b = net.backprop(x, y)
        out = net.forward(x)
    assert z_max > 1e3
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grad_w + grad_b)
    assert np.all(np.isfinite(out))


def _logits(net, x):
    from bpgpu.math import backprop as bp

    return bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, net.as_features(x))[0]


@pytest.mark.parametrize("lib", ["torch", "array_api_strict"])
def test_other_backends_stay_finite_at_1e4(lib):
    mod = pytest.importorskip(lib)
    kwargs = {"xp": mod, "device": "cpu"} if lib == "torch" else {"xp": mod, "device": mod.Device("device1")}
    for output in ("sigmoid", "softmax"):
        net = bpgpu.MLP([2, 3], output=output, dtype="float32", seed=0, **kwargs)
        w, b = net.get_parameters()
        net.set_parameters([np.array([[BIG, 0], [-BIG, 0], [0, 0]])], [b[0] * 0])
        x = np.array([[1.0, 0.0], [-1.0, 0.0]])
        y = np.array([0, 2]) if output == "softmax" else np.array([[1.0, 0, 0], [1.0, 0, 1]])
        value, grad_w, grad_b = net.backprop(x, y)
        assert np.isfinite(value) and value > 1e3
        assert all(np.all(np.isfinite(bpgpu.to_host(g))) for g in grad_w + grad_b)
