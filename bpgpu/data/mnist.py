"""An MNIST loader for the user's own copy of the standard IDX files (gzipped or not).

Expected in one folder (the names of http://yann.lecun.com/exdb/mnist/, optionally ending in .gz;
the Kaggle spelling ``train-images.idx3-ubyte`` is accepted too)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte   t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte

IDX: a big-endian header — two zero bytes, a type code (0x08 = uint8), the number of dimensions —
then one big-endian uint32 per dimension, then the data. MNIST images have magic 2051 (0x00000803,
3 dims: n × 28 × 28) and labels magic 2049 (0x00000801, 1 dim).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from bpgpu.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(folder: str, stem: str) -> str:
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"MNIST file {stem}[.gz] not found in {folder!r}. Put the four IDX files from "
        "http://yann.lecun.com/exdb/mnist/ there (gzipped or not)."
    )


def read_idx(path: str, magic: int | None = None) -> np.ndarray:
    """The uint8 array stored in an IDX file (``.gz`` is decompressed); checks magic and length."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path!r} cannot be read ({exc}); is it a complete (gzipped) IDX file?") from None
    if len(data) < 4:
        raise DataError(f"{path!r} is too short to be an IDX file ({len(data)} bytes).")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    found = struct.unpack(">I", data[:4])[0]
    if zero != 0 or type_code != 0x08 or (magic is not None and found != magic):
        expected = f"{magic} (0x{magic:08x})" if magic is not None else "0x000008NN (unsigned bytes)"
        raise DataError(f"{path!r} has magic number {found} (0x{found:08x}); expected {expected}. Is it the right file?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path!r} is truncated: its header needs {header} bytes, the file has {len(data)}.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != size:
        raise DataError(
            f"{path!r} declares shape {shape} ({size} bytes of data) but holds {len(data) - header}; "
            "the file is truncated or corrupted."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _pair(folder: str, images: str, labels: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(_find(folder, FILES[images]), IMAGES_MAGIC)
    y = read_idx(_find(folder, FILES[labels]), LABELS_MAGIC)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels; they must match.")
    if y.size and int(y.max()) > 9:
        raise DataError(f"{labels} has a label {int(y.max())}; MNIST labels are 0–9.")
    return (x.reshape(x.shape[0], -1).astype(dtype) / 255.0).astype(dtype), y.astype(np.int64)


def load_mnist(path: str | os.PathLike, dtype: str = "float32") -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)`` from the folder ``path``: x is (m, 784) with pixels
    scaled to [0, 1], y int64 labels. (Nielsen splits the 60,000 training images into 50,000 for
    training and the last 10,000 for validation: ``x_train[:50000]``, ``x_train[50000:]``.)"""
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--mnist / load_mnist: {folder!r} is not a folder holding the MNIST IDX files.")
    return _pair(folder, "train_images", "train_labels", dtype), _pair(folder, "test_images", "test_labels", dtype)
