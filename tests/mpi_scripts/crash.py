"""Run under mpirun: rank ``argv[1]`` raises before the collective the others are waiting in.
Every rank must exit (non-zero) instead of hanging."""

import sys

import numpy as np

from bpgpu.distributed import init

comm = init()
bad = int(sys.argv[1]) if len(sys.argv) > 1 else 1
mode = sys.argv[2] if len(sys.argv) > 2 else "uncaught"
if mode == "fit":  # bad data on one rank only: it raises inside fit while the others wait for it
    import bpgpu

    x = np.ones((8, 3))
    if comm.rank == bad:
        x[2, 1] = np.nan
    bpgpu.MLP([3, 4, 2], seed=0).fit(x, np.arange(8) % 2, epochs=1, batch_size=4, progress=False, comm=comm)
elif comm.rank == bad:
    if mode == "uncaught":
        raise ValueError(f"deliberate failure on rank {comm.rank}")
    from bpgpu.distributed import abort_on_error

    with abort_on_error(comm):
        raise SystemExit(3)
comm.allreduce_sum([np.ones(3)])
comm.barrier()
print(f"rank {comm.rank} finished (should not happen)", flush=True)
