"""Small shared helpers for the tests: data for a network, and comparing gradients across backends."""

from __future__ import annotations

import numpy as np

from bpgpu import to_host

# Every supported (hidden, output, cost) combination.
HIDDEN = ("sigmoid", "tanh", "relu", "identity")
PAIRS = (
    ("softmax", "cross_entropy"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "quadratic"),
    ("sigmoid", "quadratic"),
    ("identity", "quadratic"),
)
COMBOS = [(h, o, c) for h in HIDDEN for o, c in PAIRS]
TOL = {"float64": 1e-12, "float32": 1e-5}


def make_data(sizes, output, m, rng, labels=True):
    """Host (x, y) for a network: integer labels for softmax (if ``labels``, else one-hot rows), 0/1
    rows for sigmoid (integer 0/1 labels for a single sigmoid unit if ``labels``), real targets for
    identity."""
    x = rng.normal(size=(m, sizes[0]))
    n_out = sizes[-1]
    if output == "softmax":
        y = rng.integers(0, n_out, size=m)
        if not labels:
            y = np.eye(n_out)[y]
    elif output == "sigmoid":
        y = rng.integers(0, 2, size=(m, n_out))
        y = y[:, 0] if (labels and n_out == 1) else y.astype(np.float64)
    else:
        y = rng.normal(size=(m, n_out))
    return x, y


def max_scaled_difference(got, want) -> float:
    """max |got − want| over all entries, divided by the largest |want| entry of that array."""
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(to_host(g), dtype=np.float64), np.asarray(to_host(w), dtype=np.float64)
        assert g.shape == w.shape
        scale = max(float(np.max(np.abs(w))), 1e-30)
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


def fake_cupy(count=1, count_error=None, kernel_error=None):
    """A stand-in ``cupy`` module: ``getDeviceCount`` returns ``count`` or raises ``count_error``;
    running a kernel raises ``kernel_error`` (simulates GPU failures on a machine without one)."""
    import types

    def get_device_count():
        if count_error is not None:
            raise count_error
        return count

    class Device:
        def __init__(self, i):
            self.id = i

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def arange(*a, **k):
        raise kernel_error

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=Device), arange=arange,
                                 float32="float32")


def counting(calls, key, real):
    """``real`` wrapped so that each call adds 1 to ``calls[key]`` (to count transfers and checks)."""

    def wrapper(*args, **kwargs):
        calls[key] += 1
        return real(*args, **kwargs)

    return wrapper
