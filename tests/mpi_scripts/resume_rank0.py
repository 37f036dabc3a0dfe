"""Run under mpirun: a data-parallel fit resumed from a checkpoint that only rank 0 has (the other
ranks are given a path that does not exist: no shared filesystem). Every rank must end with the
weights of an uninterrupted single-process run, bit for bit (float64). Prints one JSON line (rank 0).

argv: a folder for rank 0's checkpoint."""

import json
import os
import sys

import numpy as np

import bpgpu
from bpgpu.distributed import init


def main(folder):
    comm = init("mpi")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(29, 5))
    y = rng.integers(0, 3, size=29)
    make = lambda: bpgpu.MLP([5, 7, 3], hidden="tanh", dtype="float64", seed=1)  # noqa: E731
    path = os.path.join(folder, "ck.npz") if comm.rank == 0 else os.path.join(folder, f"absent-rank{comm.rank}.npz")
    first = make()
    first.fit(x, y, 2, 4, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=3, progress=False, checkpoint=path, comm=comm)
    comm.barrier()
    resumed = make()
    resumed.fit(x, y, 4, 4, resume=path, progress=False, comm=comm)
    mine = resumed.weights + resumed.biases
    root = comm.broadcast([np.array(a, copy=True) for a in mine], root=0)
    same = comm.allreduce_scalar(1.0 if all(np.array_equal(a, b) for a, b in zip(root, mine)) else 0.0)
    if comm.rank == 0:
        single = make()
        single.fit(x, y, 4, 4, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=3, progress=False)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, single.weights + single.biases))
        print(json.dumps({"size": comm.size, "ranks_identical": same == comm.size, "max_abs_diff": diff,
                          "others_wrote": sorted(n for n in os.listdir(folder) if n != "ck.npz")}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
