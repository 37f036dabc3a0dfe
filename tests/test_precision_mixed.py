"""Mixed precision (bpgpu/engines/mixed.py): float16 math, float32 master weights, dynamic loss
scaling. Oracles: the float32 generic engine (gradients within float16's resolution), float32 training
on the digits (accuracy within 0.5 percentage points), and the skip rule (an overflow leaves the
masters bit-identical, halves the scale)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import bpgpu
from bpgpu.data.digits import load_digits
from bpgpu.engines import StepConfig, make_engine
from bpgpu.engines.mixed import Engine as Mixed
from bpgpu.engines.mixed import LossScaler, compute_dtype
from bpgpu.training.optimizers import SGD
from helpers import max_scaled_difference

EPS16 = float(np.finfo(np.float16).eps)  # 9.8e-4
# float16's tolerance for a gradient: a few roundings along the chain W → Z → A → Δ (each ≤ eps/2),
# relative to the largest entry, as the cross-backend tolerances are (float32: 1e-5).
TOL16 = 4 * EPS16
(XTR, YTR), (XTE, YTE) = load_digits()


def _net(precision="mixed16", hidden="sigmoid", seed=1, **kw):
    net = bpgpu.MLP([64, 30, 10], hidden=hidden, seed=seed, **kw)
    net.precision = precision
    return net


@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "tanh"])
def test_gradients_equal_float32_within_float16_resolution(hidden):
    net = _net(hidden=hidden)
    x, y = net.as_features(XTR[:256]), net.as_targets(YTR[:256], 256)
    cost32, gw32, gb32 = make_engine(net, generic=True).gradients(x, y)
    cost16, gw16, gb16 = Mixed(net).gradients(x, y)
    assert all(g.dtype == np.float32 for g in gw16 + gb16)  # unscaled, in the masters' dtype
    assert max_scaled_difference(gw16 + gb16, gw32 + gb32) <= TOL16
    assert abs(float(cost16) - float(cost32)) <= 2 * EPS16 * abs(float(cost32))


def test_weighted_rows_match_float32():
    net = _net()
    x, y = net.as_features(XTR[:64]), net.as_targets(YTR[:64], 64)
    w = net.xp.asarray(np.random.default_rng(0).random(64).astype(np.float32))
    _, gw32, gb32 = make_engine(net, generic=True).gradients(x, y, w)
    _, gw16, gb16 = Mixed(net).gradients(x, y, w)
    assert max_scaled_difference(gw16 + gb16, gw32 + gb32) <= TOL16


def test_an_overflow_skips_the_step_and_halves_the_scale():
    net = _net()
    eng = Mixed(net, SGD(0.5), StepConfig(16))
    x, y = net.as_features(XTR[:64]), net.as_targets(YTR[:64], 64)
    before = [a.copy() for a in net.weights + net.biases]
    eng.start_epoch()
    eng.scaler.scale = 1e30  # S·Δ^L overflows float16 (max 65504): every gradient is inf/NaN
    eng.step(x, y, np.arange(16))
    assert eng.skipped_steps == 1 and eng.scaler.scale == 5e29
    for a, b in zip(net.weights + net.biases, before):
        assert np.array_equal(a, b)  # bit-identical masters, no NaN
    eng.scaler.scale = 1024.0
    eng.step(x, y, np.arange(16, 32))
    assert eng.skipped_steps == 1 and not np.array_equal(net.weights[0], before[0])
    stats = eng.end_epoch()
    assert stats.finite and all(np.isfinite(v) for v in stats.grad_norms)  # the skipped step's norms: not recorded
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)


def test_a_real_float16_overflow_is_caught():
    """Large inputs through relu layers: the scaled gradients overflow at S = 2^15 on their own; the
    scaler backs off until they fit, and no step ever writes inf into the masters."""
    net = _net(hidden="relu")
    eng = Mixed(net, SGD(1e-6), StepConfig(32))
    x = net.as_features(XTR[:32] * 400.0)
    y = net.as_targets(YTR[:32], 32)
    eng.start_epoch()
    for _ in range(20):
        eng.step(x, y, np.arange(32))
    assert eng.skipped_steps >= 1 and eng.scaler.scale < 2.0**15
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)


def test_the_scale_grows_after_a_run_of_good_steps():
    s = LossScaler(scale=8.0, growth_interval=3)
    assert [s.update(True) for _ in range(3)] == [True] * 3 and s.scale == 16.0
    assert s.update(False) is False and s.scale == 8.0 and s.good_steps == 0
    s = LossScaler(scale=2.0**15, growth_interval=1)
    s.update(True)
    assert s.scale == 2.0**15  # capped: S/m must stay below float16's max
    s = LossScaler(scale=2.0**-24)
    s.update(False)
    assert s.scale == 2.0**-24


@pytest.mark.parametrize("hidden,lr", [("sigmoid", 0.5), ("relu", 0.1)])
def test_digits_accuracy_within_half_a_point_of_float32(hidden, lr):
    """What users run: fit on the bundled digits, float32 against mixed16 (same seed and batches)."""
    acc = {}
    for precision in (None, "mixed16"):
        net = bpgpu.MLP([64, 30, 10], hidden=hidden, seed=0, precision=precision)
        net.fit(XTR, YTR, 10, 16, optimizer=SGD(lr), progress=False, seed=0)
        acc[precision] = net.evaluate(XTE, YTE)["accuracy"]
        assert (type(net.engine()).__module__ == "bpgpu.engines.mixed") == (precision == "mixed16")
    assert acc[None] > 0.93
    assert abs(acc["mixed16"] - acc[None]) <= 0.005, acc


def test_mlp_precision_argument():
    net = bpgpu.MLP([4, 3, 2], precision="mixed16")
    assert net.precision == "mixed16" and "precision='mixed16'" in repr(net)
    assert bpgpu.MLP([4, 3, 2]).precision == "float32" and "precision" not in repr(bpgpu.MLP([4, 3, 2]))
    assert bpgpu.MLP([4, 3, 2], dtype="float64", precision="float64").precision == "float64"
    with pytest.raises(bpgpu.ConfigError, match="valid: float32, float64, mixed16, mixedbf16"):
        bpgpu.MLP([4, 3, 2], precision="half")
    with pytest.raises(bpgpu.ConfigError, match="float32 master weights"):
        bpgpu.MLP([4, 3, 2], dtype="float64", precision="mixed16")
    with pytest.raises(bpgpu.ConfigError, match="contradicts dtype='float32'"):
        bpgpu.MLP([4, 3, 2], precision="float64")
    with pytest.raises(bpgpu.ConfigError, match="mixedbf16.*torch"):
        bpgpu.MLP([4, 3, 2], precision="mixedbf16")  # NumPy has no bfloat16 arithmetic
    copy = net.copy()
    assert copy.precision == "mixed16" and type(copy.engine()).__module__ == "bpgpu.engines.mixed"


def test_fit_with_an_overflowing_scale_keeps_finite_weights_and_trains(caplog):
    """fit through the mixed engine from an absurd initial scale: the first steps overflow and are
    skipped (the scale halves each time), then training proceeds; no NaN ever reaches the masters."""
    from bpgpu.engines import mixed

    net = bpgpu.MLP([64, 30, 10], seed=0, precision="mixed16")
    real = mixed.LossScaler.__init__

    def huge(self, scale=2.0**15, **kw):
        real(self, scale=2.0**40, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(mixed.LossScaler, "__init__", huge)
    try:
        with caplog.at_level(logging.INFO, logger="bpgpu"):
            hist = net.fit(XTR, YTR, 3, 16, optimizer=SGD(0.5), progress=False, seed=0)
    finally:
        mp.undo()
    assert "mixed precision: " in caplog.text and "steps skipped this epoch" in caplog.text
    assert all(np.isfinite(w).all() for w in net.get_parameters()[0])
    assert hist.cost[-1] < hist.cost[0] and net.evaluate(XTE, YTE)["accuracy"] > 0.8


def test_outputs_are_float32_from_a_float16_forward():
    net = _net()
    z, a = Mixed(net).outputs(net.as_features(XTE[:8]))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, net.forward(XTE[:8]), atol=4 * EPS16)


def test_bfloat16_needs_torch_and_float64_masters_are_refused():
    with pytest.raises(bpgpu.ConfigError, match="mixedbf16.*numpy does not have"):
        compute_dtype(_net().backend, "mixedbf16")
    with pytest.raises(bpgpu.ConfigError, match="float32 master weights.*dtype='float32'"):
        Mixed(_net(dtype="float64"))


def test_bfloat16_on_torch_matches_float32_within_bfloat16_resolution():
    torch = pytest.importorskip("torch")
    net = _net("mixedbf16", xp=torch, device="cpu")
    x, y = net.as_features(XTR[:128]), net.as_targets(YTR[:128], 128)
    eng = Mixed(net)
    assert eng.compute == torch.bfloat16 and eng.scaler.scale == 1.0
    _, gw32, gb32 = make_engine(net, generic=True).gradients(x, y)
    _, gw, gb = eng.gradients(x, y)
    assert max_scaled_difference(gw + gb, gw32 + gb32) <= 4 * 2.0**-7  # bfloat16 eps = 2^-7


@pytest.mark.gpu
def test_mixed16_on_cupy_matches_the_cpu(gpu_cupy):
    """On the CuPy test double (and real CuPy where a card is): the same float16 math on the GPU."""
    cpu = _net()
    gpu = cpu.copy(device="cuda:0")
    gpu.precision = "mixed16"
    x, y = XTR[:64], YTR[:64]
    _, gw_c, gb_c = Mixed(cpu).gradients(cpu.as_features(x), cpu.as_targets(y, 64))
    with gpu.backend.activate():
        eng = Mixed(gpu, SGD(0.5), StepConfig(16))
        xg, yg = gpu.as_features(x), gpu.as_targets(y, 64)
        _, gw_g, gb_g = eng.gradients(xg, yg)
        assert max_scaled_difference(gw_g + gb_g, gw_c + gb_c) <= TOL16
        eng.start_epoch()
        eng.step(xg, yg, gpu_cupy.arange(16))
        assert eng.end_epoch().finite and eng.skipped_steps == 0


def test_bpgpu_train_precision_flag(capsys):
    from bpgpu.cli.main import main

    assert main(["train", "--epochs", "1", "--no-progress", "--sizes", "64,16,10", "--precision", "mixed16"]) == 0
    out = capsys.readouterr().out
    assert "precision='mixed16'" in out and "test accuracy" in out
    assert main(["train", "--epochs", "1", "--precision", "mixed16", "--dtype", "float64"]) == 1
    assert "--precision mixed16 keeps float32 master weights" in capsys.readouterr().err


def test_save_load_and_checkpoints_keep_the_precision(tmp_path):
    net = bpgpu.MLP([64, 12, 10], seed=0, precision="mixed16")
    path = net.save(tmp_path / "m.npz")
    back = bpgpu.load(path)
    assert back.precision == "mixed16" and type(back.engine()).__module__ == "bpgpu.engines.mixed"
    assert bpgpu.load(path, dtype="float64").precision == "float64"  # a float64 copy is plain float64
    assert bpgpu.load(bpgpu.MLP([4, 3, 2]).save(tmp_path / "p.npz")).precision == "float32"
    ck = tmp_path / "ck.npz"
    net.fit(XTR[:64], YTR[:64], 1, 16, progress=False, seed=0, checkpoint=ck)
    with pytest.raises(bpgpu.ConfigError, match="precision"):
        bpgpu.MLP([64, 12, 10], seed=0).fit(XTR[:64], YTR[:64], 2, 16, progress=False, resume=ck)
