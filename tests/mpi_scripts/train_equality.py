"""Run under mpirun: data-parallel ``net.fit(..., comm=comm)`` must end with the weights of the
single-process run with the same seeds (float64). Rank 0 also runs the single-process fit and prints
one JSON line; every rank checks it holds the same weights as rank 0, bit for bit.

argv: checkpoint directory. Non-root ranks start from other initial weights (the broadcast from rank
0 must fix that) and pass their own checkpoint path (only rank 0 may write one)."""

import json
import os
import sys

import numpy as np

import bpgpu
from bpgpu.distributed import init

CASES = [  # (name, sizes, hidden, n, epochs, batch_size, optimizer)
    ("sgd-momentum", [6, 8, 5, 3], "tanh", 37, 3, 8, lambda: bpgpu.SGD(0.1, momentum=0.9)),
    ("adam-empty-shards", [6, 7, 3], "relu", 11, 2, 2, lambda: bpgpu.Adam(0.01)),  # 3 ranks: a 0-row shard
]


def run(comm, ckpt_dir):
    rng = np.random.default_rng(0)
    report = {"size": comm.size, "cases": {}}
    for name, sizes, hidden, n, epochs, batch, make_opt in CASES:
        x = rng.normal(size=(n, sizes[0]))
        labels = rng.integers(0, sizes[-1], size=n)
        net = bpgpu.MLP(sizes, hidden=hidden, dtype="float64", seed=1 if comm.rank == 0 else 50 + comm.rank)
        path = os.path.join(ckpt_dir, f"{name}-rank{comm.rank}.npz")
        hist = net.fit(x, labels, epochs=epochs, batch_size=batch, optimizer=make_opt(), seed=7,
                       progress=False, checkpoint=path, comm=comm)
        mine = net.weights + net.biases
        root = comm.broadcast([np.array(a, copy=True) for a in mine], root=0)
        same = all(np.array_equal(a, b) for a, b in zip(root, mine))
        n_same = comm.allreduce_scalar(1.0 if same else 0.0)
        if comm.rank == 0:
            single = bpgpu.MLP(sizes, hidden=hidden, dtype="float64", seed=1)
            ref = single.fit(x, labels, epochs=epochs, batch_size=batch, optimizer=make_opt(), seed=7, progress=False)
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, single.weights + single.biases))
            scale = max(float(np.max(np.abs(b))) for b in single.weights + single.biases)
            report["cases"][name] = {
                "max_abs_diff": diff, "max_abs_weight": scale,
                "cost_diff": max(abs(a - b) for a, b in zip(hist["cost"], ref["cost"])),
                "ranks_identical": n_same == comm.size,
                "moved": max(float(np.max(np.abs(a - b))) for a, b in
                             zip(mine, bpgpu.MLP(sizes, hidden=hidden, dtype="float64", seed=1).weights)),
            }
        comm.barrier()
    # no seed: rank 0's fresh shuffling seed is shared, so the ranks still agree
    net = bpgpu.MLP([4, 5, 2], dtype="float64", seed=3)
    net.fit(rng.normal(size=(9, 4)), rng.integers(0, 2, size=9), epochs=2, batch_size=4, progress=False, comm=comm)
    root = comm.broadcast([np.array(a, copy=True) for a in net.weights], root=0)
    same = all(np.array_equal(a, b) for a, b in zip(root, net.weights))
    report["unseeded_ranks_identical"] = comm.allreduce_scalar(1.0 if same else 0.0) == comm.size
    if comm.rank == 0:
        report["checkpoints"] = sorted(os.listdir(ckpt_dir))
        print(json.dumps(report))


if __name__ == "__main__":
    run(init(), sys.argv[1])
