"""Run under mpirun: rank ``argv[1]`` raises before the collective the others are waiting in.
Every rank must exit (non-zero) instead of hanging."""

import sys

import numpy as np

from bpgpu.distributed import init

comm = init()
bad = int(sys.argv[1]) if len(sys.argv) > 1 else 1
mode = sys.argv[2] if len(sys.argv) > 2 else "uncaught"
if comm.rank == bad:
    if mode == "uncaught":
        raise ValueError(f"deliberate failure on rank {comm.rank}")
    from bpgpu.distributed import abort_on_error

    with abort_on_error(comm):
        raise SystemExit(3)
comm.allreduce_sum([np.ones(3)])
comm.barrier()
print(f"rank {comm.rank} finished (should not happen)", flush=True)
