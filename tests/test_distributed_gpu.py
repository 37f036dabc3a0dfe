"""The GPU transports: NCCLComm over cupy.cuda.nccl (one process, where a GPU is usable), and MPIComm
with CuPy buffers (device-direct or staged via host) and data-parallel fit through the CuPy engine,
under mpirun on the CuPy test double (each rank's ``import cupy`` gets it via a PYTHONPATH shim) and
on real CuPy where a GPU is usable."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

import bpgpu
from mpi_helpers import run_script

pytestmark = pytest.mark.gpu
SHIM = pathlib.Path(__file__).resolve().parent / "cupy_double" / "shim"
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(params=["double", "cupy"])
def ranks_cupy(request) -> dict:
    """Environment for mpirun'd scripts: the test double (PYTHONPATH shim) or real CuPy (needs a GPU)."""
    if request.param == "cupy":
        request.getfixturevalue("need_gpu")
        return {}
    return {"PYTHONPATH": os.pathsep.join([str(SHIM), str(REPO)])}




def _nccl_comm():
    from bpgpu.distributed.nccl import NCCLComm

    try:
        return NCCLComm()
    except bpgpu.DeviceError as exc:
        pytest.skip(str(exc))


@pytest.mark.usefixtures("gpu_cupy")
def test_nccl_one_process_collectives_and_fit():
    import cupy

    comm = _nccl_comm()
    assert (comm.rank, comm.size, comm.device) == (0, 1, "cuda:0")
    assert "nccl" in comm.describe()
    a = [cupy.arange(6, dtype=cupy.float64).reshape(2, 3), cupy.ones(4, dtype=cupy.float64)]
    out = comm.allreduce_sum(a)
    assert all(isinstance(o, cupy.ndarray) and bool((o == x).all()) for o, x in zip(out, a))
    assert bool((comm.broadcast(a)[0] == a[0]).all())
    assert comm.allreduce_scalar(2.5) == 2.5
    comm.barrier()
    with pytest.raises(bpgpu.DeviceMismatchError, match="NCCLComm works on CuPy arrays"):
        comm.allreduce_sum([np.ones(2)])
    net = bpgpu.MLP([5, 6, 3], dtype="float64", seed=0, device=comm.device)
    ref = net.copy()
    x, y = np.random.default_rng(0).normal(size=(20, 5)), np.arange(20) % 3
    net.fit(x, y, epochs=2, batch_size=4, seed=1, progress=False, comm=comm)
    ref.fit(x, y, epochs=2, batch_size=4, seed=1, progress=False)
    diff = max(float(abs(p - q).max()) for p, q in zip(net.weights, ref.weights))
    assert diff < 1e-12


@pytest.mark.mpi
def test_mpi_with_cupy_buffers_two_ranks(ranks_cupy):
    out = run_script(2, "cupy_collectives.py", timeout=120, BPGPU_DEVICE="cuda:0", **ranks_cupy)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["max_abs_diff"] < 1e-12
    assert report["gpu_buffers"] in ("device", "host")


@pytest.mark.mpi
@pytest.mark.parametrize("transport", ["mpi", "nccl"])
def test_data_parallel_fit_on_the_cupy_engine_each_rank_on_its_local_gpu(ranks_cupy, transport):
    out = run_script(2, "cupy_train_equality.py", transport, timeout=180, **ranks_cupy)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["engine_arrays"] and report["max_abs_diff"] < 1e-12 and report["cost_diff"] < 1e-12, report
    if ranks_cupy:  # the double has two devices: local ranks 0 and 1 take cuda:0 and cuda:1
        assert report["devices"] == ["cuda:0", "cuda:1"], report
