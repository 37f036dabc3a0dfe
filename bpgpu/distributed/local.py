"""Which GPU this process takes: under an MPI launcher each rank takes the GPU of its *local* rank (its
index among the ranks on its node), modulo the GPUs it can see, so ``mpirun -n 4 bpgpu train --device
gpu`` on a 4-GPU node puts one rank on each card. An explicit index (``cuda:N``, ``device=N``) overrides
this, as does restricting each rank's view with ``CUDA_VISIBLE_DEVICES``. Imports nothing heavy."""

from __future__ import annotations

import os
from typing import Mapping

# Set per process by Open MPI, MPICH/Hydra, MVAPICH, Slurm's srun and PMIx launchers.
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                   "SLURM_LOCALID", "PMIX_LOCAL_RANK", "LOCAL_RANK")


def local_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's rank on its node, from the launcher's environment; None when not launched so."""
    env = os.environ if environ is None else environ
    for var in LOCAL_RANK_VARS:
        value = env.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return None


def default_gpu_index(device_count: int | None, environ: Mapping[str, str] | None = None) -> int:
    """The GPU a device spec without an index ("gpu", "cuda", "auto") means for this process: the local
    rank modulo ``device_count`` under an MPI launcher, else 0."""
    rank = local_rank(environ)
    if rank is None or not device_count:
        return 0
    return rank % device_count
