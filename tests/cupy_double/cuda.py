"""``cupy.cuda`` of the double: devices (a current device, changed by ``Device(n)`` as a context or by
``.use()``), the runtime queries bpgpu makes, streams, and a memory pool that tracks live bytes per
device (with an optional limit, past which allocation raises ``OutOfMemoryError`` like CuPy's)."""

from __future__ import annotations

import threading
import types
from typing import Any

from . import _counts

RECORDERS = _counts.Recorders()


class CUDARuntimeError(RuntimeError):
    """``cupy_backends.cuda.api.runtime.CUDARuntimeError``."""


class _State(threading.local):
    def __init__(self) -> None:
        self.current = 0


STATE = _State()
CONFIG = types.SimpleNamespace(device_count=2)


def get_device_id() -> int:
    return STATE.current


def _check_ordinal(i: int) -> None:
    if not 0 <= i < CONFIG.device_count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


class Device:
    """``cupy.cuda.Device``: ``Device()`` is the current device; ``with Device(n):`` makes ``n`` current
    and restores the previous one on exit. Compared by ``id``; unhashable, like CuPy's."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, device: Any = None) -> None:
        if device is None:
            self.id = STATE.current
        elif isinstance(device, Device):
            self.id = device.id
        else:
            self.id = int(device)
        self._saved: list[int] = []

    def use(self) -> None:
        _check_ordinal(self.id)
        STATE.current = self.id

    def __enter__(self) -> "Device":
        _check_ordinal(self.id)
        self._saved.append(STATE.current)
        STATE.current = self.id
        return self

    def __exit__(self, *exc: Any) -> bool:
        STATE.current = self._saved.pop()
        return False

    def synchronize(self) -> None:
        _check_ordinal(self.id)

    @property
    def compute_capability(self) -> str:
        return "90"

    @property
    def mem_info(self) -> tuple[int, int]:
        total = 80 * 2**30
        return total - POOL.used_bytes(self.id), total

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"

    __str__ = __repr__


Device.__module__ = "cupy.cuda.device"


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


def _round(nbytes: int) -> int:
    """CuPy's pool hands out blocks in multiples of 512 bytes."""
    return max(512, -(-nbytes // 512) * 512) if nbytes else 0


class MemoryPool:
    """``cupy.cuda.MemoryPool``: ``used_bytes()`` is what live arrays of the current device hold (in
    512-byte blocks); ``total_bytes()`` what the pool holds, modelled as the high-water mark of used
    bytes since the last ``free_all_blocks()`` (the pool reusing every freed block)."""

    def __init__(self) -> None:
        self._used: dict[int, int] = {}
        self._peak: dict[int, int] = {}
        self._limit = 0

    def used_bytes(self, device: int | None = None) -> int:
        return self._used.get(STATE.current if device is None else device, 0)

    def total_bytes(self) -> int:
        return max(self._peak.get(STATE.current, 0), self.used_bytes())

    def free_bytes(self) -> int:
        return self.total_bytes() - self.used_bytes()

    def free_all_blocks(self, stream: Any = None) -> None:
        self._peak = dict(self._used)

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        self._limit = int(size or 0)

    def get_limit(self) -> int:
        return self._limit

    def n_free_blocks(self) -> int:
        return 0

    def _malloc(self, device: int, nbytes: int) -> int:
        size = _round(nbytes)
        used = self._used.get(device, 0)
        if self._limit and used + size > self._limit:
            raise OutOfMemoryError(size, used, self._limit)
        self._used[device] = used + size
        self._peak[device] = max(self._peak.get(device, 0), used + size)
        RECORDERS.alloc(size)
        return size

    def _free(self, device: int, size: int) -> None:
        self._used[device] = self._used.get(device, 0) - size
        RECORDERS.free(size)


POOL = MemoryPool()


class Stream:
    """``cupy.cuda.Stream``: work is done at once, so synchronizing is immediate."""

    null: "Stream"

    def __init__(self, non_blocking: bool = False, ptr: int = 0) -> None:
        self.ptr = ptr

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


Stream.null = Stream()
ExternalStream = Stream


def get_current_stream(device: Any = None) -> Stream:
    return Stream.null


def is_available() -> bool:
    return CONFIG.device_count > 0


def _get_device_count() -> int:
    return CONFIG.device_count


def _get_device_properties(i: int) -> dict:
    _check_ordinal(i)
    return {"name": b"CuPy test double (NumPy)", "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0,
            "multiProcessorCount": 132}


runtime = types.SimpleNamespace(
    getDeviceCount=_get_device_count, getDeviceProperties=_get_device_properties,
    runtimeGetVersion=lambda: 12080, driverGetVersion=lambda: 12080, CUDARuntimeError=CUDARuntimeError,
    getDevice=get_device_id, deviceSynchronize=lambda: None, memGetInfo=lambda: Device().mem_info,
)
memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError, MemoryPool=MemoryPool)
device = types.SimpleNamespace(Device=Device, get_device_id=get_device_id)


# --- cupy.cuda.nccl: collectives over the double's (host) memory, one process or across mpirun ranks ---
class _Nccl(types.SimpleNamespace):
    pass


NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0   # ncclFloat32, ncclFloat64, ncclSum
_NCCL_TYPES = {NCCL_FLOAT32: "float32", NCCL_FLOAT64: "float64"}


def _host_view(ptr: int, count: int, nccl_type: int) -> Any:
    import numpy as np

    dtype = np.dtype(_NCCL_TYPES[nccl_type])
    return np.frombuffer((ctypes_c_char * (count * dtype.itemsize)).from_address(ptr), dtype=dtype)


class NcclCommunicator:
    """``cupy.cuda.nccl.NcclCommunicator``: one rank alone, or ``ndev`` ranks under mpirun (the
    double's device memory is host memory, so MPI carries it); each collective is one device op."""

    def __init__(self, ndev: int, commId: Any, rank: int) -> None:
        self.ndev, self.rank_id = int(ndev), int(rank)
        self._mpi = None
        if self.ndev > 1:
            from mpi4py import MPI

            self._mpi = MPI

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int) -> None:
        if op != NCCL_SUM:
            raise NotImplementedError("the CuPy test double's NCCL sums only")
        send, recv = _host_view(sendbuf, count, datatype), _host_view(recvbuf, count, datatype)
        if self._mpi is not None:
            src = self._mpi.IN_PLACE if sendbuf == recvbuf else send
            self._mpi.COMM_WORLD.Allreduce(src, recv, op=self._mpi.SUM)
        elif sendbuf != recvbuf:
            recv[...] = send
        RECORDERS.op()

    def bcast(self, buff: int, count: int, datatype: int, root: int, stream: int) -> None:
        if self._mpi is not None:
            self._mpi.COMM_WORLD.Bcast(_host_view(buff, count, datatype), root=root)
        RECORDERS.op()

    def rank_id_(self) -> int:
        return self.rank_id

    def abort(self) -> None:
        pass

    def destroy(self) -> None:
        pass


import ctypes as _ctypes  # noqa: E402

ctypes_c_char = _ctypes.c_char
nccl = _Nccl(available=True, NCCL_FLOAT32=NCCL_FLOAT32, NCCL_FLOAT64=NCCL_FLOAT64, NCCL_SUM=NCCL_SUM,
             NcclCommunicator=NcclCommunicator, get_unique_id=lambda: (0,) * 128, get_version=lambda: 22105)
