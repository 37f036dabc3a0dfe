"""Data-parallel training across processes (issue: scale-out). The single-process path imports
neither mpi4py nor NCCL: :class:`LocalComm` is what ``fit`` uses when no communicator is given."""

from bpgpu.distributed.comm import Communicator, LocalComm, shard_bounds

__all__ = ["Communicator", "LocalComm", "shard_bounds"]
