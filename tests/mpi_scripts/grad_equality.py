"""Run under mpirun: each rank backprops its shard of one batch (scaled by m_r/m), allreduce_sum
combines them; rank 0 compares with the single-process full-batch gradients and prints JSON."""

import json
import sys

import numpy as np

import bpgpu
from bpgpu.distributed import init, shard_bounds


def main(m: int) -> None:
    comm = init()
    assert comm.name == "mpi", comm
    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, 6))
    labels = rng.integers(0, 4, size=m)
    net = bpgpu.MLP([6, 9, 7, 4], hidden="tanh", dtype="float64", seed=3)
    start, stop = shard_bounds(m, comm.rank, comm.size)
    cost, gw, gb = net.backprop(x[start:stop], labels[start:stop])
    scale = (stop - start) / m
    summed = comm.allreduce_sum([g * scale for g in gw + gb])
    total_cost = comm.allreduce_scalar(cost * scale)
    full_cost, fw, fb = net.backprop(x, labels)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(summed, fw + fb)]
    # every rank must hold the same combined gradient, bit for bit
    gathered = comm.broadcast([np.asarray(a, copy=True) for a in summed], root=0)
    same = all(np.array_equal(a, b) for a, b in zip(gathered, summed))
    same = comm.allreduce_scalar(0.0 if same else 1.0) == 0.0
    if comm.rank == 0:
        print(json.dumps({
            "size": comm.size, "m": m, "shards": [shard_bounds(m, r, comm.size) for r in range(comm.size)],
            "max_abs_diff": max(diffs), "cost_diff": abs(total_cost - full_cost),
            "identical_on_all_ranks": same, "describe": comm.describe(),
        }))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
