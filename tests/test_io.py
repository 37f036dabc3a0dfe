"""Save / load: identical predictions, device independence, atomic writes, damaged files."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import bpgpu
from bpgpu import to_host
from bpgpu.errors import ModelFileError
from bpgpu.io import format as fmt


def _data(n_in=6, m=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n_in)), rng.integers(0, 3, m)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_predict_identical(tmp_path, dtype):
    x, y = _data()
    net = bpgpu.MLP([6, 7, 3], hidden="tanh", dtype=dtype, seed=0)
    net.fit(x, y, epochs=2, batch_size=5, progress=False, seed=0)
    path = net.save(tmp_path / "model.npz")
    loaded = bpgpu.load(path)
    assert loaded.config() == net.config() and loaded.dtype_name == dtype
    for a, b in zip(net.weights + net.biases, loaded.weights + loaded.biases):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    np.testing.assert_array_equal(to_host(net.predict(x)), to_host(loaded.predict(x)))
    np.testing.assert_array_equal(to_host(net.predict_proba(x)), to_host(loaded.predict_proba(x)))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def test_file_saved_on_one_device_loads_on_numpy_and_another_device(tmp_path):
    strict = pytest.importorskip("array_api_strict")
    x, _ = _data()
    net = bpgpu.MLP([6, 7, 3], dtype="float32", seed=1, xp=strict, device=strict.Device("device1"))
    path = net.save(tmp_path / "m.npz")
    on_cpu = bpgpu.load(path, device="cpu")
    on_dev2 = bpgpu.load(path, xp=strict, device=strict.Device("device2"))
    assert on_cpu.backend.name == "numpy" and on_dev2.weights[0].device == strict.Device("device2")
    want = to_host(net.predict_proba(strict.asarray(x, dtype=strict.float32, device=strict.Device("device1"))))
    np.testing.assert_array_equal(to_host(on_cpu.predict_proba(x)), want)
    np.testing.assert_array_equal(to_host(on_dev2.predict_proba(x)), want)
    assert bpgpu.load(path, dtype="float64").dtype_name == "float64"


def test_the_file_is_a_plain_npz_with_a_json_header(tmp_path):
    path = bpgpu.MLP([4, 2], output="sigmoid", seed=0).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(bytes(npz["__header__"]).decode())
        assert sorted(npz.files) == ["W1", "__header__", "b1"]
    assert header["format"] == "bpgpu-model" and header["format_version"] == fmt.FORMAT_VERSION
    assert header["bpgpu_version"] == bpgpu.__version__
    assert header["config"] == {"sizes": [4, 2], "hidden": "sigmoid", "output": "sigmoid", "cost": "cross_entropy",
                                "dtype": "float32", "init": "nielsen"}
    assert header["arrays"] == {"W1": [2, 4], "b1": [2]}


def _rewrite(path, header_update=None, drop=None, arrays_update=None):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop("__header__")).decode())
    header.update(header_update or {})
    arrays.update(arrays_update or {})
    if drop:
        arrays.pop(drop)
    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
        (lambda p: p.write_bytes(b"not a zip file at all"), "not an npz"),
        (lambda p: np.savez(p, W1=np.zeros(3)), "not a bpgpu file"),
        (lambda p: _rewrite(p, {"format_version": 99}), "upgrade bpgpu"),
        (lambda p: _rewrite(p, {"format": "bpgpu-checkpoint"}), "'bpgpu-model' file was expected"),
        (lambda p: _rewrite(p, drop="b1"), "lacks it"),
        (lambda p: _rewrite(p, arrays_update={"W1": np.zeros((3, 3))}), "header says"),
        (lambda p: _rewrite(p, {"config": {"sizes": [4]}}), "config|sizes"),
        (lambda p: _rewrite(p, {"config": {"sizes": [4, 2], "hidden": "nope", "output": "sigmoid", "cost": "cross_entropy",
                                           "dtype": "float32", "init": "nielsen"}}), "not valid"),
        (lambda p: _rewrite(p, arrays_update={"W1": np.full((2, 4), np.nan)}), "NaN"),
    ],
    ids=["truncated", "garbage", "foreign-npz", "newer-version", "wrong-kind", "missing-array", "bad-shape",
         "bad-config", "bad-activation", "nan"],
)
def test_damaged_files_raise_model_file_error(tmp_path, damage, message):
    path = tmp_path / "m.npz"
    bpgpu.MLP([4, 2], output="sigmoid", seed=0).save(path)
    damage(path)
    with pytest.raises(ModelFileError, match=message):
        bpgpu.load(path)


def test_missing_file_and_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        bpgpu.load(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bpgpu.MLP([2, 1]).save(tmp_path / "no" / "such" / "dir.npz")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.npz"
    bpgpu.MLP([4, 2], seed=0).save(path)
    before = path.read_bytes()

    def explode(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fmt.atomic_write(path, explode)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.npz"]
    assert zipfile.is_zipfile(path)


def test_checkpoint_file_holds_optimizer_rng_and_history(tmp_path):
    from bpgpu.io import checkpoint

    x, y = _data()
    net = bpgpu.MLP([6, 5, 3], dtype="float64", seed=0)
    net.fit(x, y, epochs=2, batch_size=7, optimizer=bpgpu.Adam(0.01), checkpoint=tmp_path / "c.npz",
            early_stopping=5, progress=False, seed=3)
    state = checkpoint.load(tmp_path / "c.npz")
    assert state.epoch == 2 and state.optimizer["config"]["name"] == "adam" and state.optimizer["scalars"]["steps"] == 6
    assert set(state.optimizer_state) == {"m", "v"} and len(state.optimizer_state["m"]) == 4
    assert state.rng["bit_generator"] == "PCG64" and state.history["epoch"] == [1, 2]
    assert state.early_stopping["monitor"] == "cost" and state.best is not None
    with pytest.raises(ModelFileError, match="'bpgpu-model' file was expected"):
        bpgpu.load(tmp_path / "c.npz")
