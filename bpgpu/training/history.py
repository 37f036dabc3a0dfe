"""``History``: what ``fit`` records, one entry per epoch.

Structure (every list has one entry per completed epoch, in order)::

    epoch         [1, 2, …]                  1-based epoch numbers
    cost          [float, …]                 mean training cost over the epoch's examples
    val_cost      [float | None, …]          cost on validation_data (None without it)
    val_accuracy  [float | None, …]          accuracy on validation_data (None without it / regression)
    seconds       [float, …]                 wall time of the epoch (training + validation)
    lr            [float, …]                 the learning rate η used in the epoch
    grad_norms    [[float per layer], …]     mean over the epoch's batches of ‖∂C/∂W^l‖_F, l = 1…L−1
                                             ([] when record_grad_norms=False)

plus ``stopped_epoch`` / ``best_epoch`` (early stopping; None otherwise) and, only in a checkpoint
written by an interrupted ``fit``, ``partial``: the epoch in progress, its batches done and the sums
over them (so a resume finishes that epoch exactly as an uninterrupted run would). ``history["cost"]`` reads a
column; ``to_dict()`` gives plain lists (JSON-ready), ``History.from_dict`` reverses it.
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("epoch", "cost", "val_cost", "val_accuracy", "seconds", "lr", "grad_norms")


class History:
    """Per-epoch training record; see the module docstring for the columns."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.partial: dict[str, Any] | None = None

    def append(self, **row: Any) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown history column(s) {sorted(unknown)}; columns are {COLUMNS}.")
        for name in COLUMNS:
            self.columns[name].append(row.get(name))

    def __getitem__(self, name: str) -> list[Any]:
        return self.columns[name]

    def __getattr__(self, name: str) -> list[Any]:
        columns = self.__dict__.get("columns", {})
        if name in columns:
            return columns[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return len(self.columns["epoch"])

    def last(self) -> dict[str, Any]:
        """The latest epoch's row (empty dict before the first epoch)."""
        return {name: values[-1] for name, values in self.columns.items()} if len(self) else {}

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers: the columns plus best_epoch and stopped_epoch."""
        out: dict[str, Any] = {name: list(values) for name, values in self.columns.items()}
        out["grad_norms"] = [list(g) for g in self.columns["grad_norms"]]
        out["best_epoch"] = self.best_epoch
        out["stopped_epoch"] = self.stopped_epoch
        if self.partial is not None:
            out["partial"] = dict(self.partial)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        history = cls()
        n = len(data.get("epoch", []))
        for name in COLUMNS:
            values = list(data.get(name, [None] * n))
            if len(values) != n:
                raise ValueError(f"history column {name!r} has {len(values)} entries; expected {n}.")
            history.columns[name] = values
        history.best_epoch = data.get("best_epoch")
        history.stopped_epoch = data.get("stopped_epoch")
        partial = data.get("partial")
        if partial is not None and not isinstance(partial, dict):
            raise ValueError(f"history 'partial' must be a JSON object or null; got {partial!r:.60}.")
        history.partial = partial
        return history

    def __repr__(self) -> str:
        if not len(self):
            return "History(0 epochs)"
        last = self.last()
        acc = last["val_accuracy"]
        return f"History({len(self)} epochs, cost={last['cost']:.4g}" + (f", val_accuracy={acc:.4f})" if acc is not None else ")")
