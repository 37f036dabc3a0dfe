"""``plot_history``: cost, accuracy and per-layer gradient norms of a training run, as one image.

Needs matplotlib (the optional extra: ``pip install ".[plot]"`` from a checkout, or
``pip install matplotlib``), imported only when called; draws on a ``Figure`` with the Agg canvas (no
pyplot, no display) and saves atomically (:func:`bpgpu.io.format.atomic_write`: a new file gets the
umask's mode, an existing one keeps its own). :func:`check_plot_path` checks a path up front (the CLI
runs it before training)."""

from __future__ import annotations

import os
from typing import Any


def _columns(history: Any) -> dict[str, Any]:
    data = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    if not data.get("epoch"):
        raise ValueError("the history is empty (no epoch was recorded); train first.")
    return data


INSTALL_HINT = 'pip install matplotlib (or pip install ".[plot]" from the bpgpu checkout)'


def _matplotlib(what: str = "plot_history") -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{what} needs matplotlib, the 'plot' extra of bpgpu[plot]; install it: {INSTALL_HINT}.") from None
    return Figure, FigureCanvasAgg


def plot_format(path: str | os.PathLike) -> str:
    """The image format a path's suffix asks for ("png" without one)."""
    return os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"


def check_plot_path(path: str | os.PathLike, what: str = "plot_history") -> str:
    """Everything :func:`plot_history` would fail on, checked before any training: matplotlib is
    installed (ImportError naming the extra), the suffix is a format it writes (ConfigError listing
    them), the folder exists and the target is a regular file or absent. Returns the format."""
    from bpgpu.errors import ConfigError
    from bpgpu.io.format import check_target

    Figure, FigureCanvasAgg = _matplotlib(what)
    fmt = plot_format(path)
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if fmt not in supported:
        raise ConfigError(f"{what}: {os.fspath(path)!r} asks for the format {fmt!r}, which matplotlib does not write; "
                          f"use one of the suffixes {', '.join('.' + k for k in sorted(supported))} (e.g. history.png).")
    check_target(path, what=f"{what} {os.fspath(path)!r}")
    return fmt


def plot_history(history: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """Save a figure of ``history`` (a :class:`bpgpu.History` or its ``to_dict()``) to ``path``; the
    format follows the suffix (.png, .pdf, .svg). Returns the path."""
    from bpgpu.io.format import atomic_write

    fmt = check_plot_path(path)
    Figure, FigureCanvasAgg = _matplotlib()
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
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=100))
