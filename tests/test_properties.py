"""Property-based tests (hypothesis) over random architectures (2–4 layers, widths 1–6), batch sizes
from 1, hidden activations, output/cost pairs and dtypes: backprop matches finite differences, the
batched form equals the per-example loop, and save → load is exact. Derandomized (a fixed example
stream) and without a database, so CI runs are reproducible and leave no files behind."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpgpu
from helpers import HIDDEN, PAIRS, make_data, max_scaled_difference

SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@st.composite
def problems(draw, dtypes=("float64",)):
    """A network configuration plus a batch of data for it, all drawn by hypothesis."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    hidden = draw(st.sampled_from(HIDDEN))
    output, cost = draw(st.sampled_from(PAIRS))
    if output == "softmax":  # a one-unit softmax is refused (it cannot learn): give it two classes
        sizes[-1] = max(sizes[-1], 2)
    dtype = draw(st.sampled_from(dtypes))
    m = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    labels = draw(st.booleans())
    rng = np.random.default_rng(seed)
    x, y = make_data(sizes, output, m, rng, labels)
    net = bpgpu.MLP(sizes, hidden=hidden, output=output, cost=cost, dtype=dtype, seed=seed % 1000)
    # Glorot/He start with zero biases: behind a dead ReLU unit the next pre-activation is then exactly
    # 0, a kink that no jitter of x removes. Nonzero biases keep the network differentiable there.
    w, b = net.get_parameters()
    net.set_parameters(w, [v + rng.normal(0.0, 0.1, v.shape) for v in b])
    return net, x, y


@SETTINGS
@given(problems())
def test_backprop_matches_finite_differences(problem):
    net, x, y = problem
    # floor=1e-5: entries smaller than that are compared absolutely (to 1e-9), since the central
    # differences' rounding noise (~1e-16·|C|/eps) dominates a relative error on a near-zero entry.
    report = bpgpu.gradcheck(net, x, y, max_entries=6, directions=2, floor=1e-5)
    assert max(report.values()) < 1e-4, (net, report)


@SETTINGS
@given(problems(dtypes=("float64", "float32")))
def test_batched_equals_per_example(problem):
    net, x, y = problem
    c1, w1, b1 = net.backprop(x, y)
    c2, w2, b2 = net.backprop_per_example(x, y)
    tol = 1e-11 if net.dtype_name == "float64" else 2e-5
    assert c1 == pytest.approx(c2, rel=tol, abs=tol)
    assert max_scaled_difference(w1 + b1, w2 + b2) <= tol


@SETTINGS
@given(problems(dtypes=("float64", "float32")))
def test_save_then_load_is_exact(tmp_path_factory, problem):
    net, x, _ = problem
    path = tmp_path_factory.mktemp("roundtrip") / "net.npz"
    net.save(path)
    loaded = bpgpu.load(path)
    assert loaded.config() == net.config()
    (w0, b0), (w1, b1) = net.get_parameters(), loaded.get_parameters()
    for a, b in zip(w0 + b0, w1 + b1):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(bpgpu.to_host(net.forward(x)), bpgpu.to_host(loaded.forward(x)))


# -- determinism -----------------------------------------------------------------------------------

TRAIN_AND_HASH = """
import hashlib, numpy as np, bpgpu
rng = np.random.default_rng(11)
x = rng.normal(size=(300, 8)); y = rng.integers(0, 4, size=300)
net = bpgpu.MLP([8, 16, 4], hidden="relu", seed=5)
history = net.fit(x, y, 3, 10, optimizer=bpgpu.Adam(1e-2), seed=9, progress=False)
w, b = net.get_parameters()
digest = hashlib.sha256(b"".join(a.tobytes() for a in w + b))
digest.update(np.asarray(history.columns["cost"]).tobytes())
print(digest.hexdigest())
"""


def _train_and_hash() -> str:
    import hashlib

    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 8))
    y = rng.integers(0, 4, size=300)
    net = bpgpu.MLP([8, 16, 4], hidden="relu", seed=5)
    history = net.fit(x, y, 3, 10, optimizer=bpgpu.Adam(1e-2), seed=9, progress=False)
    w, b = net.get_parameters()
    digest = hashlib.sha256(b"".join(a.tobytes() for a in w + b))
    digest.update(np.asarray(history.columns["cost"]).tobytes())
    return digest.hexdigest()


def test_one_seed_gives_bit_identical_training_run_after_run():
    """Same seed → the same weights and history bit for bit: twice in this process and in two fresh
    processes (NumPy, same machine and BLAS)."""
    import os
    import subprocess
    import sys

    here = _train_and_hash()
    assert _train_and_hash() == here
    env = {**os.environ, "BPGPU_DEVICE": "cpu"}
    runs = [subprocess.run([sys.executable, "-c", TRAIN_AND_HASH], capture_output=True, text=True, env=env,
                           check=True).stdout.strip() for _ in range(2)]
    assert runs[0] == runs[1] == here


def test_different_seeds_give_different_runs():
    a = bpgpu.MLP([3, 4, 2], seed=1).get_parameters()[0][0]
    b = bpgpu.MLP([3, 4, 2], seed=2).get_parameters()[0][0]
    assert not np.array_equal(a, b)


# -- any input: a result or a documented error ------------------------------------------------------

from hypothesis.extra import numpy as hnp  # noqa: E402

ANY_DTYPE = st.sampled_from([np.bool_, np.int8, np.uint8, np.int64, np.float16, np.float32, np.float64, np.complex64])


@st.composite
def any_array(draw):
    dtype = draw(ANY_DTYPE)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape, elements=None if dtype is not np.float64 else
                           st.floats(allow_nan=True, allow_infinity=True, width=64)))


def _documented(exc: BaseException) -> bool:
    if isinstance(exc, bpgpu.BpgpuError):
        return isinstance(exc, (ValueError, TypeError))
    return isinstance(exc, TypeError) and str(exc).startswith(("x ", "y "))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(any_array(), any_array())
def test_any_input_gives_a_result_or_a_documented_error(x, y):
    net = bpgpu.MLP([4, 3], dtype="float64", seed=0)
    for call in (lambda: net.fit(x, y, 1, 2, progress=False, seed=0), lambda: net.predict(x),
                 lambda: net.evaluate(x, y)):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - classifying is the point
            assert _documented(exc), f"{type(exc).__name__}: {exc}"
