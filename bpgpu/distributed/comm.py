"""The communication interface data-parallel training needs, and its single-process implementation.

A mini-batch of m rows is split into ``size`` contiguous shards; rank r computes the gradients of its
m_r rows, scales them by m_r / m, and ``allreduce_sum`` adds them up: the result is exactly the
full-batch mean gradient, even when the shards are uneven.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Communicator(Protocol):
    rank: int
    size: int
    name: str

    def allreduce_sum(self, arrays: Sequence[Any]) -> list[Any]:
        """Element-wise sum of each array over all ranks (arrays stay on their device)."""

    def broadcast(self, arrays: Sequence[Any], root: int = 0) -> list[Any]:
        """Every rank receives ``root``'s arrays."""

    def allreduce_scalar(self, value: float) -> float:
        """Sum of a Python float over all ranks."""

    def barrier(self) -> None:
        """Wait for every rank."""

    def abort(self, code: int = 1) -> None:
        """Stop every rank (used when one rank raises, so the others do not hang)."""


class LocalComm:
    """One process: every collective is the identity."""

    rank = 0
    size = 1
    name = "local"

    @property
    def is_root(self) -> bool:
        return True

    def describe(self) -> str:
        return "local: 1 process (no communication)"

    def allreduce_sum(self, arrays: Sequence[Any]) -> list[Any]:
        return list(arrays)

    def broadcast(self, arrays: Sequence[Any], root: int = 0) -> list[Any]:
        return list(arrays)

    def allreduce_scalar(self, value: float) -> float:
        return float(value)

    def barrier(self) -> None:
        return None

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)


def shard_bounds(m: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, stop) of an m-row batch that ``rank`` of ``size`` takes (sizes differ by ≤ 1)."""
    base, extra = divmod(m, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
