"""Synthetic classification data for benchmarks and tests: Gaussian blobs, one per class."""

from __future__ import annotations

import numpy as np

from bpgpu.errors import ConfigError


def make_classification(
    n: int, n_features: int, n_classes: int, seed: int | None = 0, separation: float = 3.0,
    dtype: str = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n`` rows of ``n_features`` floats and int64 labels 0…n_classes−1 (balanced up to
    one row). Class k's rows are N(μ_k, I) with the centres μ_k ~ N(0, (separation/√2)² I) drawn
    once, so larger ``separation`` makes the classes easier. Rows are shuffled; one seed gives the
    same data everywhere (``numpy.random.default_rng(seed)``)."""
    for name, value, low in (("n", n, 1), ("n_features", n_features, 1), ("n_classes", n_classes, 2)):
        if int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer ≥ {low}; got {value!r}.")
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, separation / np.sqrt(2.0), (n_classes, n_features))
    y = np.arange(n, dtype=np.int64) % n_classes
    rng.shuffle(y)
    x = centres[y] + rng.standard_normal((n, n_features))
    return x.astype(dtype), y


make_blobs = make_classification
