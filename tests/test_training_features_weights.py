"""class_weight in fit: equal to the per-row sample_weight it maps to, to duplicated rows for integer
weights (one batch), to scikit-learn's 'balanced' weights, and to a torch loop with a weighted loss
on every engine; bad class weights name the argument."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ConfigError
from torch_reference import host, max_rel_diff, torch_train
from helpers import ThreadComm, thread_ranks


def _data(m=30, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 4))
    labels = np.concatenate([np.arange(k), rng.integers(0, k, m - k)])
    return x, labels


def _fit(x, y, **kw):
    net = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=1)
    kw = {"epochs": 2, "batch_size": 8, "optimizer": bpgpu.SGD(0.3, momentum=0.9), "shuffle": False, "progress": False, **kw}
    h = net.fit(x, y, **kw)
    return h, host(net.weights) + host(net.biases)


def test_class_weight_is_the_sample_weight_of_each_rows_class():
    x, labels = _data()
    cw = {0: 2.0, 1: 0.5, 2: 3.0}
    h1, p1 = _fit(x, labels, class_weight=cw)
    h2, p2 = _fit(x, labels, sample_weight=np.array([cw[c] for c in labels]))
    assert h1.cost == h2.cost
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
    h3, p3 = _fit(x, labels, class_weight={1: 0.5})  # classes not named weigh 1
    _, p4 = _fit(x, labels, sample_weight=np.where(labels == 1, 0.5, 1.0))
    assert all(np.array_equal(a, b) for a, b in zip(p3, p4))


def test_integer_class_weights_equal_duplicated_rows_on_one_batch():
    x, labels = _data()
    cw = {0: 2, 1: 1, 2: 3}
    repeats = np.array([cw[c] for c in labels])
    xd, yd = np.repeat(x, repeats, axis=0), np.repeat(labels, repeats)
    _, p1 = _fit(x, labels, class_weight=cw, epochs=1, batch_size=len(x))
    _, p2 = _fit(xd, yd, epochs=1, batch_size=len(xd))
    assert max_rel_diff(p1, p2) < 1e-14


def test_balanced_is_scikit_learns_rule_and_combines_with_sample_weight():
    sklearn_cw = pytest.importorskip("sklearn.utils.class_weight", reason="scikit-learn is the oracle")
    x, labels = _data(m=41)
    want = sklearn_cw.compute_class_weight("balanced", classes=np.arange(3), y=labels)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(x))
    h1, p1 = _fit(x, labels, class_weight="balanced", sample_weight=sw)
    _, p2 = _fit(x, labels, sample_weight=want[labels] * sw)
    assert max_rel_diff(p1, p2) < 1e-14


def test_single_sigmoid_unit_classes_are_0_and_1():
    x, labels = _data()
    y = (labels > 0).astype(np.int64)
    net1 = bpgpu.MLP([4, 5, 1], dtype="float64", seed=0)
    net2 = bpgpu.MLP([4, 5, 1], dtype="float64", seed=0)
    net1.fit(x, y, epochs=2, batch_size=8, class_weight={0: 4.0}, shuffle=False, progress=False)
    net2.fit(x, y, epochs=2, batch_size=8, sample_weight=np.where(y == 0, 4.0, 1.0), shuffle=False, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(host(net1.weights), host(net2.weights)))


@pytest.mark.parametrize("spec", [pytest.param(("numpy", None), id="numpy"), pytest.param(("torch", "cpu"), id="generic-torch")])
def test_class_weight_equals_a_torch_weighted_loss(spec):
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    from conftest import make_backend_kwargs

    x, labels = _data()
    cw = {0: 2.0, 1: 0.5, 2: 3.0}
    net = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=1, **make_backend_kwargs(spec))
    start = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=1)
    net.fit(x, labels, epochs=2, batch_size=8, optimizer=bpgpu.Adam(0.01), shuffle=False, progress=False, class_weight=cw)
    tw, tb, _ = torch_train(torch, start, x, np.eye(3)[labels], 8, 2, lambda g: torch.optim.Adam(g, lr=0.01),
                            row_weights=np.array([cw[c] for c in labels]))
    assert max_rel_diff(host(net.weights) + host(net.biases), tw + tb) < 1e-12


@pytest.mark.parametrize("cw,match", [
    ({3: 1.0}, r"class_weight names class 3.*0…2"), ({-1: 1.0}, "class -1"), ({"a": 1.0}, "class 'a'"),
    ({0: -1.0}, r"class_weight\[0\] must be a finite number ≥ 0"), ({0: float("nan")}, r"class_weight\[0\]"),
    ("balance", "'balanced'"), ([1.0, 2.0, 3.0], "dict"),
])
def test_bad_class_weights_are_named(cw, match):
    x, labels = _data()
    with pytest.raises(ConfigError, match=match):
        _fit(x, labels, class_weight=cw)


def test_all_zero_class_weights_are_refused():
    from bpgpu.errors import DataError

    x, labels = _data()
    with pytest.raises(DataError, match="every row weight 0"):
        _fit(x, labels, class_weight={0: 0.0, 1: 0.0, 2: 0.0})
    with pytest.raises(DataError, match="every row weight 0"):
        _fit(x, labels, class_weight={0: 0.0, 1: 0.0}, sample_weight=np.where(labels == 2, 0.0, 1.0))


def test_class_weight_needs_classes():
    rng = np.random.default_rng(0)
    net = bpgpu.MLP([4, 5, 2], output="identity", dtype="float64", seed=0)
    with pytest.raises(ConfigError, match="class_weight needs class labels"):
        net.fit(rng.normal(size=(10, 4)), rng.normal(size=(10, 2)), epochs=1, class_weight={0: 2.0}, progress=False)


# -- data parallelism: every feature together, three ranks = one process --------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["numpy-engine", "generic-engine"])
def test_three_ranks_equal_one_process_with_clipping_dropout_and_class_weight(dropout):
    from concurrent.futures import ThreadPoolExecutor

    x, labels = _data(m=26)
    kw = dict(epochs=2, batch_size=8, seed=4, progress=False, optimizer=None, class_weight={0: 2.0, 2: 0.5},
              clip_norm=0.2, clip_value=0.05, dropout=dropout)

    def net():
        return bpgpu.MLP([4, 6, 5, 3], hidden="tanh", dtype="float64", seed=1)

    single = net()
    single.fit(x, labels, **{**kw, "optimizer": bpgpu.AdamW(0.02)})
    size = 3
    shared = thread_ranks(size)

    def rank_run(rank):
        mine = net()
        mine.fit(x, labels, comm=ThreadComm(rank, shared), **{**kw, "optimizer": bpgpu.AdamW(0.02)})
        return host(mine.weights) + host(mine.biases)

    with ThreadPoolExecutor(size) as pool:
        results = list(pool.map(rank_run, range(size)))
    want = host(single.weights) + host(single.biases)
    for params in results:
        assert max_rel_diff(params, want) < 1e-13
