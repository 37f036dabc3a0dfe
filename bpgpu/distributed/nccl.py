"""``NCCLComm``: the Communicator interface over NCCL through CuPy's bindings (``cupy.cuda.nccl``).

Arrays must be CuPy arrays on this rank's GPU (the network lives on ``comm.device``). When the
processes were started by mpirun, MPI is used once, to hand rank 0's NCCL unique id to the others,
and for ``abort``; a single process needs no MPI at all. CuPy is imported only when this class is
instantiated.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import array_api_compat

from bpgpu.distributed import packing
from bpgpu.distributed.local import default_gpu_index, local_rank
from bpgpu.errors import DeviceError, DeviceMismatchError
from bpgpu.distributed.guard import flush_std_streams, install_excepthook


def import_nccl() -> tuple[Any, Any]:
    """``(cupy, cupy.cuda.nccl)``, or a DeviceError with the reason and the fix."""
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001  (ImportError or a broken CUDA library)
        raise DeviceError(
            f"backend='nccl' needs CuPy with NCCL, but CuPy does not import ({exc}); install "
            "CuPy with pip install '.[cuda12]' (or '.[cuda13]') from the bpgpu checkout, and NCCL; or use backend='mpi'."
        ) from exc
    try:
        from cupy.cuda import nccl
    except Exception as exc:  # noqa: BLE001
        raise DeviceError(
            f"backend='nccl' needs NCCL, but cupy.cuda.nccl does not import ({exc}); install NCCL "
            "(pip install nvidia-nccl-cu12, or `python -m cupyx.tools.install_library --library nccl`), "
            "or use backend='mpi'."
        ) from exc
    if not getattr(nccl, "available", True):
        raise DeviceError(
            "backend='nccl' needs NCCL, but this CuPy build has no NCCL support (cupy.cuda.nccl.available "
            "is False); install NCCL for your CUDA version, or use backend='mpi'."
        )
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001
        raise DeviceError(
            f"backend='nccl' needs a GPU, but CUDA reports none ({exc}); check `nvidia-smi` and "
            "CUDA_VISIBLE_DEVICES, or use backend='mpi'."
        ) from exc
    if count == 0:
        raise DeviceError("backend='nccl' needs a GPU, but CuPy found 0 devices; check CUDA_VISIBLE_DEVICES.")
    return cupy, nccl


class NCCLComm:
    """Data-parallel collectives over NCCL, one GPU per rank (GPU ``local_rank % n_gpus``)."""

    name = "nccl"
    cuda_aware = True  # NCCL always works on device buffers
    gpu_buffers = "device"

    def __init__(self, mpi_comm: Any = None, rank: int | None = None, size: int | None = None,
                 abort_on_exception: bool = True) -> None:
        cupy, nccl = import_nccl()
        self._cupy, self._nccl, self._mpi = cupy, nccl, mpi_comm
        if mpi_comm is not None:
            rank, size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        self.rank: int = 0 if rank is None else int(rank)
        self.size: int = 1 if size is None else int(size)
        if self.size > 1 and mpi_comm is None:
            raise DeviceError(
                f"NCCLComm with size={self.size} needs a way to share NCCL's unique id; launch with "
                "mpirun (pip install '.[mpi]' from the bpgpu checkout) so MPI can pass it, or use one process."
            )
        rank_on_node = local_rank()
        self.local_rank = self.rank if rank_on_node is None else rank_on_node
        self.device_id = default_gpu_index(cupy.cuda.runtime.getDeviceCount(), {"LOCAL_RANK": str(self.local_rank)})
        cupy.cuda.Device(self.device_id).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        if mpi_comm is not None:
            uid = mpi_comm.bcast(uid, root=0)
        self._comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._dtypes = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        if abort_on_exception:
            install_excepthook(self)

    @property
    def device(self) -> str:
        """The device this rank's network should live on, e.g. ``"cuda:1"``."""
        return f"cuda:{self.device_id}"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        version = self._nccl.get_version()
        return f"nccl: {self.size} ranks (NCCL {version}), this rank on {self.device}; buffers stay on the GPU"

    def __repr__(self) -> str:
        return f"NCCLComm(rank={self.rank}, size={self.size}, device={self.device!r})"

    # -- transport ---------------------------------------------------------------------------------
    def _check(self, arrays: Sequence[Any]) -> None:
        for a in arrays:
            if not array_api_compat.is_cupy_array(a):
                raise DeviceMismatchError(
                    f"NCCLComm works on CuPy arrays on the GPU; got {type(a).__module__}.{type(a).__name__}. "
                    f"Create the network with device={self.device!r}, or use backend='mpi' for CPU arrays."
                )

    def _nccl_type(self, flat: Any) -> Any:
        try:
            return self._dtypes[str(flat.dtype)]
        except KeyError:
            raise DeviceMismatchError(f"NCCLComm supports float32 and float64 arrays; got {flat.dtype}.") from None

    def _flat_op(self, flat: Any, op: str, root: int) -> Any:
        stream = self._cupy.cuda.get_current_stream()
        ptr, count, dtype = flat.data.ptr, flat.size, self._nccl_type(flat)
        if op == "sum":
            self._comm.allReduce(ptr, ptr, count, dtype, self._nccl.NCCL_SUM, stream.ptr)
        else:
            self._comm.bcast(ptr, count, dtype, root, stream.ptr)
        return flat

    def _run(self, arrays: Sequence[Any], op: str, root: int = 0) -> list[Any]:
        arrays = list(arrays)
        if not arrays:
            return []
        self._check(arrays)
        if packing.can_pack(arrays):
            return packing.unpack(self._flat_op(packing.pack(arrays), op, root), arrays)
        cp = self._cupy
        return [self._flat_op(cp.ascontiguousarray(a).ravel().copy(), op, root).reshape(a.shape) for a in arrays]

    # -- Communicator ------------------------------------------------------------------------------
    def allreduce_sum(self, arrays: Sequence[Any]) -> list[Any]:
        return self._run(arrays, "sum")

    def broadcast(self, arrays: Sequence[Any], root: int = 0) -> list[Any]:
        return self._run(arrays, "bcast", root)

    def allreduce_scalar(self, value: float) -> float:
        cp = self._cupy
        buf = cp.asarray([float(value)], dtype=cp.float64)
        return float(self._flat_op(buf, "sum", 0)[0].item())

    def barrier(self) -> None:
        self.allreduce_scalar(0.0)
        self._cupy.cuda.get_current_stream().synchronize()

    def abort(self, code: int = 1) -> None:
        """Abort NCCL, then every rank through MPI (or this process alone when not under MPI)."""
        flush_std_streams()
        try:
            self._comm.abort()
        finally:
            if self._mpi is not None:
                self._mpi.Abort(code)
            os._exit(code)
