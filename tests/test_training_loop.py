"""The fit loop: history, cross-backend reproducibility, checkpoints, early stopping, divergence,
gradient norms and the data-parallel hook."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bpgpu
from bpgpu import to_host
from bpgpu.errors import ConfigError, DivergenceError
from bpgpu.training.history import COLUMNS, History
from helpers import ThreadComm, thread_ranks


def _blobs(n=120, seed=0):
    x, y = bpgpu.datasets.make_classification(n, 5, 3, seed=seed, dtype="float64")
    return x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4:], y[n * 3 // 4:]


def _host(net):
    return [np.array(to_host(a)) for a in net.weights + net.biases]


def test_fit_returns_a_documented_history_and_learns():
    x, y, xv, yv = _blobs()
    net = bpgpu.MLP([5, 8, 3], hidden="tanh", dtype="float64", seed=0)
    history = net.fit(x, y, epochs=6, batch_size=16, optimizer=bpgpu.SGD(0.1, momentum=0.9),
                      validation_data=(xv, yv), seed=0, progress=False)
    assert isinstance(history, History) and len(history) == 6
    data = history.to_dict()
    assert set(COLUMNS) <= set(data) and {"best_epoch", "stopped_epoch"} <= set(data)
    assert all(len(data[c]) == 6 for c in COLUMNS)
    assert data["epoch"] == [1, 2, 3, 4, 5, 6] and data["lr"] == [0.1] * 6
    assert all(len(g) == 2 and all(v > 0 for v in g) for g in data["grad_norms"])
    assert history["cost"][-1] < history["cost"][0] and history.val_accuracy[-1] >= 0.8
    assert History.from_dict(json.loads(json.dumps(data))).to_dict() == data
    assert "6 epochs" in repr(history)


def test_grad_norms_are_the_mean_norm_of_the_weight_gradients():
    x, y, _, _ = _blobs()
    net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=1)
    _, grad_w, _ = net.backprop(x, y)
    want = [float(np.linalg.norm(to_host(g))) for g in grad_w]
    history = net.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, progress=False)
    np.testing.assert_allclose(history.grad_norms[0], want, rtol=1e-12)
    assert net.copy().fit(x, y, epochs=1, batch_size=10, progress=False, record_grad_norms=False).grad_norms == [[]]


@pytest.mark.parametrize("other", [pytest.param(("array_api_strict", "device1"), id="strict-device1"),
                                   pytest.param(("torch", "cpu"), id="torch-cpu"),
                                   pytest.param(("cupy", "cuda:0"), id="cupy", marks=pytest.mark.gpu)])
def test_one_seed_gives_the_same_history_on_numpy_and_another_backend(other):
    from conftest import make_backend_kwargs

    x, y, xv, yv = _blobs()
    runs = []
    for kwargs in ({"device": "cpu"}, make_backend_kwargs(other)):
        net = bpgpu.MLP([5, 8, 3], hidden="relu", dtype="float64", seed=3, **kwargs)
        h = net.fit(x, y, epochs=4, batch_size=16, optimizer=bpgpu.Adam(0.01), validation_data=(xv, yv),
                    seed=7, progress=False)
        runs.append((h, _host(net)))
    (h1, p1), (h2, p2) = runs
    for col in ("cost", "val_cost"):
        np.testing.assert_allclose(h1[col], h2[col], rtol=1e-10)
    np.testing.assert_allclose(np.array(h1.grad_norms), np.array(h2.grad_norms), rtol=1e-10)
    assert h1.val_accuracy == h2.val_accuracy
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make_opt", [lambda: bpgpu.SGD(bpgpu.schedules.step(0.1, 2, 0.5), momentum=0.9),
                                      lambda: bpgpu.Adam(0.01, weight_decay=1e-3)], ids=["sgd", "adam"])
def test_resumed_run_ends_with_the_same_weights(tmp_path, make_opt):
    x, y, xv, yv = _blobs()
    kw = dict(batch_size=16, validation_data=(xv, yv), progress=False)
    whole = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
    h_whole = whole.fit(x, y, epochs=5, optimizer=make_opt(), seed=4, **kw)

    first = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
    first.fit(x, y, epochs=3, optimizer=make_opt(), seed=4, checkpoint=tmp_path / "ck-{epoch}.npz", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-1.npz", "ck-2.npz", "ck-3.npz"]
    resumed = bpgpu.MLP([5, 8, 3], dtype="float64", seed=99)  # other initial weights: all come from the file
    h_resumed = resumed.fit(x, y, epochs=5, optimizer=None, resume=tmp_path / "ck-3.npz", **kw)
    for a, b in zip(_host(whole), _host(resumed)):
        np.testing.assert_array_equal(a, b)
    assert h_resumed.epoch == [1, 2, 3, 4, 5]
    assert h_resumed.cost == h_whole.cost and h_resumed.lr == h_whole.lr


def test_checkpoint_every_n_epochs_and_wrong_network_on_resume(tmp_path):
    x, y, _, _ = _blobs()
    net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
    path = tmp_path / "ck.npz"
    net.fit(x, y, epochs=5, batch_size=30, checkpoint=path, checkpoint_every=2, progress=False)
    from bpgpu.io import checkpoint

    assert checkpoint.load(path).epoch == 5  # the last epoch is always written
    with pytest.raises(ConfigError, match="another network"):
        bpgpu.MLP([5, 9, 3], dtype="float64").fit(x, y, epochs=6, batch_size=30, resume=path, progress=False)
    with pytest.raises(ConfigError, match="optimizer"):
        bpgpu.MLP([5, 8, 3], dtype="float64").fit(x, y, epochs=6, batch_size=30, resume=path, optimizer=bpgpu.Adam(),
                                                  progress=False)


def test_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)  # noise: validation cost rises quickly
    xv, yv = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    net = bpgpu.MLP([5, 32, 3], hidden="relu", dtype="float64", seed=0)
    history = net.fit(x, y, epochs=200, batch_size=8, optimizer=bpgpu.SGD(0.2, momentum=0.9),
                      validation_data=(xv, yv), early_stopping=3, seed=0, progress=False)
    assert history.stopped_epoch is not None and history.stopped_epoch == len(history) < 200
    best = history.best_epoch
    assert history.stopped_epoch == best + 4
    assert history.val_cost[best - 1] == min(history.val_cost)
    assert net.evaluate(xv, yv)["cost"] == pytest.approx(history.val_cost[best - 1], rel=1e-12)


def test_early_stopping_settings():
    x, y, _, _ = _blobs()
    net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
    with pytest.raises(ConfigError, match="validation_data"):
        net.fit(x, y, epochs=2, early_stopping=bpgpu.EarlyStopping(monitor="val_cost"), progress=False)
    with pytest.raises(ConfigError):
        bpgpu.EarlyStopping(monitor="accuracy")
    h = net.fit(x, y, epochs=3, early_stopping=bpgpu.EarlyStopping(patience=10), progress=False)  # monitors cost
    assert h.best_epoch is not None and h.stopped_epoch is None


def test_divergence_names_epoch_and_batch_and_keeps_the_weights_before_the_bad_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)) * 100
    y = rng.normal(size=(64, 1)) * 100
    net = bpgpu.MLP([4, 16, 1], hidden="identity", output="identity", dtype="float32", seed=0)
    with pytest.raises(DivergenceError, match=r"epoch \d+, batch \d+ of 8") as info:
        net.fit(x, y, epochs=50, batch_size=8, optimizer=bpgpu.SGD(0.5), seed=0, progress=False)
    assert info.value.epoch >= 1 and 1 <= info.value.batch <= 8
    assert all(np.all(np.isfinite(a)) for a in _host(net))


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(checkpoint_every=0), dict(validation_data=[1])])
def test_bad_fit_arguments(bad):
    x, y, _, _ = _blobs()
    args = dict(epochs=1, batch_size=8, progress=False) | bad
    with pytest.raises(ConfigError):
        bpgpu.MLP([5, 3], dtype="float64").fit(x, y, **args)


def test_progress_bar_runs_and_reports(capsys):
    x, y, xv, yv = _blobs()
    bpgpu.MLP([5, 8, 3], dtype="float64", seed=0).fit(x, y, epochs=2, batch_size=8, validation_data=(xv, yv))
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "cost" in err and "samples/s" in err


def test_fit_on_device_arrays_of_array_api_strict():
    strict = pytest.importorskip("array_api_strict")
    dev = strict.Device("device2")
    x, y, _, _ = _blobs()
    net = bpgpu.MLP([5, 8, 3], dtype="float32", seed=0, xp=strict, device=dev)
    xs = strict.asarray(x, dtype=strict.float32, device=dev)
    ys = strict.asarray(y, device=dev)
    history = net.fit(xs, ys, epochs=2, batch_size=16, progress=False)
    assert len(history) == 2 and net.weights[0].device == dev


# -- data parallelism through the Communicator interface, with threads as ranks ------------------------

@pytest.mark.parametrize("size", [2, 3])
def test_data_parallel_training_equals_single_process(size, tmp_path):
    x, y, _, _ = _blobs(n=124)  # 93 rows, batch 20: uneven shards and a short last batch
    single = bpgpu.MLP([5, 8, 3], dtype="float64", seed=0)
    single.fit(x, y, epochs=3, batch_size=20, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=5, progress=False)

    shared = thread_ranks(size)

    def rank_run(rank):
        net = bpgpu.MLP([5, 8, 3], dtype="float64", seed=rank)  # rank 0's weights are broadcast
        ck = tmp_path / f"rank{rank}.npz"
        history = net.fit(x, y, epochs=3, batch_size=20, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=5,
                          progress=False, comm=ThreadComm(rank, shared), checkpoint=ck)
        return _host(net), history.cost, ck.exists()

    with ThreadPoolExecutor(size) as pool:
        results = list(pool.map(rank_run, range(size)))
    for params, cost, wrote in results:
        for a, b in zip(params, _host(single)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert [r[2] for r in results] == [True] + [False] * (size - 1)  # only rank 0 writes checkpoints
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12)


def test_predict_and_evaluate_per_output_kind():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4))
    multi = bpgpu.MLP([4, 3], output="sigmoid", dtype="float64", seed=0)  # Nielsen: argmax over sigmoid units
    proba = to_host(multi.predict_proba(x))
    np.testing.assert_array_equal(to_host(multi.predict(x)), proba.argmax(axis=1))
    onehot = np.eye(3)[proba.argmax(axis=1)]
    assert multi.evaluate(x, onehot)["accuracy"] == 1.0
    single = bpgpu.MLP([4, 1], dtype="float64", seed=0)
    labels = to_host(single.predict(x))
    np.testing.assert_array_equal(labels, (to_host(single.predict_proba(x))[:, 0] >= 0.5).astype(np.int64))
    assert single.evaluate(x, labels)["accuracy"] == 1.0 and single.evaluate(x, 1 - labels)["accuracy"] == 0.0
    reg = bpgpu.MLP([4, 2], output="identity", dtype="float64", seed=0)
    np.testing.assert_array_equal(to_host(reg.predict(x)), to_host(reg.forward(x)))
    result = reg.evaluate(x, np.zeros((9, 2)))
    assert result["accuracy"] is None and result["n"] == 9
    big = bpgpu.MLP([4, 3], dtype="float64", seed=0)  # batched evaluation = one pass
    np.testing.assert_allclose(big.evaluate(x, [0] * 9, batch_size=2)["cost"], big.cost(x, [0] * 9), rtol=1e-12)
    np.testing.assert_allclose(to_host(big.predict_proba(x, batch_size=4)), to_host(big.forward(x)), rtol=1e-13)


def test_data_moves_to_the_device_once_and_one_index_array_per_epoch(monkeypatch):
    import bpgpu.training.loop as loop
    import bpgpu.validation as validation

    calls = {"to_backend": 0, "features": 0}
    real_to_backend, real_features = loop.to_backend, validation.check_features

    def counting_to_backend(*args, **kwargs):
        calls["to_backend"] += 1
        return real_to_backend(*args, **kwargs)

    def counting_features(*args, **kwargs):
        calls["features"] += 1
        return real_features(*args, **kwargs)

    monkeypatch.setattr(loop, "to_backend", counting_to_backend)
    monkeypatch.setattr(validation, "check_features", counting_features)
    monkeypatch.setattr("bpgpu.network.check_features", counting_features)
    x, y, xv, yv = _blobs()
    bpgpu.MLP([5, 8, 3], dtype="float64", seed=0).fit(x, y, epochs=4, batch_size=8, validation_data=(xv, yv), progress=False)
    assert calls == {"to_backend": 4, "features": 2}  # 4 permutations; x and x_val validated and moved once
