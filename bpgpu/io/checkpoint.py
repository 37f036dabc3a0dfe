"""Checkpoints: everything a resumed ``fit`` needs to end with the same weights as an uninterrupted
run — parameters, optimizer state (velocities / moments and step count), the shuffling RNG's
position, the number of completed epochs, the history and the early-stopping state — in the format
of :mod:`bpgpu.io.format` (kind ``bpgpu-checkpoint``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_host
from bpgpu.errors import ModelFileError
from bpgpu.io import format as fmt
from bpgpu.io.model import parameter_arrays, split_parameters

KIND = "bpgpu-checkpoint"


@dataclass
class Checkpoint:
    """A checkpoint read back on the host (arrays are NumPy; the loop moves them to the device)."""

    config: dict[str, Any]
    epoch: int                                   # epochs completed
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    optimizer: dict[str, Any]                    # {"config": …, "scalars": …}
    optimizer_state: dict[str, list[np.ndarray]]
    rng: dict[str, Any] | None                   # numpy bit-generator state (None: no shuffling)
    history: dict[str, Any]
    early_stopping: dict[str, Any] | None
    best: tuple[list[np.ndarray], list[np.ndarray]] | None
    fit: dict[str, Any]                          # batch_size, shuffle … (for a consistency check)


def save(
    path: str | os.PathLike, net: Any, epoch: int, optimizer: Any, rng: dict[str, Any] | None,
    history: dict[str, Any], early_stopping: Any = None, fit: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint atomically (rank 0 only, in data-parallel runs)."""
    arrays = parameter_arrays(net.weights, net.biases)
    for name, values in optimizer.state.items():
        arrays.update({f"opt.{name}.{i}": np.asarray(to_host(v)) for i, v in enumerate(values)})
    es_state = None
    if early_stopping is not None:
        es_state = early_stopping.state()
        if early_stopping.best_params is not None:
            arrays.update(parameter_arrays(*early_stopping.best_params, prefix="best."))
    header = {
        "config": net.config(), "epoch": int(epoch), "rng": rng, "history": history,
        "optimizer": {"config": optimizer.config(), "scalars": optimizer.scalars(), "state": list(optimizer.state)},
        "early_stopping": es_state, "fit": fit or {},
    }
    return fmt.write(path, KIND, header, arrays)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and check a checkpoint (ModelFileError when it is damaged or incomplete)."""
    path = os.fspath(path)
    header, arrays = fmt.read(path, KIND)
    _check_header(header, path)
    try:
        config, epoch, opt = header["config"], int(header["epoch"]), header["optimizer"]
        layers = len(config["sizes"]) - 1
        state = {
            name: [arrays[f"opt.{name}.{i}"] for i in range(2 * layers)] for name in opt.get("state", [])
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r} is an incomplete checkpoint (missing or invalid {exc}).") from None
    weights, biases = split_parameters(arrays, layers, "", path)
    best = split_parameters(arrays, layers, "best.", path) if "best.W1" in arrays else None
    return Checkpoint(
        config=config, epoch=epoch, weights=weights, biases=biases, optimizer=opt, optimizer_state=state,
        rng=header.get("rng"), history=header.get("history") or {}, early_stopping=header.get("early_stopping"),
        best=best, fit=header.get("fit") or {},
    )


def _check_header(header: dict[str, Any], path: str) -> None:
    """The checkpoint's header fields have the types :func:`save` writes (ModelFileError otherwise)."""
    def bad(what: str, value: Any) -> ModelFileError:
        return ModelFileError(f"{path!r} is a damaged checkpoint: {what}; got {value!r:.80}.")

    for key in ("config", "optimizer"):
        if not isinstance(header.get(key), dict):
            raise bad(f"its {key!r} must be a JSON object", header.get(key))
    epoch = header.get("epoch")
    if type(epoch) is not int or epoch < 0:
        raise bad("its 'epoch' must be a whole number ≥ 0", epoch)
    for key in ("rng", "history", "early_stopping", "fit"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            raise bad(f"its {key!r} must be a JSON object or null", header[key])
    opt = header["optimizer"]
    for key, kind in (("config", dict), ("scalars", dict), ("state", list)):
        if key in opt and not isinstance(opt[key], kind):
            raise bad(f"its optimizer {key!r} must be a JSON {'object' if kind is dict else 'list'}", opt[key])
    if not all(isinstance(name, str) for name in opt.get("state", [])):
        raise bad("its optimizer state names must be strings", opt.get("state"))
