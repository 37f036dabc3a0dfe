"""A cheap fingerprint of the training data, recorded in checkpoints so that a resume on other data
is noticed (:mod:`bpgpu.training.resume` compares it)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import backend_of

FINGERPRINT_ROWS = 256


def data_fingerprint(x: Any, y: Any) -> dict[str, Any]:
    """Rows, shapes, dtypes, the float64 sums of x and y (read with the epoch's one sync) and a
    SHA-256 of up to 256 evenly spaced rows (host copies of those rows only): cheap, device-independent
    (the sums are compared with a tolerance, the sampled rows exactly)."""
    from array_api_compat import array_namespace

    xp = array_namespace(x)
    m = int(x.shape[0])
    idx = np.unique(np.linspace(0, m - 1, num=min(m, FINGERPRINT_ROWS)).astype(np.int64))
    digest = hashlib.sha256()
    sums = []
    for a in (x, y):
        rows = to_host(xp.take(a, to_backend(idx, backend_of(a), xp.int64), axis=0))
        digest.update(np.ascontiguousarray(rows).tobytes())
        sums.append(float(xp.sum(a)))
    return {"rows": m, "x_shape": [int(n) for n in x.shape], "y_shape": [int(n) for n in y.shape],
            "x_dtype": str(x.dtype).split(".")[-1], "sums": sums, "sample_sha256": digest.hexdigest()}
