"""TF32: off unless asked (tf32= / BPGPU_TF32), and reported as CuPy really computes float32 GEMMs —
read back from CuPy's compute type, not guessed from CUPY_TF32. CuPy's rules (cupy/_core/
_routines_linalg.pyx: undecided until first use, then CUPY_TF32; TF32 only on compute capability ≥ 8.0)
are played by a fake cupy module."""

from __future__ import annotations

import logging
import sys
import types
import warnings

import numpy as np
import pytest

import bpgpu
from bpgpu.backend import precision
from bpgpu.backend.device import Backend


def fake_cupy_compute(capability=90, decided=None):
    """A ``cupy`` with CuPy 14's float32 compute-type rules: TBD (0) until asked, then
    TF32 (7) if CUPY_TF32 > 0 else DEFAULT (1); TF32 on a card below 8.0 warns and gives DEFAULT."""
    import os

    state = {"float32": decided if decided is not None else 0, "sets": []}

    def set_compute_type(dtype, value):
        assert np.dtype(dtype) == np.float32
        if value == 7 and capability < 80:
            warnings.warn("COMPUTE_TYPE_BF16 and COMPUTE_TYPE_TF32 are only available on GPUs with compute "
                          "capability 8.0 or higher. COMPUTE_TYPE_DEFAULT will be used instead.")
            value = 1
        state["float32"] = value
        state["sets"].append(value)

    def get_compute_type(dtype):
        if state["float32"] == 0:
            set_compute_type(dtype, 7 if int(os.getenv("CUPY_TF32", "0")) > 0 else 1)
        return state["float32"]

    core = types.SimpleNamespace(get_compute_type=get_compute_type, set_compute_type=set_compute_type)
    return types.SimpleNamespace(_core=core, ndarray=type("ndarray", (), {})), state


CUPY = Backend(xp=None, device=None, name="cupy")


def test_tf32_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv("BPGPU_TF32", raising=False)
    monkeypatch.setenv("CUPY_TF32", "1")  # CuPy's variable alone does not opt bpgpu in
    assert precision.tf32_requested() is False
    monkeypatch.setenv("BPGPU_TF32", "1")
    assert precision.tf32_requested() is True
    assert precision.tf32_requested(False) is False  # the argument wins over the variable
    monkeypatch.setenv("BPGPU_TF32", "off")
    assert precision.tf32_requested() is False and precision.tf32_requested(True) is True


def test_bad_tf32_values_name_the_variable_or_argument(monkeypatch):
    monkeypatch.setenv("BPGPU_TF32", "maybe")
    with pytest.raises(bpgpu.ConfigError, match="BPGPU_TF32='maybe'.*use 1"):
        precision.tf32_requested()
    with pytest.raises(bpgpu.ConfigError, match="tf32 must be True, False or None"):
        precision.tf32_requested(1)


def test_the_report_reads_cupys_compute_type_back(monkeypatch):
    """CUPY_TF32=1 set after CuPy already decided (a GEMM ran first) changes nothing: the report says
    what CuPy does, not what the variable says."""
    monkeypatch.delenv("BPGPU_TF32", raising=False)
    monkeypatch.setenv("CUPY_TF32", "1")
    module, _ = fake_cupy_compute()
    monkeypatch.setitem(sys.modules, "cupy", module)
    rep = precision.tf32_report(gpu_usable=True)
    assert rep["cupy_float32_compute_type"] == "COMPUTE_TYPE_TF32"
    assert rep["cublas_float32_compute_type"] == "CUBLAS_COMPUTE_32F_FAST_TF32"
    assert rep["bpgpu"] == "off" and rep["bpgpu_cublas_float32_compute_type"] == "CUBLAS_COMPUTE_32F"
    module, _ = fake_cupy_compute(decided=1)
    monkeypatch.setitem(sys.modules, "cupy", module)
    rep = precision.tf32_report(gpu_usable=True)
    assert rep["CUPY_TF32"] == "1" and rep["cupy_float32_compute_type"] == "COMPUTE_TYPE_DEFAULT"
    assert "CuPy now COMPUTE_TYPE_DEFAULT = CUBLAS_COMPUTE_32F" in precision.tf32_summary(rep)


def test_the_scope_sets_and_restores_cupys_compute_type(monkeypatch):
    module, state = fake_cupy_compute(decided=1)
    monkeypatch.setitem(sys.modules, "cupy", module)
    with precision.tf32_scope(CUPY, True):
        assert state["float32"] == 7
    assert state["float32"] == 1
    with precision.tf32_scope(CUPY, False):  # already DEFAULT: nothing to set
        assert state["float32"] == 1
    assert state["sets"] == [7, 1]
    module, state = fake_cupy_compute(decided=7)  # the user's CUPY_TF32=1 for their own code ...
    monkeypatch.setitem(sys.modules, "cupy", module)
    with precision.tf32_scope(CUPY, False):  # ... bpgpu's default still computes in full float32
        assert state["float32"] == 1
    assert state["float32"] == 7


