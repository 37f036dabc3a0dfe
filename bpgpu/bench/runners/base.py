"""The runner interface shared by every contender."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.bench.workloads import Workload


def cupy_skip_reason(device: str) -> str | None:
    """None on the CPU or where CuPy can use GPU 0; otherwise why it cannot."""
    if device == "cpu":
        return None
    from bpgpu.backend.device import cuda_status

    status = cuda_status(0)
    return None if status == "ok" else f"no usable GPU: {status}"


class Runner:
    """A contender: ``setup`` once per workload, then timed ``run(steps)`` calls."""

    name = ""
    device = "cpu"  # "cpu" or "gpu": which table and curve the result belongs to

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        """Why this contender cannot run here (a missing library, an unusable GPU), or None."""
        return None

    def import_library(self) -> None:
        """Import what ``setup`` needs (memory probes take their baseline after this)."""

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        """Build the model and put the data on the device (not timed)."""
        raise NotImplementedError

    def run(self, steps: int) -> None:
        """``steps`` training steps on consecutive batches from the start of the data, then synchronise."""
        raise NotImplementedError

    def reset_peak(self) -> None:
        """Start a new device-memory high-water mark (GPU runners)."""

    def device_peak_bytes(self) -> int | None:
        """Device memory high-water mark since ``reset_peak`` (None on the CPU)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Extra facts for the report (library version, threads, notes)."""
        return {}

    def teardown(self) -> None:
        """Drop the model and the data (runners keep them in ``self.state``)."""
        self.state: dict[str, Any] = {}


class CupyPoolMemory:
    """Device-memory high-water mark from CuPy's default pool (runners whose GPU arrays are CuPy's)."""

    device = "cpu"

    def reset_peak(self) -> None:
        if self.device != "cpu":
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()

    def device_peak_bytes(self) -> int | None:
        if self.device == "cpu":
            return None
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())
