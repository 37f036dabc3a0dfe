"""What the double saw: device operations (kernel launches), allocations and device→host syncs, each
counted by the source line outside the double and array-api-compat that caused it."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))  # the repository
_SKIP = (_HERE + os.sep, os.sep + "array_api_compat" + os.sep, os.sep + "numpy" + os.sep)


def caller() -> str:
    """``path:line`` of the innermost frame outside the double, array-api-compat and NumPy."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not any(s in name for s in _SKIP) and not name.startswith("<"):
            try:
                name = os.path.relpath(name, _ROOT)
            except ValueError:
                pass
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@dataclass
class Record:
    """Counts by source line. ``ops``: kernel launches (a fused kernel is one); ``syncs``: device→host
    reads (``.get()``, ``item``, ``float``/``int``/``bool``, ``tolist``, boolean-mask indexing);
    ``allocations``/``alloc_bytes``: new device buffers; ``peak_bytes``: the high-water mark of live
    device bytes (all devices) while recording, above what was live when recording began."""

    ops: Counter = field(default_factory=Counter)
    syncs: Counter = field(default_factory=Counter)
    allocations: Counter = field(default_factory=Counter)
    alloc_bytes: Counter = field(default_factory=Counter)
    h2d: Counter = field(default_factory=Counter)
    base_bytes: int = 0
    peak_bytes: int = 0

    @property
    def n_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def n_syncs(self) -> int:
        return sum(self.syncs.values())

    @property
    def n_allocations(self) -> int:
        return sum(self.allocations.values())

    @property
    def bytes_allocated(self) -> int:
        return sum(self.alloc_bytes.values())

    def report(self, top: int = 40) -> str:
        """A table of the busiest lines (for assertion messages)."""
        lines = [f"{self.n_ops} ops, {self.n_syncs} syncs, {self.n_allocations} allocations "
                 f"({self.bytes_allocated} B), peak {self.peak_bytes} B"]
        for what, counter in (("op", self.ops), ("sync", self.syncs), ("alloc", self.allocations)):
            for where, n in counter.most_common(top):
                lines.append(f"  {what:5s} {n:6d}  {where}")
        return "\n".join(lines)


class Recorders:
    """The active records (nested ``record()`` blocks all see every event) and live device bytes."""

    def __init__(self) -> None:
        self.active: list[Record] = []
        self.live_bytes = 0

    def op(self, n: int = 1) -> None:
        if self.active:
            where = caller()
            for r in self.active:
                r.ops[where] += n

    def sync(self) -> None:
        if self.active:
            where = caller()
            for r in self.active:
                r.syncs[where] += 1

    def h2d(self) -> None:
        if self.active:
            where = caller()
            for r in self.active:
                r.h2d[where] += 1

    def alloc(self, nbytes: int) -> None:
        self.live_bytes += nbytes
        if self.active:
            where = caller()
            for r in self.active:
                r.allocations[where] += 1
                r.alloc_bytes[where] += nbytes
                r.peak_bytes = max(r.peak_bytes, self.live_bytes - r.base_bytes)

    def free(self, nbytes: int) -> None:
        self.live_bytes -= nbytes