def test_tf32_on_a_pre_ampere_card_is_logged_and_runs_in_float32(monkeypatch, caplog):
    module, state = fake_cupy_compute(capability=75, decided=1)
    monkeypatch.setitem(sys.modules, "cupy", module)
    with caplog.at_level(logging.WARNING, logger="bpgpu"):
        with precision.tf32_scope(CUPY, True):
            assert state["float32"] == 1
    assert "TF32 was asked for" in caplog.text and "compute capability 8.0" in caplog.text


def test_other_backends_have_no_tf32_and_the_scope_is_a_no_op(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # would fail if touched
    with precision.tf32_scope(bpgpu.MLP([2, 2]).backend, True):
        pass


def test_info_and_bench_reports_carry_the_tf32_state(monkeypatch):
    from bpgpu.bench.machine import gpu_info
    from bpgpu.cli.info import gather

    monkeypatch.setenv("BPGPU_TF32", "1")
    assert gather()["tf32"].startswith("bpgpu on (BPGPU_TF32='1')")
    assert gpu_info()["tf32"]["bpgpu"] == "on"
    monkeypatch.delenv("BPGPU_TF32")
    assert gather()["tf32"].startswith("bpgpu off (default (off))")


def test_precision_names():
    assert precision.check_precision("Mixed16") == "mixed16"
    with pytest.raises(bpgpu.ConfigError, match="valid: float32, float64, mixed16, mixedbf16"):
        precision.check_precision("half")


def test_every_bench_report_has_the_tf32_line(monkeypatch):
    from bpgpu.bench.machine import gpu_info
    from bpgpu.bench.report import machine_lines

    monkeypatch.setenv("BPGPU_TF32", "0")
    machine = {"cpu": "a CPU", "usable_cores": 2, "logical_cores": 2, "blas": [], "env": {}, "gpu": gpu_info(),
               "torch": {"status": "not installed"}, "scikit-learn": "not installed", "platform": "Linux",
               "python": "3.11"}  # the fields machine_info() gives, without importing the peers
    line = next(x for x in machine_lines(machine) if x.startswith("- GPU:"))
    assert "TF32 — bpgpu off (BPGPU_TF32='0'); CUPY_TF32=" in line


def test_a_backend_activates_its_tf32_choice_with_its_device(monkeypatch):
    """Backend.activate() (entered by every network operation) sets CuPy's float32 compute type to
    the backend's TF32 choice and restores it; TF32 does not change which device a backend is."""
    import dataclasses

    module, state = fake_cupy_compute(decided=1)
    entered = []

    class Device:
        def __init__(self, i):
            self.id = i

        def __enter__(self):
            entered.append(self.id)

        def __exit__(self, *exc):
            return False

    module.cuda = types.SimpleNamespace(Device=Device)
    monkeypatch.setitem(sys.modules, "cupy", module)
    on = Backend(xp=None, device=Device(1), name="cupy", tf32=True)
    off = dataclasses.replace(on, tf32=False)
    assert on == off
    with on.activate():
        assert state["float32"] == 7 and entered == [1]
    assert state["float32"] == 1
    with off.activate():
        assert state["float32"] == 1


@pytest.mark.gpu
def test_mlp_tf32_is_in_force_during_the_networks_own_operations(cupy_double, monkeypatch):
    """MLP(tf32=True) on the CuPy test double, given CuPy's compute-type API (faked): the network's
    matrix products run under COMPUTE_TYPE_TF32, everything else under what CuPy had before."""
    module, state = fake_cupy_compute(decided=1)
    monkeypatch.setattr(cupy_double.cupy, "_core", module._core, raising=False)
    monkeypatch.delenv("BPGPU_TF32", raising=False)
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    net = bpgpu.MLP([3, 4, 2], device="cuda:0", tf32=True, seed=0)
    assert net.backend.tf32 and "tf32=True" in repr(net)
    during = []
    engine = net.engine()
    real = engine.outputs
    monkeypatch.setattr(engine, "outputs", lambda xs: during.append(state["float32"]) or real(xs))
    net.forward(x)
    assert during == [7] and state["float32"] == 1
    net.to("cuda:1")
    assert net.backend.tf32 and net.copy().backend.tf32  # the choice travels with the network
    plain = bpgpu.MLP([3, 4, 2], device="cuda:0", seed=0)
    assert not plain.backend.tf32 and "tf32" not in repr(plain)
    monkeypatch.setenv("BPGPU_TF32", "1")
    assert bpgpu.MLP([3, 4, 2], device="cuda:0").backend.tf32
