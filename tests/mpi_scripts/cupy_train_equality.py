"""Run under mpirun with CuPy (real, or the test double through its PYTHONPATH shim): each rank takes
its local rank's GPU (device="gpu"), data-parallel ``fit`` through the CuPy step engine all-reduces one
flat gradient buffer per step and ends with the single-process weights; prints one JSON line on rank 0.

argv: the transport, "mpi" (MPIComm) or "nccl" (NCCLComm, MPI passing its id)."""

import json
import sys

import cupy
import numpy as np

import bpgpu
from bpgpu.backend.arrays import to_host
from bpgpu.distributed import init

comm = init(sys.argv[1] if len(sys.argv) > 1 else "mpi")
rng = np.random.default_rng(0)
x, labels = rng.normal(size=(37, 6)), rng.integers(0, 3, size=37)
net = bpgpu.MLP([6, 8, 5, 3], hidden="tanh", dtype="float64", seed=1, device="gpu")
hist = net.fit(x, labels, epochs=3, batch_size=8, optimizer=bpgpu.Adam(0.01), seed=7, progress=False, comm=comm)
mine = [to_host(p) for p in net.weights + net.biases]
report = {"rank": comm.rank, "device": net.backend.label, "gpu_buffers": comm.gpu_buffers,
          "engine_arrays": all(isinstance(p, cupy.ndarray) for p in net.weights)}
from mpi4py import MPI  # noqa: E402

devices = MPI.COMM_WORLD.gather(net.backend.label, root=0)
if comm.rank == 0:
    single = bpgpu.MLP([6, 8, 5, 3], hidden="tanh", dtype="float64", seed=1, device="cuda:0")
    ref = single.fit(x, labels, epochs=3, batch_size=8, optimizer=bpgpu.Adam(0.01), seed=7, progress=False)
    theirs = [to_host(p) for p in single.weights + single.biases]
    report["max_abs_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, theirs))
    report["cost_diff"] = max(abs(a - b) for a, b in zip(hist["cost"], ref["cost"]))
    report["devices"] = devices
    print(json.dumps(report))
