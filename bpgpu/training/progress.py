"""The training progress bar (tqdm): epoch, batch, running cost and samples/s.

The running cost lives on the device; reading it forces a device sync, so the bar's postfix is
refreshed only every ``every`` batches (about five times an epoch) and at the end of each epoch.

The line fits an 80-column terminal with every field (:data:`BAR_FORMAT`: a fixed 8-character bar,
the time left, cost, val_acc/val_cost, samples/s). samples/s is one quantity throughout: training
rows per second of the epoch's training steps (from the epoch's start to the latest step, validation
excluded), mid-epoch and at the epoch's end alike.
"""

from __future__ import annotations

import time
from typing import Any


BAR_FORMAT = "{desc}|{bar:8}| <{remaining}{postfix}"  # tqdm ends desc with ": "


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

            self.bar = tqdm(total=(epochs - first_epoch) * batches_per_epoch, unit="batch", dynamic_ncols=True, leave=True,
                            bar_format=BAR_FORMAT)
        self.extra: dict[str, str] = {}

    def start_epoch(self, epoch: int) -> None:
        self.t0 = self.t_last = time.perf_counter()
        self.seen, self.seen0 = 0, None
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)

    def wants_cost(self, batch: int) -> bool:
        """True on the batches where the caller should read the running cost (a device sync)."""
        return self.bar is not None and (batch + 1) % self.every == 0

    def batch(self, batch: int, seen: int, cost: float | None = None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        self.t_last, self.seen = time.perf_counter(), seen
        if self.seen0 is None:  # rows before this epoch's first step here (> 0 when resuming mid-epoch)
            self.seen0 = seen - seen // (batch + 1)
        if cost is not None:
            self.bar.set_postfix_str(self._fields(cost), refresh=False)

    def _rate(self) -> float:
        """Training rows per second of the epoch's steps so far (the same measure mid-epoch and at its end)."""
        return (self.seen - (self.seen0 or 0)) / max(self.t_last - self.t0, 1e-9)

    def _fields(self, cost: float) -> str:
        return " ".join([f"cost {cost:.4f}", *(f"{k} {v}" for k, v in self.extra.items()), f"{self._rate():,.0f} samples/s"])

    def end_epoch(self, row: dict[str, Any], seen: int) -> None:
        if self.bar is None:
            return
        if row.get("val_accuracy") is not None:
            self.extra = {"val_acc": f"{row['val_accuracy']:.4f}"}
        elif row.get("val_cost") is not None:
            self.extra = {"val_cost": f"{row['val_cost']:.4f}"}
        if not self.seen:  # no step was recorded (an empty epoch): fall back to the epoch's wall time
            self.seen, self.seen0, self.t_last = seen, 0, self.t0 + row["seconds"]
        self.bar.set_postfix_str(self._fields(row["cost"]))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
