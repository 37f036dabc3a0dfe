"""The initialisers: empirical spread of Nielsen's, Glorot's and He's weights, and the defaults."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.backend.random import initial_parameters
from bpgpu.errors import ConfigError


@pytest.mark.parametrize(
    "init, std, bias_zero",
    [("nielsen", lambda n_in, n_out: 1 / np.sqrt(n_in), False),
     ("glorot", lambda n_in, n_out: np.sqrt(2.0 / (n_in + n_out)), True),
     ("he", lambda n_in, n_out: np.sqrt(2.0 / n_in), True)],
)
def test_empirical_std(init, std, bias_zero):
    weights, biases = initial_parameters([400, 300, 10], init, seed=0)
    for w, b in zip(weights, biases):
        n_out, n_in = w.shape
        assert abs(w.mean()) < 0.05 * std(n_in, n_out)
        assert w.std() == pytest.approx(std(n_in, n_out), rel=0.05 if w.size > 10_000 else 0.1)
        if bias_zero:
            assert np.all(b == 0)
        else:
            assert b.std() == pytest.approx(1.0, rel=0.25)
    if init == "glorot":
        r = np.sqrt(6.0 / 700)
        assert np.abs(weights[0]).max() <= r


@pytest.mark.parametrize("hidden, init", [("sigmoid", "nielsen"), ("tanh", "glorot"), ("identity", "glorot"), ("relu", "he")])
def test_default_init_matches_the_activation(hidden, init):
    assert bpgpu.MLP([3, 4, 2], hidden=hidden).init == init


def test_same_seed_same_weights_and_unknown_init():
    a, b = bpgpu.MLP([5, 4, 2], seed=3), bpgpu.MLP([5, 4, 2], seed=3)
    for p, q in zip(a.get_parameters()[0], b.get_parameters()[0]):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ConfigError):
        bpgpu.MLP([3, 2], init="lecun")
