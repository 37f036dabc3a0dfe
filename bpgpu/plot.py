"""``plot_history``: cost, accuracy and per-layer gradient norms of a training run, as one image.

Needs matplotlib (the optional extra: ``pip install 'bpgpu[plot]'``), imported only when called;
draws on a ``Figure`` with the Agg canvas (no pyplot, no display) and saves atomically.
"""

from __future__ import annotations

import os
from typing import Any


def _columns(history: Any) -> dict[str, Any]:
    data = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    if not data.get("epoch"):
        raise ValueError("the history is empty (no epoch was recorded); train first.")
    return data


def plot_history(history: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """Save a figure of ``history`` (a :class:`bpgpu.History` or its ``to_dict()``) to ``path``; the
    format follows the suffix (.png, .pdf, .svg). Returns the path."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install 'bpgpu[plot]' (or pip install matplotlib).") from None
    from bpgpu.io.format import atomic_write

    data = _columns(history)
    epochs = data["epoch"]
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_cost, ax_acc, ax_grad = fig.subplots(1, 3)

    ax_cost.plot(epochs, data["cost"], label="training")
    if any(v is not None for v in data["val_cost"]):
        ax_cost.plot(epochs, [float("nan") if v is None else v for v in data["val_cost"]], label="validation")
    ax_cost.set(title="cost", xlabel="epoch")
    ax_cost.legend()

    if any(v is not None for v in data["val_accuracy"]):
        ax_acc.plot(epochs, [float("nan") if v is None else 100 * v for v in data["val_accuracy"]])
        ax_acc.set(title="validation accuracy (%)", xlabel="epoch")
    else:
        ax_acc.text(0.5, 0.5, "no validation accuracy", ha="center", va="center", transform=ax_acc.transAxes)
        ax_acc.set(title="validation accuracy", xlabel="epoch")

    norms = [g for g in data.get("grad_norms", []) if g]
    if norms and len(norms) == len(epochs):
        for l in range(len(norms[0])):
            ax_grad.plot(epochs, [g[l] for g in norms], label=f"‖∂C/∂W{l + 1}‖")
        if all(v > 0 for g in norms for v in g):
            ax_grad.set_yscale("log")
        ax_grad.legend()
    else:
        ax_grad.text(0.5, 0.5, "gradient norms not recorded", ha="center", va="center", transform=ax_grad.transAxes)
    ax_grad.set(title="mean weight-gradient norm per layer", xlabel="epoch")
    if title:
        fig.suptitle(title)

    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=100))
