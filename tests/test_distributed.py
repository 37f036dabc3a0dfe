"""Data-parallel plumbing that needs no second process: shard bounds, LocalComm, init() selection,
packing, the CUDA-awareness decision, error guards, and the import discipline of the 1-process path.
The multi-process tests (mpirun -np 2 / 3) are in test_distributed_mpi.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpgpu
from bpgpu.distributed import MPI_ENV_VARS, LocalComm, abort_on_error, init, launched_by_mpi, shard_bounds
from bpgpu.distributed import packing


@settings(max_examples=200, deadline=None)
@given(m=st.integers(0, 500), size=st.integers(1, 17))
def test_shards_tile_the_batch_and_differ_by_at_most_one(m, size):
    bounds = [shard_bounds(m, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == m
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1
    assert sum(lengths) == m


def test_scaled_shard_gradients_sum_to_the_full_batch_gradient_in_one_process():
    """The identity the data-parallel step relies on, without MPI: Σ_r (m_r/m)·∇C_r = ∇C."""
    rng = np.random.default_rng(1)
    m, size = 13, 4
    x, labels = rng.normal(size=(m, 5)), rng.integers(0, 3, size=m)
    net = bpgpu.MLP([5, 7, 3], hidden="relu", dtype="float64", seed=2)
    total = None
    for r in range(size):
        a, b = shard_bounds(m, r, size)
        _, gw, gb = net.backprop(x[a:b], labels[a:b])
        part = [g * ((b - a) / m) for g in gw + gb]
        total = part if total is None else [t + p for t, p in zip(total, part)]
    _, fw, fb = net.backprop(x, labels)
    assert max(float(np.max(np.abs(t - f))) for t, f in zip(total, fw + fb)) < 1e-12


def test_local_comm_is_the_identity():
    comm = LocalComm()
    arrays = [np.arange(3.0), np.ones((2, 2))]
    assert comm.rank == 0 and comm.size == 1 and comm.is_root and comm.name == "local"
    assert all(a is b for a, b in zip(comm.allreduce_sum(arrays), arrays))
    assert all(a is b for a, b in zip(comm.broadcast(arrays), arrays))
    assert comm.allreduce_scalar(2.5) == 2.5
    comm.barrier()
    assert "1 process" in comm.describe()


def test_launch_detection_reads_the_launcher_variables():
    assert not launched_by_mpi({})
    assert not launched_by_mpi({"SLURM_PROCID": "0"})  # srun without MPI is not MPI
    for var in MPI_ENV_VARS:
        assert launched_by_mpi({var: "2"}), var


def test_init_without_a_launcher_is_local(monkeypatch):
    for var in MPI_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert isinstance(init(), LocalComm)
    assert isinstance(init("auto"), LocalComm)
    assert isinstance(init("none"), LocalComm)


def test_init_rejects_an_unknown_backend():
    with pytest.raises(bpgpu.ConfigError, match="unknown.*expected one of auto, none, local, mpi, nccl"):
        init("gloo")


def test_single_process_path_imports_neither_mpi4py_nor_cupy():
    code = (
        "import sys, numpy as np, bpgpu, bpgpu.distributed as d\n"
        "comm = d.init()\n"
        "net = bpgpu.MLP([3, 4, 2], seed=0)\n"
        "comm.allreduce_sum(net.backprop(np.ones((2, 3)), np.array([0, 1]))[1])\n"
        "print(type(comm).__name__, any(m.split('.')[0] in ('mpi4py', 'cupy', 'cupyx') for m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in MPI_ENV_VARS and not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**env, "BPGPU_DEVICE": "cpu"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LocalComm", "False"]


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_nccl_without_cupy_is_a_clear_device_error():
    with pytest.raises(bpgpu.DeviceError, match=r"backend='nccl' needs CuPy.*pip install '\.\[cuda12\]' \(or '\.\[cuda13\]'\) from the bpgpu checkout"):
        init("nccl")


def _namespaces():
    out = [pytest.param(np, None, id="numpy")]
    if importlib.util.find_spec("array_api_strict"):
        import array_api_strict as xps

        out.append(pytest.param(xps, xps.Device("device1"), id="strict-device1"))
    if importlib.util.find_spec("torch"):
        out.append(pytest.param("torch", "cpu", id="torch"))
    return out


@pytest.mark.parametrize("xp, device", _namespaces())
def test_pack_unpack_round_trip(xp, device):
    if xp == "torch":
        xp = pytest.importorskip("torch")
    kwargs = {} if device is None else {"device": device}
    arrays = [xp.reshape(xp.arange(6, dtype=xp.float64, **kwargs), (2, 3)), xp.asarray([7.0], dtype=xp.float64, **kwargs),
              xp.zeros((0,), dtype=xp.float64, **kwargs)]
    assert packing.can_pack(arrays)
    flat = packing.pack(arrays)
    assert tuple(flat.shape) == (7,)
    back = packing.unpack(flat, arrays)
    assert [tuple(b.shape) for b in back] == [(2, 3), (1,), (0,)]
    assert np.array_equal(bpgpu.to_host(back[0]), np.arange(6.0).reshape(2, 3))
    assert not packing.can_pack([np.ones(2), np.ones(2, dtype=np.float32)])
    assert not packing.can_pack([])


class _FakeMPI:
    def __init__(self, version: str, cuda: bool | None = None) -> None:
        self._version = version
        if cuda is not None:
            self.Query_cuda_support = lambda: cuda

    def Get_library_version(self) -> str:
        return self._version


def test_cuda_awareness_is_decided_conservatively(monkeypatch):
    from bpgpu.distributed.mpi import CUDA_AWARE_ENV, query_cuda_aware

    monkeypatch.delenv(CUDA_AWARE_ENV, raising=False)
    assert query_cuda_aware(_FakeMPI("MPICH Version: 4.2")) == (
        False, "no CUDA-awareness query available (assumed not CUDA-aware)")
    assert query_cuda_aware(_FakeMPI("MPICH", cuda=True)) == (True, "MPI.Query_cuda_support()")
    monkeypatch.setenv(CUDA_AWARE_ENV, "0")
    assert query_cuda_aware(_FakeMPI("MPICH", cuda=True)) == (False, f"{CUDA_AWARE_ENV}=0")
    monkeypatch.setenv(CUDA_AWARE_ENV, "1")
    assert query_cuda_aware(_FakeMPI("MPICH"))[0] is True


def test_abort_on_error_with_one_process_re_raises_the_original_error():
    with pytest.raises(ValueError, match="boom"):
        with abort_on_error(LocalComm()):
            raise ValueError("boom")


def test_abort_on_error_with_several_ranks_reports_and_aborts(capsys):
    aborted = []
    comm = types.SimpleNamespace(rank=1, size=3, abort=lambda code=1: aborted.append(code))
    with pytest.raises(KeyError):
        with abort_on_error(comm):
            raise KeyError("missing")
    assert aborted == [1]
    err = capsys.readouterr().err
    assert "rank 1 of 3 raised KeyError; aborting all ranks" in err and "[rank 1] KeyError: 'missing'" in err
    with pytest.raises(SystemExit):
        with abort_on_error(comm):
            raise SystemExit(4)
    assert aborted == [1, 4]
    with pytest.raises(SystemExit):  # a clean exit is not an error
        with abort_on_error(comm):
            raise SystemExit(0)
    assert aborted == [1, 4]


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_train_cli_with_nccl_but_no_cupy_says_why(capsys):
    from bpgpu.cli.main import main

    assert main(["train", "--distributed", "nccl", "--epochs", "1", "--no-progress"]) == 1
    assert "bpgpu train: error: backend='nccl' needs CuPy" in capsys.readouterr().err


def test_train_cli_without_a_launcher_runs_one_process(monkeypatch, capsys):
    from bpgpu.cli.main import main

    for var in MPI_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert main(["train", "--epochs", "1", "--no-progress", "--sizes", "64,16,10"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "parallel:" not in out
