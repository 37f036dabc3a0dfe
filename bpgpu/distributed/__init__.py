"""Data-parallel training across processes (issue: scale-out). The single-process path imports
neither mpi4py nor NCCL: :class:`LocalComm` is what ``fit`` uses when no communicator is given.

``init()`` returns the communicator for the way the process was launched::

    comm = bpgpu.distributed.init()          # LocalComm, or MPIComm under mpirun
    net.fit(x, y, epochs=3, batch_size=64, comm=comm)
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from bpgpu.distributed.comm import Communicator, LocalComm, shard_bounds
from bpgpu.distributed.guard import abort_on_error, install_excepthook
from bpgpu.errors import ConfigError

BACKENDS = ("auto", "none", "local", "mpi", "nccl")
# Set by the common MPI launchers for every process they start (Open MPI, PMIx, MPICH/Hydra, MVAPICH).
MPI_ENV_VARS = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE")

__all__ = [
    "Communicator", "LocalComm", "shard_bounds", "init", "launched_by_mpi", "abort_on_error",
    "install_excepthook", "BACKENDS", "MPIComm", "NCCLComm",
]


def __getattr__(name: str) -> Any:
    """``MPIComm`` / ``NCCLComm`` on first use (so importing this package imports neither mpi4py nor CuPy)."""
    if name == "MPIComm":
        from bpgpu.distributed.mpi import MPIComm

        return MPIComm
    if name == "NCCLComm":
        from bpgpu.distributed.nccl import NCCLComm

        return NCCLComm
    raise AttributeError(f"module 'bpgpu.distributed' has no attribute {name!r}")


def launched_by_mpi(environ: Mapping[str, str] | None = None) -> bool:
    """True when an MPI launcher (mpirun/mpiexec/srun with PMI) started this process."""
    env = os.environ if environ is None else environ
    return any(env.get(var) for var in MPI_ENV_VARS)


def init(backend: str | None = None) -> Any:
    """The communicator for this process.

    ``backend``: ``None``/``"auto"`` → MPI when launched by mpirun, else a :class:`LocalComm`;
    ``"none"``/``"local"`` → :class:`LocalComm` (even under mpirun: every rank trains alone);
    ``"mpi"`` → :class:`~bpgpu.distributed.mpi.MPIComm`; ``"nccl"`` →
    :class:`~bpgpu.distributed.nccl.NCCLComm` (rank and size from MPI when launched by mpirun, which
    then only passes NCCL's unique id around). Multi-rank communicators install an excepthook so
    that an uncaught exception on one rank stops all of them.
    """
    choice = "auto" if backend is None else str(backend).strip().lower()
    if choice not in BACKENDS:
        raise ConfigError(
            f"distributed backend {backend!r} is unknown; expected one of {', '.join(BACKENDS)} "
            "(auto: MPI when launched by mpirun, else one process)."
        )
    if choice in ("none", "local") or (choice == "auto" and not launched_by_mpi()):
        return LocalComm()
    if choice in ("auto", "mpi"):
        from bpgpu.distributed.mpi import MPIComm

        return MPIComm()
    from bpgpu.distributed.nccl import NCCLComm, import_nccl

    import_nccl()  # a clear DeviceError before MPI is touched
    if launched_by_mpi():
        from bpgpu.distributed.mpi import import_mpi

        return NCCLComm(mpi_comm=import_mpi().COMM_WORLD)
    return NCCLComm()
