"""``MPIComm``: the :class:`~bpgpu.distributed.comm.Communicator` interface over mpi4py.

Every collective packs its arrays into one flat buffer (one MPI call per step, not one per layer).
NumPy buffers go to MPI as they are. CuPy buffers go to MPI directly when the MPI library is
CUDA-aware, and are staged through host memory otherwise (``comm.cuda_aware`` and ``describe()`` say
which). Other array libraries (torch, array-api-strict) always go through the host.

CUDA-awareness is detected conservatively: ``BPGPU_MPI_CUDA_AWARE=1``/``0`` decides if set; else
mpi4py's ``MPI.Query_cuda_support()`` when present; else Open MPI's ``MPIX_Query_cuda_support()``
looked up in the loaded ``libmpi``; anything else (MPICH, unknown) counts as not CUDA-aware.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Sequence

import array_api_compat
import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import backend_of
from bpgpu.distributed import packing
from bpgpu.distributed.guard import flush_std_streams, install_excepthook
from bpgpu.distributed.local import default_gpu_index, local_rank
from bpgpu.errors import DeviceError, ShapeError

CUDA_AWARE_ENV = "BPGPU_MPI_CUDA_AWARE"


def import_mpi() -> Any:
    """``mpi4py.MPI`` (initialising MPI), or a DeviceError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DeviceError(
            "MPI is needed (the process was started by mpirun/mpiexec, or backend='mpi' was asked for) "
            f"but mpi4py does not import ({exc}); install the extra: pip install '.[mpi]' from the bpgpu checkout "
            "(mpi4py and Open MPI), or run one process (bpgpu train --distributed none)."
        ) from exc
    return MPI


def _loaded_libmpi() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            found = {line.split()[-1] for line in maps if os.path.basename(line.split()[-1]).startswith("libmpi.so")}
    except OSError:
        found = set()
    fallback = ctypes.util.find_library("mpi")
    return sorted(found) + ([fallback] if fallback else [])


def query_cuda_aware(MPI: Any) -> tuple[bool, str]:
    """``(cuda_aware, how it was decided)``; False unless something positively says True."""
    forced = os.environ.get(CUDA_AWARE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{CUDA_AWARE_ENV}={forced}"
    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        try:
            return bool(query()), "MPI.Query_cuda_support()"
        except Exception:  # noqa: BLE001  (a stub that raises: fall through)
            pass
    if "Open MPI" in MPI.Get_library_version():
        for path in _loaded_libmpi():
            try:
                fn = ctypes.CDLL(path).MPIX_Query_cuda_support
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_int
            return bool(fn()), f"MPIX_Query_cuda_support() in {os.path.basename(path)}"
    return False, "no CUDA-awareness query available (assumed not CUDA-aware)"


class MPIComm:
    """Data-parallel collectives over an mpi4py communicator (``MPI.COMM_WORLD`` by default)."""

    name = "mpi"

    def __init__(self, comm: Any = None, abort_on_exception: bool = True) -> None:
        MPI = import_mpi()
        self._MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        rank_on_node = local_rank()
        self.local_rank: int = self.rank if rank_on_node is None else rank_on_node
        self.cuda_aware, self.cuda_aware_source = query_cuda_aware(MPI)
        if abort_on_exception:
            install_excepthook(self)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def gpu_device(self) -> str:
        """This rank's GPU, ``"cuda:K"`` with K = local rank modulo the visible GPUs: what
        ``device="gpu"`` resolves to on this rank (an explicit ``cuda:N`` overrides it)."""
        import cupy

        return f"cuda:{default_gpu_index(cupy.cuda.runtime.getDeviceCount(), {'LOCAL_RANK': str(self.local_rank)})}"

    @property
    def gpu_buffers(self) -> str:
        """How CuPy arrays travel: ``"device"`` (CUDA-aware MPI) or ``"host"`` (staged)."""
        return "device" if self.cuda_aware else "host"

    def describe(self) -> str:
        library = self._MPI.Get_library_version().splitlines()[0].split(",")[0].strip()
        how = ("passed to MPI directly (CUDA-aware)" if self.cuda_aware
               else "staged through host memory (MPI not CUDA-aware)")
        return f"mpi: {self.size} ranks ({library}); CuPy buffers {how} [{self.cuda_aware_source}]"

    def __repr__(self) -> str:
        return f"MPIComm(rank={self.rank}, size={self.size}, cuda_aware={self.cuda_aware})"

    # -- transport ---------------------------------------------------------------------------------
    def _device_direct(self, x: Any) -> bool:
        return self.cuda_aware and array_api_compat.is_cupy_array(x)

    def _collective(self, flat: Any, op: str, root: int) -> Any:
        """Run Allreduce(SUM) or Bcast in place on a flat buffer; returns the result as ``flat``'s kind."""
        MPI = self._MPI
        if self._device_direct(flat):
            backend_of(flat).synchronize()  # the kernels that wrote ``flat`` must finish before MPI reads
            buf = flat
        elif isinstance(flat, np.ndarray):
            buf = flat
        else:
            buf = to_host(flat)
            if not (buf.flags.c_contiguous and buf.flags.writeable):
                buf = np.array(buf, order="C")
        if op == "sum":
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        else:
            self.comm.Bcast(buf, root=root)
        if buf is flat:
            return flat
        return to_backend(buf, backend_of(flat), dtype=flat.dtype)

    def _run(self, arrays: Sequence[Any], op: str, root: int = 0) -> list[Any]:
        arrays = list(arrays)
        if not arrays:
            return []
        if packing.can_pack(arrays):
            return packing.unpack(self._collective(packing.pack(arrays), op, root), arrays)
        out = []
        for a in arrays:  # mixed libraries or dtypes: one collective each
            xp = array_api_compat.array_namespace(a)
            flat = xp.reshape(a, (-1,))
            flat = xp.asarray(flat, copy=True)
            out.append(xp.reshape(self._collective(flat, op, root), tuple(a.shape)))
        return out

    # -- Communicator ------------------------------------------------------------------------------
    def allreduce_sum(self, arrays: Sequence[Any]) -> list[Any]:
        """Element-wise sums over all ranks (new arrays, on each input's device and dtype)."""
        return self._run(arrays, "sum")

    def broadcast(self, arrays: Sequence[Any], root: int = 0) -> list[Any]:
        """``root``'s arrays on every rank; shapes and dtypes are checked first (clear error, no hang)."""
        arrays = list(arrays)
        mine = [(tuple(a.shape), str(a.dtype)) for a in arrays]
        theirs = self.comm.bcast(mine, root=root)
        if theirs != mine:
            raise ShapeError(
                f"rank {self.rank}: broadcast from rank {root} sends arrays {theirs}, but this rank "
                f"holds {mine}; every rank must build the same network (same sizes and dtype)."
            )
        return self._run(arrays, "bcast", root)

    def allreduce_scalar(self, value: float) -> float:
        return float(self.comm.allreduce(float(value), op=self._MPI.SUM))

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """Stop every rank (``MPI_Abort``); the launcher exits with a non-zero status."""
        flush_std_streams()
        self.comm.Abort(code)
