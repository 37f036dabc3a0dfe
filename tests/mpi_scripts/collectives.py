"""Run under mpirun: broadcast, mixed-dtype and non-NumPy (array-api-strict, staged through host
memory) collectives. Rank 0 prints one JSON line; any failed check raises (and aborts all ranks)."""

import json

import numpy as np

import bpgpu
from bpgpu.distributed import init

comm = init()
r, n = comm.rank, comm.size

# broadcast: ranks start from different seeds and end with rank 0's parameters
net = bpgpu.MLP([4, 5, 3], dtype="float64", seed=100 + r)
w, b = net.get_parameters()
got = comm.broadcast(net.weights + net.biases, root=0)
ref = bpgpu.MLP([4, 5, 3], dtype="float64", seed=100)
assert all(np.array_equal(g, e) for g, e in zip(got, ref.weights + ref.biases)), "broadcast differs from rank 0"

# allreduce of mixed dtypes (one collective per array) keeps each dtype
out = comm.allreduce_sum([np.full(3, r + 1.0), np.full((2, 2), r + 1.0, dtype=np.float32)])
total = n * (n + 1) / 2
assert out[0].dtype == np.float64 and out[1].dtype == np.float32
assert np.all(out[0] == total) and np.all(out[1] == total)

# the inputs are not modified in place
mine = [np.full(2, float(r))]
comm.allreduce_sum(mine)
assert np.all(mine[0] == r)

# array-api-strict arrays on a non-default device: staged through the host, returned on their device
import array_api_strict as xps

dev = xps.Device("device1")
s = comm.allreduce_sum([xps.full((2, 3), float(r + 1), dtype=xps.float64, device=dev)])[0]
assert s.device == dev and type(s).__module__.startswith("array_api_strict")
assert np.all(bpgpu.to_host(s) == total)

assert comm.allreduce_scalar(r + 1.0) == total
comm.barrier()
if r == 0:
    print(json.dumps({"size": n, "ok": True, "cuda_aware": comm.cuda_aware, "gpu_buffers": comm.gpu_buffers}))
