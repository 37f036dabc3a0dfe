"""Issue 10 row 6: a user's own loop over batches already on the GPU. ``net.backprop/cost/evaluate``
validate device arrays by reading their values back (finiteness, label range, probabilities: several
host syncs per call); with ``check=False`` they read nothing back, and the cost is the call's only
sync. Counted on the CuPy test double."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu

pytestmark = pytest.mark.gpu

RNG = np.random.default_rng(0)
X = RNG.random((32, 6)).astype(np.float32)
LABELS = RNG.integers(0, 3, 32)


def _syncs(double, call) -> int:
    call()  # warm (engine made, workspaces allocated)
    with double.record() as rec:
        call()
    return rec.n_syncs


def test_check_false_reads_nothing_back_for_device_arrays(cupy_double):
    cupy = cupy_double.cupy
    net = bpgpu.MLP([6, 5, 3], device="cuda:0", seed=0)
    x, labels = cupy.asarray(X), cupy.asarray(LABELS)
    onehot = cupy.asarray(np.eye(3, dtype=np.float32)[LABELS])
    for y in (labels, onehot):
        checked = _syncs(cupy_double, lambda: net.backprop(x, y))
        trusted = _syncs(cupy_double, lambda: net.backprop(x, y, check=False))
        assert trusted == 1 and checked > trusted, (checked, trusted)  # float(cost) only
        assert checked <= 5, checked  # x finite, labels' range, y finite, probabilities, cost: one read each
        assert _syncs(cupy_double, lambda: net.cost(x, y, check=False)) == 1
    assert _syncs(cupy_double, lambda: net.evaluate(x, labels, check=False)) <= 3  # cost, accuracy, n
    a, b = net.backprop(x, labels), net.backprop(x, labels, check=False)
    assert a[0] == b[0] and all(np.array_equal(bpgpu.to_host(g), bpgpu.to_host(h)) for g, h in zip(a[1], b[1]))


def test_check_false_still_checks_shapes_and_host_data(cupy_double):
    cupy = cupy_double.cupy
    net = bpgpu.MLP([6, 5, 3], device="cuda:0", seed=0)
    with pytest.raises(bpgpu.ShapeError):
        net.backprop(cupy.asarray(X[:, :4]), cupy.asarray(LABELS), check=False)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(bpgpu.DataError, match="NaN"):  # host data is always checked
        net.backprop(bad, LABELS, check=False)
    with pytest.raises(bpgpu.DataError, match="NaN"):  # and device data by default
        net.backprop(cupy.asarray(bad), cupy.asarray(LABELS))
