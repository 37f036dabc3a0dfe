"""Early stopping: stop when the monitored quantity has not improved for ``patience`` epochs and put
back the parameters of the best epoch."""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace, device

from bpgpu.errors import ConfigError
from bpgpu.validation import check_int, check_positive

MONITORS = {"val_cost": "min", "cost": "min", "val_accuracy": "max"}


def copy_arrays(arrays: list[Any]) -> list[Any]:
    """Independent copies, each on its array's own device (CuPy copies onto the *current* device unless
    told: array-api-compat's asarray makes ``device=`` the current device for the copy)."""
    return [array_namespace(a).asarray(a, copy=True, device=device(a)) for a in arrays]


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta`` in ``monitor``
    ("val_cost" — the default, or "cost" when fit has no validation_data — "val_accuracy", "cost").
    With ``restore_best`` the parameters of the best epoch are put back when training ends."""

    def __init__(self, patience: int = 5, monitor: str | None = None, min_delta: float = 0.0, restore_best: bool = True) -> None:
        self.patience = check_int(patience, "EarlyStopping patience", 0)
        if monitor is not None and monitor not in MONITORS:
            raise ConfigError(f"EarlyStopping monitor={monitor!r} is not recorded; choose one of {', '.join(MONITORS)}.")
        self.requested_monitor = monitor      # None: chosen per fit (val_cost with validation data, else cost)
        self.monitor = monitor
        self.min_delta = check_positive(min_delta, "EarlyStopping min_delta", allow_zero=True)
        if restore_best not in (True, False):
            raise TypeError(f"EarlyStopping restore_best must be True or False; got {restore_best!r}.")
        self.restore_best = bool(restore_best)
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_params: tuple[list[Any], list[Any]] | None = None

    def resolve_monitor(self, has_validation: bool) -> str:
        """The quantity this fit monitors: the one asked for, else val_cost/cost by the data at hand
        (chosen afresh for every fit, so a reused EarlyStopping() follows each fit's data)."""
        self.monitor = self.requested_monitor
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

    def load_state(self, state: dict[str, Any], best_params: tuple[list[Any], list[Any]] | None, epoch: int) -> None:
        """Restore :meth:`state` read from a checkpoint after ``epoch`` epochs; every field is checked
        (ConfigError naming it): the monitor must be this fit's, numbers in range."""
        if not isinstance(state, dict):
            raise ConfigError(f"the early-stopping state must be a JSON object; got {state!r:.60}.")
        monitor = state.get("monitor", self.monitor)
        if monitor not in MONITORS:
            raise ConfigError(f"the early-stopping state monitors {monitor!r:.40}; known: {', '.join(MONITORS)}.")
        if monitor != self.monitor:
            raise ConfigError(f"the checkpoint's early stopping monitored {monitor!r} but this fit monitors "
                              f"{self.monitor!r}; pass EarlyStopping(monitor={monitor!r}) (and the same validation_data).")
        best, best_epoch, wait = state.get("best"), state.get("best_epoch"), state.get("wait", 0)
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
            raise ConfigError(f"the early-stopping best value must be a finite number or null; got {best!r:.40}.")
        if best_epoch is not None and (type(best_epoch) is not int or not 1 <= best_epoch <= epoch):
            raise ConfigError(f"the early-stopping best_epoch must be an epoch 1…{epoch} or null; got {best_epoch!r:.40}.")
        if type(wait) is not int or not 0 <= wait <= epoch:
            raise ConfigError(f"the early-stopping wait must be a whole number 0…{epoch}; got {wait!r:.40}.")
        if (best is None) != (best_epoch is None):
            raise ConfigError("the early-stopping state gives a best value without its epoch (or the reverse).")
        if self.restore_best and best_epoch is not None and best_params is None:
            raise ConfigError("the early-stopping state has a best epoch but the checkpoint lacks its best.* parameters.")
        self.best = float(best) if best is not None else None
        self.best_epoch, self.wait = best_epoch, wait
        self.best_params = best_params if self.restore_best else None


def as_early_stopping(value: Any) -> EarlyStopping | None:
    """None, an int (the patience) or an :class:`EarlyStopping`."""
    if value is None or value is False:
        return None
    if isinstance(value, EarlyStopping):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return EarlyStopping(patience=value)
    raise ConfigError(f"early_stopping must be None, a patience (int) or bpgpu.EarlyStopping(...); got {value!r}.")
