"""Run under mpirun on a GPU machine: MPIComm all-reduces CuPy gradients (directly when MPI is
CUDA-aware, else staged through host memory) and they equal the full-batch gradients."""

import json

import cupy
import numpy as np

import bpgpu
from bpgpu.distributed import init, shard_bounds

comm = init("mpi")
m = 10
rng = np.random.default_rng(0)
x, labels = rng.normal(size=(m, 4)), rng.integers(0, 3, size=m)
net = bpgpu.MLP([4, 6, 3], dtype="float64", seed=1, device="cuda:0")
a, b = shard_bounds(m, comm.rank, comm.size)
_, gw, gb = net.backprop(x[a:b], labels[a:b])
summed = comm.allreduce_sum([g * ((b - a) / m) for g in gw + gb])
assert all(isinstance(s, cupy.ndarray) for s in summed)
_, fw, fb = net.backprop(x, labels)
diff = max(float(cupy.abs(s - f).max()) for s, f in zip(summed, fw + fb))
if comm.rank == 0:
    print(json.dumps({"max_abs_diff": diff, "gpu_buffers": comm.gpu_buffers, "describe": comm.describe()}))
