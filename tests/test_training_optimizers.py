"""Optimizers against torch.optim on identical gradients (float64), schedules, and bad settings."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu import schedules, to_host
from bpgpu.errors import ConfigError
from bpgpu.training.optimizers import from_config

SHAPES_W = [(5, 4), (3, 5)]
SHAPES_B = [(5,), (3,)]


def _run_bpgpu(opt, w0, b0, grads_w, grads_b, epochs_of_step=None):
    weights, biases = [np.array(w) for w in w0], [np.array(b) for b in b0]
    for k, (gw, gb) in enumerate(zip(grads_w, grads_b)):
        if epochs_of_step is not None:
            opt.set_epoch(epochs_of_step[k])
        weights, biases = opt.step(weights, biases, gw, gb)
    return weights, biases


def _run_torch(torch, make, w0, b0, grads_w, grads_b, weight_decay, sched=None, epochs_of_step=None):
    tw = [torch.tensor(w, requires_grad=True) for w in w0]
    tb = [torch.tensor(b, requires_grad=True) for b in b0]
    opt = make([{"params": tw, "weight_decay": weight_decay}, {"params": tb, "weight_decay": 0.0}])
    for k, (gw, gb) in enumerate(zip(grads_w, grads_b)):
        if sched is not None:
            for group in opt.param_groups:
                group["lr"] = sched(epochs_of_step[k])
        for p, g in zip(tw + tb, list(gw) + list(gb)):
            p.grad = torch.tensor(g)
        opt.step()
    return [t.detach().numpy() for t in tw], [t.detach().numpy() for t in tb]


def _problem(steps=7, seed=0):
    rng = np.random.default_rng(seed)
    w0 = [rng.normal(size=s) for s in SHAPES_W]
    b0 = [rng.normal(size=s) for s in SHAPES_B]
    gw = [[rng.normal(size=s) for s in SHAPES_W] for _ in range(steps)]
    gb = [[rng.normal(size=s) for s in SHAPES_B] for _ in range(steps)]
    return w0, b0, gw, gb


SGD_CASES = [
    dict(momentum=0.0, nesterov=False, weight_decay=0.0),
    dict(momentum=0.9, nesterov=False, weight_decay=0.0),
    dict(momentum=0.9, nesterov=True, weight_decay=0.0),
    dict(momentum=0.5, nesterov=False, weight_decay=0.01),
    dict(momentum=0.0, nesterov=False, weight_decay=0.1),
]


@pytest.mark.parametrize("case", SGD_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_torch(case):
    torch = pytest.importorskip("torch", reason="torch is the optimizer oracle: pip install torch==2.13.0")
    w0, b0, gw, gb = _problem()
    got_w, got_b = _run_bpgpu(bpgpu.SGD(0.05, **case), w0, b0, gw, gb)
    want_w, want_b = _run_torch(
        torch, lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=case["momentum"], nesterov=case["nesterov"]),
        w0, b0, gw, gb, case["weight_decay"],
    )
    for g, w in zip(got_w + got_b, want_w + want_b):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_adam_matches_torch(weight_decay, betas):
    torch = pytest.importorskip("torch", reason="torch is the optimizer oracle: pip install torch==2.13.0")
    w0, b0, gw, gb = _problem(steps=9)
    got_w, got_b = _run_bpgpu(bpgpu.Adam(0.01, betas=betas, eps=1e-8, weight_decay=weight_decay), w0, b0, gw, gb)
    want_w, want_b = _run_torch(
        torch, lambda groups: torch.optim.Adam(groups, lr=0.01, betas=betas, eps=1e-8), w0, b0, gw, gb, weight_decay,
    )
    for g, w in zip(got_w + got_b, want_w + want_b):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_sgd_with_a_step_schedule_matches_torch_with_the_same_lr_per_step():
    torch = pytest.importorskip("torch", reason="torch is the optimizer oracle: pip install torch==2.13.0")
    w0, b0, gw, gb = _problem(steps=6)
    epochs = [0, 0, 1, 1, 2, 2]
    sched = schedules.step(0.1, every=1, gamma=0.5)
    got_w, got_b = _run_bpgpu(bpgpu.SGD(schedule=sched, momentum=0.9), w0, b0, gw, gb, epochs)
    want_w, want_b = _run_torch(
        torch, lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9), w0, b0, gw, gb, 0.0, sched, epochs,
    )
    for g, w in zip(got_w + got_b, want_w + want_b):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_weight_decay_is_nielsens_l2_on_weights_only():
    # Plain SGD with weight_decay = λ/n: w → (1 − ηλ/n) w − η g, b → b − η g.
    w, b = np.full((2, 2), 2.0), np.full(2, 2.0)
    g_w, g_b = np.full((2, 2), 0.5), np.full(2, 0.5)
    want_w, want_b = (1 - 0.1 * 0.3) * w - 0.1 * g_w, b - 0.1 * g_b
    new_w, new_b = bpgpu.SGD(0.1, weight_decay=0.3).step([w], [b], [g_w], [g_b])
    np.testing.assert_allclose(new_w[0], want_w)
    np.testing.assert_allclose(new_b[0], want_b)


def test_state_lives_on_the_parameters_device_and_updates_rebind(backend_kwargs):
    net = bpgpu.MLP([3, 4, 2], dtype="float32", seed=0, **backend_kwargs)
    x = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 1, 1, 0, 1, 0])
    for opt in (bpgpu.SGD(0.1, momentum=0.9, inplace=False), bpgpu.Adam(0.01, inplace=False)):
        _, gw, gb = net.backprop(x, y)
        new_w, new_b = opt.step(net.weights, net.biases, gw, gb)
        for name, values in opt.state.items():
            for s, p in zip(values, net.weights + net.biases):
                assert str(s.device) == str(p.device) and s.dtype == p.dtype, name
        for p, q in zip(new_w + new_b, net.weights + net.biases):
            assert str(p.device) == str(q.device) and p.dtype == q.dtype
            assert not np.array_equal(to_host(p), to_host(q))


def test_optimizer_config_round_trip():
    for opt in (bpgpu.SGD(schedules.step(0.1, 5, 0.5), momentum=0.8, nesterov=True, weight_decay=1e-3),
                bpgpu.Adam(schedule=schedules.exponential(1e-3, 0.9), betas=(0.8, 0.99), eps=1e-7)):
        again = from_config(opt.config())
        assert type(again) is type(opt) and again.config() == opt.config()
        assert [again.set_epoch(e) for e in range(7)] == [opt.set_epoch(e) for e in range(7)]


def test_schedules():
    assert [schedules.constant(0.5)(e) for e in (0, 10)] == [0.5, 0.5]
    assert [schedules.step(1.0, every=2, gamma=0.5)(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    np.testing.assert_allclose([schedules.exponential(1.0, 0.9)(e) for e in range(3)], [1.0, 0.9, 0.81])
    opt = bpgpu.SGD(lambda e: 1.0 / (1 + e))
    assert opt.set_epoch(3) == 0.25 and opt.lr == 0.25
    assert schedules.from_config(schedules.step(0.3, 4, 0.7).config())(8) == pytest.approx(0.3 * 0.49)


@pytest.mark.parametrize(
    "make",
    [
        lambda: bpgpu.SGD(),
        lambda: bpgpu.SGD(0.1, schedule=schedules.constant(0.1)),
        lambda: bpgpu.SGD(-1.0),
        lambda: bpgpu.SGD(0.1, momentum=1.5),
        lambda: bpgpu.SGD(0.1, nesterov=True),
        lambda: bpgpu.SGD(0.1, weight_decay=-1),
        lambda: bpgpu.Adam(betas=(1.0, 0.9)),
        lambda: bpgpu.Adam(eps=0.0),
        lambda: schedules.step(0.1, every=0),
        lambda: bpgpu.SGD(lambda e: float("nan")),
    ],
)
def test_bad_optimizer_settings_raise_config_error(make):
    with pytest.raises(ConfigError):
        make()


INPLACE_CASES = [
    lambda inplace: bpgpu.SGD(0.1, inplace=inplace),
    lambda inplace: bpgpu.SGD(0.1, momentum=0.9, weight_decay=1e-2, inplace=inplace),
    lambda inplace: bpgpu.SGD(0.1, momentum=0.9, nesterov=True, inplace=inplace),
    lambda inplace: bpgpu.Adam(0.01, weight_decay=1e-3, inplace=inplace),
]


@pytest.mark.parametrize("make", INPLACE_CASES, ids=["sgd", "momentum-wd", "nesterov", "adam"])
def test_in_place_updates_equal_the_generic_path_bit_for_bit(backend_kwargs, make):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    nets = [bpgpu.MLP([4, 5, 3], dtype="float32", seed=0, **backend_kwargs) for _ in range(2)]
    opts = [make(True), make(False)]
    for _ in range(4):
        for net, opt in zip(nets, opts):
            _, gw, gb = net.backprop(x, y)
            before = [id(a) for a in net.weights]
            new_w, new_b = opt.step(net.weights, net.biases, gw, gb)
            assert ([id(a) for a in new_w] == before) == opt.inplace
            net.weights[:], net.biases[:] = new_w, new_b
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    for name in opts[0].state:
        for a, b in zip(opts[0].state[name], opts[1].state[name]):
            np.testing.assert_array_equal(to_host(a), to_host(b))


def test_fit_does_not_write_into_the_callers_arrays():
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))]
    b = [np.zeros(4), np.zeros(2)]
    kept = [a.copy() for a in w + b]
    net = bpgpu.MLP([3, 4, 2], dtype="float64")
    net.set_parameters(w, b)  # NumPy float64 in, float64 network: may alias the caller's arrays
    net.fit(rng.normal(size=(10, 3)), rng.integers(0, 2, 10), epochs=2, batch_size=5, progress=False)
    for a, k in zip(w + b, kept):
        np.testing.assert_array_equal(a, k)


def test_inplace_setting_is_checked():
    with pytest.raises(ConfigError, match="inplace"):
        bpgpu.SGD(0.1, inplace="yes")
