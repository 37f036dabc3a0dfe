"""Interleaved repeats: every repeat times each contender once, in a rotating order, so slow phases of
a noisy (shared) machine hit all contenders alike; results are medians and per-repeat ratios."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Callable, Sequence


def interleaved(fns: Sequence[Callable[[], None]], repeats: int) -> list[list[float]]:
    """Wall seconds per call: ``times[i][r]`` for ``fns[i]`` in repeat ``r`` (order rotated per repeat)."""
    return interleaved_with_cpu(fns, repeats)[0]


def interleaved_with_cpu(fns: Sequence[Callable[[], None]], repeats: int) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and process-CPU seconds per call (CPU time sums all threads: it shows the parallelism used,
    and on a shared machine it is not inflated by waiting for a core)."""
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    n = len(fns)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collector pauses inside a timed call
    try:
        for r in range(repeats):
            for k in range(n):
                i = (k + r) % n
                c0, t0 = time.process_time(), time.perf_counter()
                fns[i]()
                wall[i].append(time.perf_counter() - t0)
                cpu[i].append(time.process_time() - c0)
    finally:
        if enabled:
            gc.enable()
    return wall, cpu


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """The median over repeats of a[r] / b[r] (both timed in the same repeat)."""
    return median([x / y for x, y in zip(a, b)])
