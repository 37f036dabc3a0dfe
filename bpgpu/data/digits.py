"""The handwritten digits bundled with bpgpu (no download, no scikit-learn needed).

1,797 grey-scale 8×8 images of the digits 0–9 (pixel values 0…16), the test set of the UCI "Optical
Recognition of Handwritten Digits" data (E. Alpaydin, C. Kaynak, 1998; UCI Machine Learning
Repository, https://doi.org/10.24432/C50P49, licence CC BY 4.0), as shipped with scikit-learn's
``load_digits``. Stored in ``bpgpu/data/digits.npz`` as uint8 pixels and labels plus the fixed split.

The split: stratified by class, 1,397 training and 400 test images, drawn once with
``sklearn.model_selection.train_test_split(test_size=400, stratify=labels, random_state=0)``; the
indices are stored in the file, so the split never depends on a library version.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

N_IMAGES, N_TRAIN, N_TEST, N_FEATURES, N_CLASSES = 1797, 1397, 400, 64, 10


def _raw() -> dict[str, np.ndarray]:
    with resources.files("bpgpu.data").joinpath("digits.npz").open("rb") as handle:
        with np.load(handle, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}


def load_digits(
    dtype: str = "float32", scale: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: x is (m, 64) with pixels scaled to [0, 1] (÷16;
    ``scale=False`` keeps 0…16), y holds int64 labels 0–9. Host (NumPy) arrays: ``fit`` moves them
    to the network's device once."""
    raw = _raw()
    x = raw["images"].astype(dtype)
    if scale:
        x /= 16.0
    y = raw["labels"].astype(np.int64)
    train, test = raw["train_index"].astype(np.int64), raw["test_index"].astype(np.int64)
    return (x[train], y[train]), (x[test], y[test])
