"""AdamW and gradient clipping against torch: ``torch.optim.AdamW`` on identical gradients, and whole
``fit`` runs on every engine (NumPy, the generic engine on torch / array-api-strict, the CuPy engine on
its test double) against a torch autograd loop with ``clip_grad_norm_`` / ``clip_grad_value_``."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu import schedules
from bpgpu.errors import ConfigError
from bpgpu.training.optimizers import from_config
from torch_reference import host, max_rel_diff, torch_train

torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")

ENGINES = [pytest.param(("numpy", None), id="numpy"), pytest.param(("torch", "cpu"), id="generic-torch"),
           pytest.param(("array_api_strict", "CPU_DEVICE"), id="generic-strict"),
           pytest.param(("cupy-double", "cuda:0"), id="cupy-double", marks=pytest.mark.gpu)]


@pytest.fixture(params=ENGINES)
def engine_kwargs(request):
    from conftest import make_backend_kwargs

    if request.param[0] == "cupy-double":
        request.getfixturevalue("cupy_double")
    return make_backend_kwargs(request.param)


def _data(m=48, n_in=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, n_in)) * 2.0
    labels = rng.integers(0, k, m)
    return x, labels, np.eye(k)[labels]


# -- AdamW: the update rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("weight_decay,betas", [(0.01, (0.9, 0.999)), (0.3, (0.5, 0.9)), (0.0, (0.9, 0.999))])
def test_adamw_step_equals_torch_adamw(inplace, weight_decay, betas):
    rng = np.random.default_rng(1)
    shapes = [(5, 4), (3, 5)], [(5,), (3,)]
    w0 = [rng.normal(size=s) for s in shapes[0]]
    b0 = [rng.normal(size=s) for s in shapes[1]]
    grads = [([rng.normal(size=s) for s in shapes[0]], [rng.normal(size=s) for s in shapes[1]]) for _ in range(12)]
    opt = bpgpu.AdamW(schedule=schedules.step(0.02, 4, 0.5), betas=betas, weight_decay=weight_decay, inplace=inplace)
    weights, biases = [w.copy() for w in w0], [b.copy() for b in b0]
    tw = [torch.tensor(w, requires_grad=True) for w in w0]
    tb = [torch.tensor(b, requires_grad=True) for b in b0]
    topt = torch.optim.AdamW([{"params": tw, "weight_decay": weight_decay}, {"params": tb, "weight_decay": 0.0}],
                             lr=0.02, betas=betas, eps=1e-8)
    for k, (gw, gb) in enumerate(grads):
        epoch = k // 3
        opt.set_epoch(epoch)
        for group in topt.param_groups:
            group["lr"] = opt.lr
        weights, biases = opt.step(weights, biases, gw, gb)
        for p, g in zip(tw + tb, gw + gb):
            p.grad = torch.tensor(g)
        topt.step()
    diff = max_rel_diff(weights + biases, [t.detach().numpy() for t in tw + tb])
    assert diff < 1e-14, diff


def test_adamw_is_not_coupled_l2():
    """Same λ: Adam's L2 goes through the moments, AdamW's shrinks W by (1 − ηλ) outside them."""
    w, b = [np.full((2, 2), 3.0)], [np.zeros(2)]
    zero = [np.zeros((2, 2))], [np.zeros(2)]
    new_w, _ = bpgpu.AdamW(0.1, weight_decay=0.5).step(w, b, *zero)
    np.testing.assert_allclose(new_w[0], 3.0 * (1 - 0.1 * 0.5), rtol=1e-15)   # the decay alone: g = 0
    coupled, _ = bpgpu.Adam(0.1, weight_decay=0.5).step([np.full((2, 2), 3.0)], [np.zeros(2)], *zero)
    assert np.all(coupled[0] < 3.0 - 0.09)  # Adam's normalised step of the L2 gradient: ≈ η


def test_adamw_config_round_trip_and_name():
    opt = bpgpu.AdamW(schedule=schedules.warmup_cosine(1e-3, 20, 2), betas=(0.8, 0.99), eps=1e-7, weight_decay=0.05)
    again = from_config(opt.config())
    assert type(again) is bpgpu.AdamW and again.config() == opt.config()
    assert bpgpu.training.optimizers.make("adamw").weight_decay == 0.01
    with pytest.raises(ConfigError, match="weight_decay"):
        bpgpu.AdamW(weight_decay=-1.0)


# -- whole runs: every engine against torch ------------------------------------------------------------

def _fit_vs_torch(engine_kwargs, make_ours, make_theirs, decay=0.0, epochs=3, batch=16, clip_norm=None,
                  clip_value=None, hidden="tanh"):
    x, labels, rows = _data()
    net = bpgpu.MLP([5, 8, 6, 3], hidden=hidden, dtype="float64", seed=2, **engine_kwargs)
    start = bpgpu.MLP([5, 8, 6, 3], hidden=hidden, dtype="float64", seed=2)
    clips = {k: v for k, v in (("clip_norm", clip_norm), ("clip_value", clip_value)) if v is not None}
    h = net.fit(x, labels, epochs=epochs, batch_size=batch, optimizer=make_ours(), shuffle=False, progress=False, **clips)
    tw, tb, norms = torch_train(torch, start, x, rows, batch, epochs, make_theirs, clip_norm=clip_norm,
                                clip_value=clip_value, weights_decay=decay)
    return max_rel_diff(host(net.weights) + host(net.biases), tw + tb), h, norms


def test_adamw_fit_equals_torch_on_every_engine(engine_kwargs):
    diff, _, _ = _fit_vs_torch(engine_kwargs, lambda: bpgpu.AdamW(0.01, weight_decay=0.1),
                               lambda g: torch.optim.AdamW(g, lr=0.01), decay=0.1)
    assert diff < 1e-12, diff


OPTIMIZERS = {
    "sgd-momentum": (lambda: bpgpu.SGD(0.2, momentum=0.9), lambda g: torch.optim.SGD(g, lr=0.2, momentum=0.9), 0.0),
    "adam-l2": (lambda: bpgpu.Adam(0.05, weight_decay=0.01), lambda g: torch.optim.Adam(g, lr=0.05), 0.01),
    "adamw": (lambda: bpgpu.AdamW(0.05, weight_decay=0.1), lambda g: torch.optim.AdamW(g, lr=0.05), 0.1),
}
CLIPS = {"norm": {"clip_norm": 0.3}, "value": {"clip_value": 0.02}, "both": {"clip_norm": 0.5, "clip_value": 0.05}}
# every optimizer x clip on the NumPy engine (its own clipping code); two on each engine that hands over
CASES = [(e, o, c) for e in ENGINES[:1] for o in OPTIMIZERS for c in CLIPS] + [
    (e, o, c) for e in ENGINES[1:] for o, c in (("sgd-momentum", "norm"), ("adamw", "both"))]


@pytest.mark.parametrize("engine_kwargs,opt,clip", [
    pytest.param(e.values[0], o, c, id=f"{e.id}-{o}-{c}", marks=e.marks) for e, o, c in CASES], indirect=["engine_kwargs"])
def test_clipping_equals_torch_on_every_engine(engine_kwargs, opt, clip):
    make_ours, make_theirs, decay = OPTIMIZERS[opt]
    clip = CLIPS[clip]
    diff, h, info = _fit_vs_torch(engine_kwargs, make_ours, make_theirs, decay, **clip)
    assert diff < 1e-12, diff
    if "clip_norm" in clip:  # the clips did bite
        assert max(info["norms"]) > clip["clip_norm"]
    if "clip_value" in clip:
        assert max(info["max_abs"]) > clip["clip_value"]


def test_clipping_changes_the_run_and_history_keeps_the_raw_norms():
    x, labels, _ = _data()
    runs = {}
    for name, kw in (("none", {}), ("norm", {"clip_norm": 0.1})):
        net = bpgpu.MLP([5, 8, 6, 3], hidden="tanh", dtype="float64", seed=2)
        runs[name] = (net.fit(x, labels, epochs=2, batch_size=len(x), optimizer=bpgpu.SGD(0.5), shuffle=False,
                              progress=False, **kw), host(net.weights))
    (h0, w0), (h1, w1) = runs["none"], runs["norm"]
    assert h0.grad_norms[0] == h1.grad_norms[0]  # the first step's norms, recorded before clipping…
    assert max(h1.grad_norms[0]) > 0.1           # …which the clip cut down…
    assert h0.grad_norms[1] != h1.grad_norms[1] and max_rel_diff(w1, w0) > 1e-3  # …so the runs part


@pytest.mark.parametrize("kw,match", [
    ({"clip_norm": 0.0}, "clip_norm"), ({"clip_norm": -1.0}, "clip_norm"), ({"clip_value": 0}, "clip_value"),
    ({"clip_norm": float("nan")}, "clip_norm"), ({"clip_value": float("inf")}, "clip_value"),
])
def test_bad_clip_settings_are_named(kw, match):
    x, labels, _ = _data()
    net = bpgpu.MLP([5, 4, 3], dtype="float64", seed=0)
    with pytest.raises(ConfigError, match=match):
        net.fit(x, labels, epochs=1, progress=False, **kw)


def test_norm_clip_is_the_same_without_recorded_norms():
    x, labels, _ = _data()
    runs = []
    for record in (True, False):
        net = bpgpu.MLP([5, 8, 6, 3], hidden="tanh", dtype="float64", seed=2)
        net.fit(x, labels, epochs=2, batch_size=16, optimizer=bpgpu.SGD(0.5), shuffle=False, progress=False,
                clip_norm=0.1, record_grad_norms=record)
        runs.append(host(net.weights) + host(net.biases))
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
