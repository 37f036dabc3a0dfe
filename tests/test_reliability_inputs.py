"""Reliability, arguments and data: errors name the argument (fit's seed, NumPy scalars as x) and
say what is really wrong (float64 data that overflows a float32 network is not "NaN or infinite")."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.errors import ConfigError, DataError, ShapeError

X = np.random.default_rng(0).normal(size=(8, 3))
Y = np.arange(8) % 2


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, [1]])
def test_fit_seed_errors_name_the_argument(seed):
    net = bpgpu.MLP([3, 2], seed=0)
    with pytest.raises(ConfigError) as info:
        net.fit(X, Y, 1, 4, seed=seed, progress=False)
    assert "seed" in str(info.value) and repr(seed)[:5] in str(info.value)


@pytest.mark.parametrize("scalar", [np.float32(3.0), np.float64(2.0), np.int64(3)], ids=["f32", "f64", "i64"])
@pytest.mark.parametrize("call", ["forward", "predict", "fit"])
def test_a_numpy_scalar_as_x_is_a_shape_error_naming_x(scalar, call):
    net = bpgpu.MLP([3, 2], seed=0)
    args = (scalar, Y, 1) if call == "fit" else (scalar,)
    with pytest.raises(ShapeError, match=r"^x must be 2-D"):
        getattr(net, call)(*args, **({"progress": False} if call == "fit" else {}))


@pytest.mark.parametrize("xp_name", ["numpy", "torch"])
def test_float64_beyond_float32s_range_says_it_overflows(xp_name):
    x = X.copy()
    x[2, 1] = 1e300
    if xp_name == "torch":
        torch = pytest.importorskip("torch", reason="torch is optional: the torch case needs it")
        net = bpgpu.MLP([3, 2], seed=0, xp=torch, device="cpu")
        x = torch.asarray(x)
    else:
        net = bpgpu.MLP([3, 2], seed=0)
    with pytest.raises(DataError) as info:
        net.forward(x)
    msg = str(info.value)
    assert "overflows float32" in msg and "x holds 1e+300" in msg and "NaN" not in msg
    assert bpgpu.MLP([3, 2], seed=0, dtype="float64").forward(X).shape == (8, 2)  # float64 holds it


def test_real_nans_are_still_reported_as_nans():
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        bpgpu.MLP([3, 2], seed=0).forward(x)
