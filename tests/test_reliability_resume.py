"""Reliability, checkpoints and resumes: damaged or hostile checkpoints are refused as strictly as
model files; a resume continues the same run or is refused naming what differs (data, optimizer),
unless explicitly allowed; an early-stopped run resumes to the same weights without another epoch;
checkpoint paths fail before the first epoch; in data-parallel runs only rank 0 reads the file."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ConfigError, ModelFileError
from bpgpu.io import checkpoint as ckpt
from bpgpu.io import format as fmt
from bpgpu.training.resume import Resume, check_checkpoint_path, read_shared
from helpers import ThreadComm, thread_ranks

SIZES = [3, 4, 2]


def _data(m=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 3))
    return x, (x[:, 0] + 0.3 * rng.normal(size=m) > 0).astype(np.int64)


def _net():
    return bpgpu.MLP(SIZES, dtype="float64", seed=0)


def _params(net):
    w, b = net.get_parameters()
    return w + b


def _same(a, b) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(_params(a), _params(b)))


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    """A real checkpoint (SGD with momentum, early stopping with best arrays) and its data."""
    x, y = _data()
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    _net().fit(x, y, 3, 8, optimizer=bpgpu.SGD(0.1, momentum=0.9), early_stopping=bpgpu.EarlyStopping(5),
               validation_data=(x[:20], y[:20]), seed=0, checkpoint=path, progress=False)
    return path, x, y


def _rewrite(src, dst, header_update=None, arrays_update=None):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop(fmt.HEADER_KEY)).decode())
    if header_update:
        header_update(header)
    arrays.update(arrays_update or {})
    header["arrays"] = {k: list(v.shape) for k, v in arrays.items()}
    with open(dst, "wb") as handle:
        np.savez(handle, **{fmt.HEADER_KEY: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}, **arrays)
    return dst


def _resume(path, x, y, **kw):
    kw.setdefault("early_stopping", bpgpu.EarlyStopping(5))
    kw.setdefault("validation_data", (x[:20], y[:20]))
    return _net().fit(x, y, 4, 8, resume=path, progress=False, **kw)


# -- damaged checkpoints -------------------------------------------------------------------------------

def _damaged_arrays(shape_w1, shape_v):
    return [
        ("nan-weights", {"W1": np.full(shape_w1, np.nan)}, "NaN"),
        ("complex-weights", {"W1": np.ones(shape_w1, dtype=complex)}, "complex128"),
        ("text-weights", {"W1": np.full(shape_w1, "x")}, "dtype"),
        ("int-weights", {"W1": np.ones(shape_w1, dtype=np.int64)}, "int64"),
        ("velocity-shape", {"opt.velocity.0": np.zeros((2, 2))}, "opt.velocity.0"),
        ("best-shape", {"best.W1": np.zeros((1, 3))}, "best.W1"),
        ("inf-velocity", {"opt.velocity.1": np.full(shape_v, np.inf)}, "NaN or infinite"),
        ("huge-for-float32", {"W1": np.full(shape_w1, 1e300)}, None),
    ]


@pytest.mark.parametrize("case", range(8), ids=[c[0] for c in _damaged_arrays((4, 3), (2, 4))])
def test_damaged_checkpoint_arrays_are_model_file_errors(tmp_path, checkpoint_file, case):
    path, x, y = checkpoint_file
    _, update, word = _damaged_arrays((4, 3), (2, 4))[case]
    bad = _rewrite(path, tmp_path / "bad.npz", arrays_update=update)
    if word is None:  # a float64 run: 1e300 fits; the same file claimed as float32 does not
        bad = _rewrite(bad, bad, header_update=lambda h: h["config"].update(dtype="float32"))
        word = "overflows float32"
    with pytest.raises(ModelFileError) as info:
        ckpt.load(bad)
    assert str(bad) in str(info.value) and word in str(info.value), str(info.value)


@pytest.mark.parametrize("field, value, word", [
    ("rng", {"bit_generator": "seed", "state": {}}, "bit generator"),
    ("rng", {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0, "uinteger": 0}, "RNG state"),
    ("early_stopping", {"monitor": "nope", "best": 1.0, "best_epoch": 1, "wait": 0}, "monitors 'nope'"),
    ("early_stopping", {"monitor": "val_cost", "best": "x", "best_epoch": 1, "wait": 0}, "best value"),
    ("early_stopping", {"monitor": "val_cost", "best": 1.0, "best_epoch": 99, "wait": 0}, "best_epoch"),
    ("early_stopping", {"monitor": "val_cost", "best": 1.0, "best_epoch": 1, "wait": -2}, "wait"),
    ("early_stopping", {"monitor": "cost", "best": 1.0, "best_epoch": 1, "wait": 0}, "monitored 'cost'"),
    ("history", {"epoch": [1, 2], "cost": [1.0, 1.0]}, "history"),
    ("optimizer.scalars", {"steps": -4}, "step count"),
    ("run", {"finished": "yes"}, "finished"),
])
def test_damaged_checkpoint_state_is_a_model_file_error_naming_the_file(tmp_path, checkpoint_file, field, value, word,
                                                                         monkeypatch):
    path, x, y = checkpoint_file
    called = []
    monkeypatch.setattr(np.random, "seed", lambda *a: called.append(a))

    def update(header):
        if "." in field:
            outer, inner = field.split(".")
            header[outer][inner] = value
        else:
            header[field] = value

    bad = _rewrite(path, tmp_path / "bad.npz", header_update=update)
    with pytest.raises(ModelFileError) as info:
        _resume(bad, x, y)
    assert str(bad) in str(info.value) and word in str(info.value), str(info.value)
    assert called == [], "a name read from the checkpoint called numpy.random.seed"


def test_nan_weights_in_a_checkpoint_are_not_blamed_on_the_learning_rate(tmp_path, checkpoint_file):
    path, x, y = checkpoint_file
    bad = _rewrite(path, tmp_path / "nan.npz", arrays_update={"W2": np.full((2, 4), np.nan)})
    with pytest.raises(ModelFileError, match="NaN") as info:
        _resume(bad, x, y)
    assert not isinstance(info.value, bpgpu.DivergenceError)


def test_unlisted_or_missing_checkpoint_arrays_are_refused(tmp_path, checkpoint_file):
    path, _, _ = checkpoint_file
    extra = _rewrite(path, tmp_path / "extra.npz", arrays_update={"opt.velocity.9": np.zeros(3)})
    with pytest.raises(ModelFileError, match="does not have"):
        ckpt.load(extra)

    def drop(header):
        header["optimizer"]["state"] = ["velocity", "m"]

    missing = _rewrite(path, tmp_path / "missing.npz", header_update=drop)
    with pytest.raises(ModelFileError, match="opt.m.0"):
        ckpt.load(missing)


# -- resume misuse -------------------------------------------------------------------------------------

def test_resuming_on_other_data_is_refused_unless_allowed(checkpoint_file):
    path, x, y = checkpoint_file
    with pytest.raises(ConfigError, match=r"other data \(rows: saved 60, given 40.*allow=\('data',\)"):
        _resume(path, x[:40], y[:40])
    x2 = x.copy()
    x2[7, 1] += 1.0  # same shape, other values
    with pytest.raises(ConfigError, match="checksum"):
        _resume(path, x2, y)
    assert len(_resume(Resume(path, allow=("data",)), x[:40], y[:40])) == 4


@pytest.mark.parametrize("optimizer, word", [
    (bpgpu.SGD(0.1), "momentum: saved 0.9, given 0.0"),
    (bpgpu.SGD(0.05, momentum=0.9), "schedule"),
    (bpgpu.SGD(0.1, momentum=0.9, weight_decay=1e-3), "weight_decay"),
    (bpgpu.Adam(0.1), "'sgd'"),
])
def test_resuming_with_other_optimizer_settings_is_refused_naming_them(checkpoint_file, optimizer, word):
    path, x, y = checkpoint_file
    with pytest.raises(ConfigError) as info:
        _resume(path, x, y, optimizer=optimizer)
    assert word in str(info.value) and str(path) in str(info.value), str(info.value)


def test_an_allowed_optimizer_change_and_the_saved_optimizer_both_resume(checkpoint_file):
    path, x, y = checkpoint_file
    assert len(_resume(path, x, y)) == 4                                        # optimizer=None: the saved one
    assert len(_resume(path, x, y, optimizer=bpgpu.SGD(0.1, momentum=0.9))) == 4  # the same settings
    assert len(_resume(Resume(path, allow="optimizer"), x, y, optimizer=bpgpu.SGD(0.02))) == 4
    with pytest.raises(ConfigError, match="allow"):
        Resume(path, allow=("everything",))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    x, y = _data()
    whole = _net()
    whole.fit(x, y, 6, 8, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=2, progress=False)
    part = _net()
    part.fit(x, y, 3, 8, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=2, progress=False,
             checkpoint=tmp_path / "ck-{epoch}.npz")
    resumed = _net()
    resumed.fit(x, y, 6, 8, resume=tmp_path / "ck-3.npz", progress=False)
    assert _same(whole, resumed)


@pytest.mark.parametrize("restore_best", [True, False])
def test_an_early_stopped_run_killed_after_its_last_checkpoint_resumes_without_another_epoch(tmp_path, restore_best):
    """Patience 1 on a noisy monitor stops early; 'killing' the process after its last checkpoint is
    the same as resuming from that file: the resumed fit must train nothing and end equal."""
    x, y = _data()
    es = lambda: bpgpu.EarlyStopping(1, monitor="val_accuracy", restore_best=restore_best)  # noqa: E731
    whole = _net()
    history = whole.fit(x, y, 40, 8, optimizer=bpgpu.SGD(0.5, momentum=0.9), early_stopping=es(),
                        validation_data=(x[:12], y[:12]), seed=1, progress=False, checkpoint=tmp_path / "ck.npz")
    assert history.stopped_epoch is not None and len(history) < 40
    state = ckpt.load(tmp_path / "ck.npz")
    assert state.run == {"finished": True, "stopped": True} and state.epoch == len(history)
    resumed = _net()
    again = resumed.fit(x, y, 40, 8, early_stopping=es(), validation_data=(x[:12], y[:12]),
                        resume=tmp_path / "ck.npz", progress=False)
    assert len(again) == len(history) and _same(whole, resumed)


# -- checkpoint paths, before the first epoch ----------------------------------------------------------

@pytest.mark.parametrize("make, error, word", [
    (lambda d: str(d / "ck-{epoch}-{foo}.npz"), ConfigError, "{foo}"),
    (lambda d: str(d / "ck-{}.npz"), ConfigError, "field"),
    (lambda d: str(d / "ck-{epoch.x}.npz"), ConfigError, "{epoch.x}"),
    (lambda d: str(d / "ck-{epoch:q}.npz"), ConfigError, "cannot be filled"),
    (lambda d: str(d / "ck-{epoch"), ConfigError, "not a valid path template"),
    (lambda d: str(d / "missing" / "ck.npz"), FileNotFoundError, "does not exist"),
    (lambda d: True, TypeError, "file path"),
    (lambda d: 5, TypeError, "file path"),
    (lambda d: str(d), ConfigError, "folder"),
])
def test_a_bad_checkpoint_path_fails_before_the_first_epoch(tmp_path, make, error, word):
    x, y = _data()
    net = _net()
    before = _params(net)
    with pytest.raises(error) as info:
        net.fit(x, y, 2, 8, checkpoint=make(tmp_path), progress=False, seed=0)
    assert word in str(info.value), str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(net))), "an epoch ran before the path was checked"


def test_good_checkpoint_templates_pass(tmp_path):
    for template in ("ck.npz", "ck-{epoch}.npz", "ck-{epoch:03d}.npz", "ck-{{literal}}-{epoch}.npz"):
        check_checkpoint_path(str(tmp_path / template), epochs=12)


# -- data-parallel: rank 0 reads, the others receive ---------------------------------------------------

def test_in_a_data_parallel_run_only_rank_0_reads_the_checkpoint(tmp_path, checkpoint_file, monkeypatch):
    path, _, _ = checkpoint_file
    want = ckpt.load(path)
    shared = thread_ranks(2, timeout=20)
    opened, results = [], {}
    real_load = ckpt.load

    def spy(p):
        opened.append(threading.current_thread().name)
        return real_load(p)

    monkeypatch.setattr(ckpt, "load", spy)
    backend = bpgpu.resolve("cpu")

    def rank(r):
        results[r] = read_shared(path if r == 0 else tmp_path / "not-on-this-machine.npz", ThreadComm(r, shared), backend)

    threads = [threading.Thread(target=rank, args=(r,), name=f"rank{r}") for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert opened == ["rank0"]
    got = results[1]
    assert got.epoch == want.epoch and got.rng == want.rng and got.history == want.history
    assert all(np.array_equal(a, b) for a, b in zip(got.weights + got.biases, want.weights + want.biases))
    assert all(np.array_equal(a, b) for a, b in zip(got.optimizer_state["velocity"], want.optimizer_state["velocity"]))


def test_a_checkpoint_rank_0_cannot_read_is_an_error_on_every_rank(tmp_path):
    shared = thread_ranks(2, timeout=20)
    errors = {}
    backend = bpgpu.resolve("cpu")

    def rank(r):
        try:
            read_shared(tmp_path / "absent.npz", ThreadComm(r, shared), backend)
        except Exception as exc:  # noqa: BLE001 - recorded and checked below
            errors[r] = exc

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(errors[0], FileNotFoundError)
    assert isinstance(errors[1], ModelFileError) and "rank 0" in str(errors[1])


# -- early stopping objects ----------------------------------------------------------------------------

def test_a_reused_early_stopping_follows_each_fits_data():
    x, y = _data()
    es = bpgpu.EarlyStopping(3)
    _net().fit(x, y, 2, 8, early_stopping=es, progress=False, seed=0)
    assert es.monitor == "cost"
    _net().fit(x, y, 2, 8, early_stopping=es, validation_data=(x[:10], y[:10]), progress=False, seed=0)
    assert es.monitor == "val_cost"
    fixed = bpgpu.EarlyStopping(3, monitor="val_accuracy")
    _net().fit(x, y, 1, 8, early_stopping=fixed, validation_data=(x[:10], y[:10]), progress=False, seed=0)
    assert fixed.monitor == "val_accuracy"


@pytest.mark.parametrize("kwargs, error, words", [
    ({"patience": None}, TypeError, ["patience", "None"]),
    ({"patience": 2.5}, TypeError, ["patience", "2.5"]),
    ({"patience": -1}, ConfigError, ["patience", "-1"]),
    ({"patience": 5, "min_delta": "x"}, TypeError, ["min_delta", "'x'"]),
    ({"patience": 5, "min_delta": -0.1}, ConfigError, ["min_delta"]),
    ({"patience": 5, "monitor": "loss"}, ConfigError, ["monitor", "'loss'"]),
    ({"patience": 5, "restore_best": "yes"}, TypeError, ["restore_best"]),
])
def test_early_stopping_arguments_are_named_in_errors(kwargs, error, words):
    with pytest.raises(error) as info:
        bpgpu.EarlyStopping(**kwargs)
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("data", [{"rows": 60, "x_shape": [60, 3], "y_shape": [60, 2], "sums": "x"},
                                  {"rows": 60, "x_shape": [60, 3], "y_shape": [60, 2], "sums": [1.0, None]}])
def test_a_damaged_data_fingerprint_is_a_model_file_error(tmp_path, checkpoint_file, data):
    path, x, y = checkpoint_file
    bad = _rewrite(path, tmp_path / "fp.npz", header_update=lambda h: h["fit"].update(data=data))
    with pytest.raises(ModelFileError, match="fingerprint is damaged") as info:
        _resume(bad, x, y)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("value", [True, 5, 2.5])
def test_resume_must_be_a_path(value):
    x, y = _data()
    with pytest.raises(TypeError, match="resume must be the path of a checkpoint"):
        _net().fit(x, y, 2, 8, resume=value, progress=False)
    with pytest.raises(TypeError, match="resume must be the path"):
        Resume(value)
