"""The bundled digits, the synthetic generator and the MNIST IDX loader (on files made here)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import bpgpu
from bpgpu.datasets import load_digits, load_mnist, make_classification, read_idx
from bpgpu.errors import ConfigError, DataError


def test_digits_are_bundled_with_a_fixed_stratified_split():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1397, 64) and x_test.shape == (400, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert np.bincount(y_test).tolist() == [40, 40, 39, 41, 40, 41, 40, 40, 39, 40]
    (x_again, _), _ = load_digits()
    np.testing.assert_array_equal(x_train, x_again)
    (raw, _), _ = load_digits(dtype="float64", scale=False)
    assert raw.max() == 16.0 and np.all(raw == np.round(raw))


def test_digits_match_scikit_learn():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    (x_train, y_train), (x_test, y_test) = load_digits(dtype="float64", scale=False)
    both = np.concatenate([x_train, x_test])
    labels = np.concatenate([y_train, y_test])
    order = np.lexsort(both.T[::-1])
    want_order = np.lexsort(digits.data.T[::-1])
    np.testing.assert_array_equal(both[order], digits.data[want_order])
    np.testing.assert_array_equal(labels[order], digits.target[want_order])


def test_make_classification():
    x, y = make_classification(101, 7, 4, seed=1)
    assert x.shape == (101, 7) and x.dtype == np.float32 and y.dtype == np.int64
    assert sorted(set(y.tolist())) == [0, 1, 2, 3] and max(np.bincount(y)) - min(np.bincount(y)) <= 1
    x2, y2 = make_classification(101, 7, 4, seed=1)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ConfigError):
        make_classification(10, 2, 1)


def _idx(data: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{data.ndim}I", *data.shape) + data.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=12, n_test=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        data[split] = (images, labels)
        for kind, arr, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
            name = f"{split}-{kind}-ubyte" + (".gz" if gz else "")
            blob = _idx(arr, magic)
            (folder / name).write_bytes(gzip.compress(blob) if gz else blob)
    return data


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_mnist_loader_reads_idx_files(tmp_path, gz):
    data = _write_mnist(tmp_path, gz=gz)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    assert x_train.shape == (12, 784) and x_test.shape == (5, 784) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train, data["train"][0].reshape(12, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test, data["t10k"][1])
    assert y_train.dtype == np.int64 and 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_mnist(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(struct.pack(">I", 2051) + good[4:])
    with pytest.raises(DataError, match="magic number 2051"):
        load_mnist(tmp_path)
    labels.write_bytes(good[:-3])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tmp_path)
    labels.write_bytes(_idx(np.zeros(11, dtype=np.uint8), 2049))
    with pytest.raises(DataError, match="12 images but train_labels holds 11"):
        load_mnist(tmp_path)
    labels.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(str(labels))
    bad_gz = tmp_path / "broken.gz"
    bad_gz.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(str(bad_gz))


def test_datasets_is_exported_at_the_top_level():
    assert bpgpu.datasets.load_digits is load_digits
