"""Early stopping: stop when the monitored quantity has not improved for ``patience`` epochs and put
back the parameters of the best epoch."""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from bpgpu.errors import ConfigError

MONITORS = {"val_cost": "min", "cost": "min", "val_accuracy": "max"}


def copy_arrays(arrays: list[Any]) -> list[Any]:
    """Independent device copies (safe even if a backend later updates parameters in place)."""
    return [array_namespace(a).asarray(a, copy=True) for a in arrays]


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta`` in ``monitor``
    ("val_cost" — the default, or "cost" when fit has no validation_data — "val_accuracy", "cost").
    With ``restore_best`` the parameters of the best epoch are put back when training ends."""

    def __init__(self, patience: int = 5, monitor: str | None = None, min_delta: float = 0.0, restore_best: bool = True) -> None:
        if int(patience) != patience or patience < 0:
            raise ConfigError(f"patience must be a whole number of epochs ≥ 0; got {patience!r}.")
        if monitor is not None and monitor not in MONITORS:
            raise ConfigError(f"monitor={monitor!r} is not recorded; choose one of {', '.join(MONITORS)}.")
        self.patience = int(patience)
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_params: tuple[list[Any], list[Any]] | None = None

    def resolve_monitor(self, has_validation: bool) -> str:
        if self.monitor is None:
            self.monitor = "val_cost" if has_validation else "cost"
        if self.monitor.startswith("val_") and not has_validation:
            raise ConfigError(f"early stopping monitors {self.monitor!r} but fit was given no validation_data.")
        return self.monitor

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if MONITORS[self.monitor] == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, row: dict[str, Any], weights: list[Any], biases: list[Any]) -> bool:
        """Record epoch ``epoch`` (1-based); True when training should stop."""
        value = row[self.monitor]
        if value is None or not math.isfinite(value):
            raise ConfigError(f"early stopping monitors {self.monitor!r}, which is {value!r} in epoch {epoch}.")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best:
                self.best_params = (copy_arrays(weights), copy_arrays(biases))
            return False
        self.wait += 1
        return self.wait > self.patience

    def state(self) -> dict[str, Any]:
        """Scalars for checkpoints (the best parameters are saved as arrays beside them)."""
        return {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict[str, Any], best_params: tuple[list[Any], list[Any]] | None) -> None:
        self.monitor = state.get("monitor", self.monitor)
        self.best, self.best_epoch, self.wait = state.get("best"), state.get("best_epoch"), int(state.get("wait", 0))
        self.best_params = best_params


def as_early_stopping(value: Any) -> EarlyStopping | None:
    """None, an int (the patience) or an :class:`EarlyStopping`."""
    if value is None or value is False:
        return None
    if isinstance(value, EarlyStopping):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return EarlyStopping(patience=value)
    raise ConfigError(f"early_stopping must be None, a patience (int) or bpgpu.EarlyStopping(...); got {value!r}.")
