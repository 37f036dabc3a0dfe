"""Bad input to fit / evaluate / predict / optimizers, device out-of-memory during fit, and
divergence: each gets a clear bpgpu error and the network stays usable."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ConfigError, DataError, DeviceMismatchError, ShapeError
from helpers import counting

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 4))
LABELS = np.arange(20) % 3


def _net(**kw):
    return bpgpu.MLP(kw.pop("sizes", [4, 5, 3]), dtype="float64", seed=0, **kw)


def _params(net):
    w, b = net.get_parameters()
    return w + b


def _fit(net, x=X, y=LABELS, epochs=1, batch_size=4, **kw):
    return net.fit(x, y, epochs, batch_size, progress=False, seed=0, **kw)


BAD_FIT = [
    # (id, call, error class, words)
    ("features", lambda n: _fit(n, x=X[:, :3]), ShapeError, ["x", "3 features", "4"]),
    ("rows", lambda n: _fit(n, y=LABELS[:7]), ShapeError, ["20 examples", "y has 7"]),
    ("onehot-width", lambda n: _fit(n, y=np.eye(4)[LABELS]), ShapeError, ["y", "(20, 3)", "(20, 4)"]),
    ("label-range", lambda n: _fit(n, y=LABELS + 1), DataError, ["y", "0…2", "[1, 3]"]),
    ("label-negative", lambda n: _fit(n, y=LABELS - 2), DataError, ["y", "0…2", "[-2, 0]"]),
    ("nan-x", lambda n: _fit(n, x=np.where(X > 1, np.nan, X)), DataError, ["x", "NaN"]),
    ("inf-y", lambda n: _fit(n, y=np.where(np.eye(3)[LABELS] > 0, np.inf, 0.0)), DataError, ["y", "infinite"]),
    ("bool-x", lambda n: _fit(n, x=X > 0), DataError, ["x", "real numbers", "bool"]),
    ("complex-y", lambda n: _fit(n, y=LABELS + 0j), DataError, ["y", "complex128"]),
    ("empty", lambda n: _fit(n, x=X[:0], y=LABELS[:0]), DataError, ["x", "empty"]),
    ("batch-zero", lambda n: _fit(n, batch_size=0), ConfigError, ["batch_size", "≥ 1", "0"]),
    ("batch-negative", lambda n: _fit(n, batch_size=-5), ConfigError, ["batch_size", "≥ 1", "-5"]),
    ("batch-float", lambda n: _fit(n, batch_size=2.5), TypeError, ["batch_size", "integer", "2.5"]),
    ("batch-none", lambda n: _fit(n, batch_size=None), TypeError, ["batch_size", "integer", "None"]),
    ("batch-nan", lambda n: _fit(n, batch_size=float("nan")), TypeError, ["batch_size", "nan"]),
    ("epochs-negative", lambda n: _fit(n, epochs=-1), ConfigError, ["epochs", "≥ 1", "-1"]),
    ("epochs-zero", lambda n: _fit(n, epochs=0), ConfigError, ["epochs", "≥ 1", "0"]),
    ("epochs-string", lambda n: _fit(n, epochs="3"), TypeError, ["epochs", "integer", "'3'"]),
    ("epochs-inf", lambda n: _fit(n, epochs=float("inf")), TypeError, ["epochs", "inf"]),
    ("checkpoint-every", lambda n: _fit(n, checkpoint_every=0), ConfigError, ["checkpoint_every", "0"]),
    ("optimizer-name", lambda n: _fit(n, optimizer="rmsprop"), ConfigError, ["optimizer='rmsprop'", "sgd, adam"]),
    ("optimizer-object", lambda n: _fit(n, optimizer=object()), ConfigError, ["optimizer", "SGD", "Adam", "sgd, adam"]),
    ("validation-pair", lambda n: _fit(n, validation_data=X), ConfigError, ["validation_data", "pair"]),
    ("validation-features", lambda n: _fit(n, validation_data=(X[:, :2], LABELS)), ShapeError,
     ["validation_data[0]", "2 features"]),
    ("validation-labels", lambda n: _fit(n, validation_data=(X, LABELS + 5)), DataError,
     ["validation_data[1]", "0…2", "[5, 7]"]),
    ("early-stopping", lambda n: _fit(n, early_stopping="yes"), ConfigError, ["early_stopping", "'yes'"]),
    ("evaluate-features", lambda n: n.evaluate(X[:, :3], LABELS), ShapeError, ["x", "3 features"]),
    ("evaluate-rows", lambda n: n.evaluate(X, LABELS[:3]), ShapeError, ["20 examples", "y has 3"]),
    ("evaluate-batch", lambda n: n.evaluate(X, LABELS, batch_size=0), ConfigError, ["batch_size", "0"]),
    ("evaluate-batch-type", lambda n: n.evaluate(X, LABELS, batch_size="a"), TypeError, ["batch_size", "'a'"]),
    ("predict-features", lambda n: n.predict(np.hstack([X, X[:, :1]])), ShapeError, ["x", "5 features", "4"]),
    ("predict-1d", lambda n: n.predict(X[0]), ShapeError, ["x", "2-D", "x[None, :]"]),
    ("predict-nan", lambda n: n.predict(np.full((2, 4), np.nan)), DataError, ["x", "NaN"]),
    ("predict-empty", lambda n: n.predict(X[:0]), DataError, ["x", "empty"]),
    ("predict-string", lambda n: n.predict("x"), TypeError, ["x", "str"]),
    ("predict-proba-bool", lambda n: n.predict_proba(X > 0), DataError, ["x", "bool"]),
    ("predict-batch", lambda n: n.predict(X, batch_size=-3), ConfigError, ["batch_size", "-3"]),
]


@pytest.mark.parametrize("bid,call,cls,words", BAD_FIT, ids=[b[0] for b in BAD_FIT])
def test_bad_training_and_inference_input_is_rejected_and_the_net_is_untouched(bid, call, cls, words):
    net = _net()
    before = _params(net)
    with pytest.raises(cls) as info:
        call(net)
    assert isinstance(info.value, (ValueError, TypeError))
    msg = str(info.value)
    for word in words:
        assert word in msg, (word, msg)
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(net)))


BAD_OPTIMIZERS = [
    ("sgd-lr-negative", lambda: bpgpu.SGD(-1), ConfigError, ["lr", "> 0", "-1"]),
    ("sgd-lr-zero", lambda: bpgpu.SGD(0), ConfigError, ["lr", "> 0"]),
    ("sgd-lr-nan", lambda: bpgpu.SGD(float("nan")), ConfigError, ["lr", "nan"]),
    ("sgd-lr-string", lambda: bpgpu.SGD("fast"), TypeError, ["lr", "'fast'"]),
    ("sgd-momentum", lambda: bpgpu.SGD(0.1, momentum=1.5), ConfigError, ["momentum", "[0, 1)", "1.5"]),
    ("sgd-momentum-type", lambda: bpgpu.SGD(0.1, momentum="0.9"), TypeError, ["momentum", "'0.9'"]),
    ("sgd-nesterov", lambda: bpgpu.SGD(0.1, nesterov=True), ConfigError, ["nesterov", "momentum"]),
    ("sgd-decay", lambda: bpgpu.SGD(0.1, weight_decay=-1), ConfigError, ["weight_decay", "≥ 0", "-1"]),
    ("adam-betas", lambda: bpgpu.Adam(betas=(1.2, 0.9)), ConfigError, ["betas", "[0, 1)", "1.2"]),
    ("adam-betas-type", lambda: bpgpu.Adam(betas=0.9), TypeError, ["betas", "pair", "0.9"]),
    ("adam-eps", lambda: bpgpu.Adam(eps=0), ConfigError, ["eps", "> 0"]),
    ("make-unknown", lambda: bpgpu.training.optimizers.make("rmsprop"), ConfigError, ["'rmsprop'", "sgd, adam"]),
    ("make-type", lambda: bpgpu.training.optimizers.make(3), ConfigError, ["optimizer=3", "sgd, adam"]),
]


@pytest.mark.parametrize("oid,call,cls,words", BAD_OPTIMIZERS, ids=[b[0] for b in BAD_OPTIMIZERS])
def test_bad_optimizer_settings_are_rejected(oid, call, cls, words):
    with pytest.raises(cls) as info:
        call()
    msg = str(info.value)
    for word in words:
        assert word in msg, (word, msg)


def test_optimizer_by_name_works():
    history = _fit(_net(), optimizer="adam", epochs=2)
    assert len(history) == 2


def test_fit_rejects_data_on_another_device():
    xps = pytest.importorskip("array_api_strict")
    net = bpgpu.MLP([4, 5, 3], xp=xps, device=xps.Device("device1"), seed=0)
    with pytest.raises(DeviceMismatchError, match="device2"):
        _fit(net, x=xps.asarray(X, device=xps.Device("device2")))
    with pytest.raises(DeviceMismatchError, match="validation_data"):
        _fit(net, validation_data=(xps.asarray(X, device=xps.Device("device2")), LABELS))
    assert len(_fit(net)) == 1  # host NumPy data: moved to device1 once, up front


# -- out of memory ---------------------------------------------------------------------------------

class _OOMAfter:
    """A stand-in for the NumPy engine's forward/backward pass that fails with ``error`` on call number
    ``n`` (others run)."""

    def __init__(self, real, n, error, net):
        self.real, self.n, self.error, self.net, self.calls, self.before = real, n, error, net, 0, None

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            self.before = _params(self.net)
            raise self.error
        return self.real(*args, **kwargs)


def _cupy_like_oom():
    cls = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})
    return cls("Out of memory allocating 1,073,741,824 bytes (allocated so far: 0 bytes).")


def _torch_like_oom():
    torch = pytest.importorskip("torch")
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")  # a RuntimeError


@pytest.mark.parametrize("make_error", [MemoryError, _cupy_like_oom, _torch_like_oom], ids=["memoryerror", "cupy", "torch"])
def test_out_of_memory_during_fit_names_batch_and_sizes_and_the_net_stays_usable(monkeypatch, make_error):
    from bpgpu.engines.numpy.step import Engine

    net = _net(sizes=[4, 7, 3])
    fake = _OOMAfter(Engine._backprop, 4, make_error(), net)
    monkeypatch.setattr(Engine, "_backprop", lambda self, *a: fake(self, *a))
    with pytest.raises(bpgpu.OutOfMemoryError) as info:
        _fit(net, epochs=3, batch_size=8)
    msg = str(info.value)
    for word in ("batch_size=8", "[4, 7, 3]", "cpu", "smaller batch", "batch_size=4"):
        assert word in msg, (word, msg)
    assert isinstance(info.value, MemoryError) and isinstance(info.value.__cause__, type(fake.error))
    # the weights are those from before the failed step, and the network still trains and predicts
    assert all(np.array_equal(a, b) for a, b in zip(fake.before, _params(net)))
    monkeypatch.setattr(Engine, "_backprop", fake.real)
    assert len(_fit(net, epochs=1, batch_size=4)) == 1
    assert np.all(np.isfinite(bpgpu.to_host(net.predict_proba(X))))


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(monkeypatch):
    from bpgpu.engines.numpy.step import Engine

    net = _net()
    fake = _OOMAfter(Engine._backprop, 2, RuntimeError("cuBLAS failed"), net)
    monkeypatch.setattr(Engine, "_backprop", lambda self, *a: fake(self, *a))
    with pytest.raises(RuntimeError, match="cuBLAS failed") as info:
        _fit(net)
    assert not isinstance(info.value, bpgpu.OutOfMemoryError)


# -- divergence ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,backend", [("float64", "numpy"), ("float32", "numpy"), ("float32", "strict"),
                                           ("float64", "torch")])
def test_divergence_names_epoch_and_batch_and_keeps_the_weights_from_before_the_bad_step(dtype, backend):
    """SGD with η = 1e30 on quadratic/identity blows up within a few steps. One batch per epoch and
    no shuffling make it reproducible: the weights kept must equal a fresh run stopped one step earlier."""
    x = RNG.normal(size=(16, 3))
    y = RNG.normal(size=(16, 2))
    kw = dict(hidden="tanh", output="identity", cost="quadratic", dtype=dtype, seed=1)
    if backend == "strict":
        xps = pytest.importorskip("array_api_strict")
        kw.update(xp=xps, device=xps.Device("device1"))
    elif backend == "torch":
        kw.update(xp=pytest.importorskip("torch"), device="cpu")
    net = bpgpu.MLP([3, 4, 2], **kw)
    with pytest.raises(bpgpu.DivergenceError) as info:
        net.fit(x, y, 50, 16, optimizer=bpgpu.SGD(1e30), shuffle=False, progress=False)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert f"epoch {err.epoch}" in str(err) and f"batch {err.batch} of 1" in str(err)
    assert "Lower the learning rate" in str(err)
    assert err.epoch >= 2 and err.batch == 1
    kept = _params(net)
    assert all(np.all(np.isfinite(a)) for a in kept)
    reference = bpgpu.MLP([3, 4, 2], **kw)
    reference.fit(x, y, err.epoch - 1, 16, optimizer=bpgpu.SGD(1e30), shuffle=False, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(kept, _params(reference)))
    assert np.all(np.isfinite(bpgpu.to_host(net.forward(x))))


def test_divergence_mid_epoch_names_the_batch():
    x = RNG.normal(size=(40, 3)) * 10
    y = RNG.normal(size=(40, 2)) * 10
    net = bpgpu.MLP([3, 8, 2], hidden="relu", output="identity", dtype="float64", seed=0)
    with pytest.raises(bpgpu.DivergenceError, match=r"epoch \d+, batch \d+ of 5") as info:
        net.fit(x, y, 30, 8, optimizer=bpgpu.SGD(1e20), seed=0, progress=False)
    assert 1 <= info.value.batch <= 5
    assert all(np.all(np.isfinite(a)) for a in _params(net))


@pytest.mark.parametrize("argv,words", [
    (["train", "--mnist", "/nonexistent/mnist"], ["--mnist", "/nonexistent/mnist"]),
    (["train", "--hidden", "swish"], ["--hidden swish", "valid:"]),          # hints in CLI syntax
    (["train", "--batch-size", "0", "--no-progress"], ["--batch-size", "0"]),
    (["train", "--device", "tpu"], ["--device tpu", "cpu, gpu"]),
])
def test_the_command_line_prints_an_error_not_a_traceback(capsys, argv, words):
    from bpgpu.cli.main import main

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpgpu train: error: ") and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_fit_validates_once_up_front_not_per_batch(monkeypatch):
    import bpgpu.network as network

    calls = {"features": 0, "targets": 0}

    monkeypatch.setattr(network, "check_features", counting(calls, "features", network.check_features))
    monkeypatch.setattr(network, "check_targets", counting(calls, "targets", network.check_targets))
    _fit(_net(), epochs=3, batch_size=4)  # 3 epochs × 5 batches
    assert calls == {"features": 1, "targets": 1}
