"""Dropout on the hidden layers: the back-propagated gradient of the thinned network equals central
finite differences with the mask held fixed; the masks are inverted dropout's; fit with dropout equals
a torch autograd loop fed the same masks; one seed reproduces a run; inference never drops."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.backend import dropout as masks_mod
from bpgpu.errors import ConfigError
from bpgpu.math.activations import hidden_activation
from bpgpu.math.backprop import backprop_generic
from bpgpu.math.costs import Objective
from bpgpu.math.dropout import backprop_dropout, feedforward_dropout


def _problem(hidden, output, cost, seed=0, sizes=(5, 7, 6, 3), m=9, p=0.4):
    rng = np.random.default_rng(seed)
    net = bpgpu.MLP(list(sizes), hidden=hidden, output=output, cost=cost, dtype="float64", seed=seed)
    weights, biases = [np.array(w) for w in net.weights], [np.array(b) for b in net.biases]
    biases = [b + 0.1 * rng.normal(size=b.shape) for b in biases]  # non-zero biases: every term checked
    x = rng.normal(size=(m, sizes[0]))
    if output == "softmax":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    elif output == "sigmoid":
        y = rng.integers(0, 2, (m, sizes[-1])).astype(np.float64)
    else:
        y = rng.normal(size=(m, sizes[-1]))
    masks = masks_mod.scales(1234, 0, m, list(sizes[1:-1]), p)
    return net, weights, biases, x, y, masks


@pytest.mark.parametrize("hidden,output,cost", [
    ("sigmoid", "softmax", "cross_entropy"), ("tanh", "sigmoid", "cross_entropy"), ("relu", "identity", "quadratic"),
    ("tanh", "softmax", "cross_entropy"),
])
def test_dropout_gradient_equals_finite_differences_with_a_fixed_mask(hidden, output, cost):
    net, weights, biases, x, y, masks = _problem(hidden, output, cost)
    act, objective = hidden_activation(hidden), Objective(cost, output)
    assert any((m == 0).any() for m in masks) and any((m > 1).any() for m in masks)  # some units dropped, some scaled

    def c(ws, bs):
        z, a, _, _ = feedforward_dropout(ws, bs, act, objective.output, x, masks)
        return float(objective.value(z, a, y))

    value, gw, gb = backprop_dropout(weights, biases, act, objective, x, y, masks)
    assert float(value) == pytest.approx(c(weights, biases), rel=1e-14)
    h, worst, largest = 1e-6, 0.0, 0.0
    for group, grads in ((weights, gw), (biases, gb)):
        for k, (param, grad) in enumerate(zip(group, grads)):
            fd = np.zeros_like(param)
            for i in np.ndindex(param.shape):
                old = param[i]
                param[i] = old + h
                up = c(weights, biases)
                param[i] = old - h
                down = c(weights, biases)
                param[i] = old
                fd[i] = (up - down) / (2 * h)
            worst = max(worst, float(np.max(np.abs(fd - grad))))
            largest = max(largest, float(np.max(np.abs(grad))))
    assert worst <= 1e-7 * max(largest, 1.0), (worst, largest)


def test_no_dropout_is_the_plain_network():
    net, weights, biases, x, y, _ = _problem("tanh", "softmax", "cross_entropy")
    ones = [np.ones((x.shape[0], n)) for n in net.sizes[1:-1]]
    _, gw, gb = backprop_dropout(weights, biases, net.hidden, net.objective, x, y, ones)
    _, want_w, want_b = backprop_generic(weights, biases, net.hidden, net.objective, x, y)
    for g, w in zip(gw + gb, list(want_w) + list(want_b)):
        np.testing.assert_array_equal(g, w)


def test_masks_are_inverted_dropout_and_keyed():
    p, widths = 0.3, [400, 300]
    a = masks_mod.scales(7, 3, 500, widths, p)
    assert [s.shape for s in a] == [(500, 400), (500, 300)]
    for s in a:
        assert set(np.unique(s)) == {0.0, 1 / (1 - p)}
        assert abs((s == 0).mean() - p) < 0.01 and abs(s.mean() - 1.0) < 0.02  # E[r] = 1
    again = masks_mod.scales(7, 3, 500, widths, p)
    assert all(np.array_equal(s, t) for s, t in zip(a, again))
    other = masks_mod.scales(7, 4, 500, widths, p)
    assert not np.array_equal(a[0], other[0])
    assert masks_mod.epoch_key(None, 5, 2) == masks_mod.epoch_key(None, 5, 2) != masks_mod.epoch_key(None, 5, 3)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.2", True, float("nan")])
def test_bad_rates_are_named(bad):
    with pytest.raises(ConfigError, match=r"dropout .*\[0, 1\)"):
        masks_mod.check_rate(bad)
