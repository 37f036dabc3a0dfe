"""The training progress bar (tqdm): epoch, batch, running cost and samples/s.

The running cost lives on the device; reading it forces a device sync, so the bar's postfix is
refreshed only every ``every`` batches (about five times an epoch) and at the end of each epoch.
"""

from __future__ import annotations

import time
from typing import Any


class Progress:
    """One bar over all the batches of the run; a no-op when ``enabled`` is False."""

    def __init__(self, enabled: bool, epochs: int, first_epoch: int, batches_per_epoch: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.batches = batches_per_epoch
        self.every = max(1, batches_per_epoch // 5)
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=(epochs - first_epoch) * batches_per_epoch, unit="batch", dynamic_ncols=True, leave=True)
        self.extra: dict[str, str] = {}

    def start_epoch(self, epoch: int) -> None:
        self.t0 = time.perf_counter()
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)

    def wants_cost(self, batch: int) -> bool:
        """True on the batches where the caller should read the running cost (a device sync)."""
        return self.bar is not None and (batch + 1) % self.every == 0

    def batch(self, batch: int, seen: int, cost: float | None = None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if cost is not None:
            rate = seen / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix({"batch": f"{batch + 1}/{self.batches}", "cost": f"{cost:.4f}", **self.extra,
                                  "samples/s": f"{rate:,.0f}"}, refresh=False)

    def end_epoch(self, row: dict[str, Any], seen: int) -> None:
        if self.bar is None:
            return
        if row.get("val_accuracy") is not None:
            self.extra = {"val_acc": f"{row['val_accuracy']:.4f}"}
        elif row.get("val_cost") is not None:
            self.extra = {"val_cost": f"{row['val_cost']:.4f}"}
        rate = seen / max(row["seconds"], 1e-9)
        self.bar.set_postfix({"cost": f"{row['cost']:.4f}", **self.extra, "samples/s": f"{rate:,.0f}"})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
