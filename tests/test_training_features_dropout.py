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


# -- dropout in fit ------------------------------------------------------------------------------------

def _fit_data(m=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 5))
    return x, rng.integers(0, 3, m)


ENGINES = [pytest.param(("numpy", None), id="numpy"), pytest.param(("torch", "cpu"), id="generic-torch"),
           pytest.param(("cupy-double", "cuda:0"), id="cupy-double", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("spec", ENGINES)
def test_fit_with_dropout_equals_torch_autograd_with_the_same_masks(request, spec):
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    from conftest import make_backend_kwargs
    from torch_reference import host, max_rel_diff, torch_train

    if spec[0] == "cupy-double":
        request.getfixturevalue("cupy_double")
    x, labels = _fit_data()
    p, batch, epochs, seed = 0.3, 16, 3, 5
    net = bpgpu.MLP([5, 8, 7, 3], hidden="tanh", dtype="float64", seed=1, **make_backend_kwargs(spec))
    start = bpgpu.MLP([5, 8, 7, 3], hidden="tanh", dtype="float64", seed=1)
    net.fit(x, labels, epochs=epochs, batch_size=batch, optimizer=bpgpu.Adam(0.01), shuffle=False, seed=seed,
            dropout=p, progress=False)
    n_batches = -(-len(x) // batch)

    def masks(step, rows):
        key = masks_mod.epoch_key(None, seed, step // n_batches)
        return masks_mod.scales(key, step % n_batches, rows, [8, 7], p)

    tw, tb, _ = torch_train(torch, start, x, np.eye(3)[labels], batch, epochs, lambda g: torch.optim.Adam(g, lr=0.01),
                            masks=masks)
    diff = max_rel_diff(host(net.weights) + host(net.biases), tw + tb)
    assert diff < 1e-12, diff


def test_one_seed_reproduces_a_run_and_inference_never_drops(tmp_path):
    from torch_reference import host

    x, labels = _fit_data()

    def run(seed, **kw):
        net = bpgpu.MLP([5, 8, 3], hidden="relu", dtype="float64", seed=0)
        h = net.fit(x, labels, epochs=3, batch_size=8, seed=seed, dropout=0.5, progress=False, **kw)
        return net, h

    a, ha = run(3)
    b, hb = run(3)
    c, _ = run(4)
    assert ha.cost == hb.cost and all(np.array_equal(u, v) for u, v in zip(host(a.weights), host(b.weights)))
    assert not np.array_equal(host(a.weights)[0], host(c.weights)[0])
    plain = bpgpu.MLP([5, 8, 3], hidden="relu", dtype="float64", seed=0)
    plain.set_parameters(host(a.weights), host(a.biases))
    np.testing.assert_array_equal(host([a.predict_proba(x)])[0], host([a.predict_proba(x)])[0])
    np.testing.assert_array_equal(host([a.predict_proba(x)])[0], host([plain.predict_proba(x)])[0])  # no masks, no rescale
    assert a.evaluate(x, labels)["cost"] == plain.evaluate(x, labels)["cost"]
    # a resumed run draws the same masks as an uninterrupted one
    first, _ = run(3, checkpoint=tmp_path / "ck-{epoch}.npz")
    resumed = bpgpu.MLP([5, 8, 3], hidden="relu", dtype="float64", seed=0)
    resumed.fit(x, labels, epochs=3, batch_size=8, dropout=0.5, progress=False, resume=tmp_path / "ck-1.npz")
    assert all(np.array_equal(u, v) for u, v in zip(host(resumed.weights), host(a.weights)))


def test_dropout_changes_training_and_zero_is_off():
    from torch_reference import host

    x, labels = _fit_data()
    runs = []
    for p in (0.0, None, 0.4):
        net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
        kw = {} if p is None else {"dropout": p}
        net.fit(x, labels, epochs=2, batch_size=8, seed=1, progress=False, **kw)
        runs.append(host(net.weights))
    assert all(np.array_equal(u, v) for u, v in zip(runs[0], runs[1]))
    assert not np.array_equal(runs[0][0], runs[2][0])


@pytest.mark.gpu
def test_an_engine_without_dropout_hands_it_to_the_generic_engine(cupy_double):
    from bpgpu.engines import StepConfig, make_engine

    net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0, device="cuda:0")
    assert make_engine(net, bpgpu.SGD(0.1), StepConfig(8, dropout=0.2)).name == "generic"
    assert make_engine(net.copy(), bpgpu.SGD(0.1), StepConfig(8)).name == "cupy"
    cpu = bpgpu.MLP([5, 8, 3], seed=0)
    assert make_engine(cpu, bpgpu.SGD(0.1), StepConfig(8, dropout=0.2, clip_norm=1.0)).name == "numpy"


def test_numpy_engine_dropout_equals_the_generic_reference():
    from bpgpu.engines import StepConfig, make_engine
    from torch_reference import host, max_rel_diff

    x, labels = _fit_data()
    y = np.eye(3)[labels]
    results = []
    for generic in (False, True):
        net = bpgpu.MLP([5, 9, 7, 3], hidden="sigmoid", dtype="float64", seed=3)
        engine = make_engine(net, bpgpu.SGD(0.5, momentum=0.9), StepConfig(13, dropout=0.35), generic=generic)
        engine.dropout_key = 99
        engine.start_epoch()
        for b in range(3):
            engine.step(x, y, np.arange(b * 13, b * 13 + 13))
        results.append((engine.name, host(net.weights) + host(net.biases)))
    (n1, p1), (n2, p2) = results
    assert (n1, n2) == ("numpy", "generic")
    assert max_rel_diff(p1, p2) < 1e-14


@pytest.mark.parametrize("bad", [1.0, -0.2, 2, "half"])
def test_fit_names_a_bad_dropout(bad):
    x, labels = _fit_data()
    with pytest.raises(ConfigError, match="dropout"):
        bpgpu.MLP([5, 4, 3], seed=0).fit(x, labels, epochs=1, dropout=bad, progress=False)


def test_dropout_without_hidden_layers_is_refused_rather_than_ignored():
    x, labels = _fit_data()
    with pytest.raises(ConfigError, match="dropout applies to hidden layers"):
        bpgpu.MLP([5, 3], seed=0).fit(x, labels, epochs=1, dropout=0.2, progress=False)


def test_mixed_precision_refuses_dropout_rather_than_ignoring_it():
    x, labels = _fit_data()
    net = bpgpu.MLP([5, 4, 3], seed=0, precision="mixed16")
    with pytest.raises(ConfigError, match="dropout is not available with precision='mixed16'"):
        net.fit(x, labels, epochs=1, dropout=0.2, progress=False)
