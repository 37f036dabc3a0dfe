"""Checkpoints: everything a resumed ``fit`` needs to end with the same weights as an uninterrupted
run — parameters, optimizer state (velocities / moments and step count), the shuffling RNG's
position, the number of completed epochs, the history, the early-stopping state, whether the run had
finished or stopped early, and a fingerprint of the training data — in the format of
:mod:`bpgpu.io.format` (kind ``bpgpu-checkpoint``).

A checkpoint is validated as strictly as a model file: the member list is exactly the arrays a
checkpoint of that network has (parameters, ``opt.<state>.<i>`` shaped like parameter i, optional
``best.*``), every shape is checked before any array is read, and every value must be a finite float
that fits the network's dtype. The semantic checks (optimizer, RNG, early stopping, history) are in
:mod:`bpgpu.training.resume`, which turns the file back into a run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.errors import BpgpuError, ModelFileError
from bpgpu.io import format as fmt
from bpgpu.io.model import (
    CONFIG_KEYS, check_finite_for_save, check_parameter_values, check_sizes_match, parameter_arrays,
    parameter_shapes, split_parameters,
)

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
    fit: dict[str, Any]                          # batch_size, shuffle, epochs, data fingerprint …
    run: dict[str, Any]                          # {"finished": bool, "stopped": bool}


def save(
    path: str | os.PathLike, net: Any, epoch: int, optimizer: Any, rng: dict[str, Any] | None,
    history: dict[str, Any], early_stopping: Any = None, fit: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint atomically (rank 0 only, in data-parallel runs). ``run`` records whether
    the run had finished or stopped early (a resume then trains nothing more)."""
    arrays = parameter_arrays(net.weights, net.biases)
    for name, values in optimizer.state.items():
        arrays.update({f"opt.{name}.{i}": np.asarray(to_host(v)) for i, v in enumerate(values)})
    es_state = None
    if early_stopping is not None:
        es_state = early_stopping.state()
        if early_stopping.best_params is not None:
            arrays.update(parameter_arrays(*early_stopping.best_params, prefix="best."))
    check_finite_for_save(arrays, "the checkpoint (parameters or optimizer state)")
    stopped = history.get("stopped_epoch") is not None
    run = {"finished": bool(stopped or (fit or {}).get("epochs") == epoch), "stopped": stopped, **(run or {})}
    header = {
        "config": net.config(), "epoch": int(epoch), "rng": rng, "history": history,
        "optimizer": {"config": optimizer.config(), "scalars": optimizer.scalars(), "state": list(optimizer.state)},
        "early_stopping": es_state, "fit": fit or {}, "run": run,
    }
    return fmt.write(path, KIND, header, arrays)


def expected_shapes(header: dict[str, Any], path: str) -> dict[str, tuple[int, ...]]:
    """Every array a checkpoint with this (already type-checked) header holds, by name."""
    sizes = header["config"]["sizes"]
    params = parameter_shapes(sizes)
    order = list(params)[0::2] + list(params)[1::2]          # W1…WL, b1…bL: the optimizer's order
    want = dict(params)
    for name in header["optimizer"].get("state", []):
        want.update({f"opt.{name}.{i}": params[p] for i, p in enumerate(order)})
    return want


def _check_shapes(header: dict[str, Any], shapes: dict[str, tuple[int, ...]], path: str) -> None:
    _check_header(header, path)
    check_sizes_match(header["config"], shapes, path)
    want = expected_shapes(header, path)
    if "best.W1" in shapes:
        check_sizes_match(header["config"], shapes, path, prefix="best.")
        want.update(parameter_shapes(header["config"]["sizes"], "best."))
    for name, shape in want.items():
        if name not in shapes:
            raise ModelFileError(f"{path!r} lacks the array {name!r}; the checkpoint is incomplete.")
        if tuple(shapes[name]) != shape:
            raise ModelFileError(f"{path!r}: array {name!r} has shape {tuple(shapes[name])}, but a checkpoint of "
                                 f"sizes {header['config']['sizes']} needs {shape}.")
    extra = sorted(set(shapes) - set(want))
    if extra:
        raise ModelFileError(f"{path!r} holds arrays a checkpoint does not have ({', '.join(extra[:5])}); "
                             "it is corrupted or tampered with.")


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and check a checkpoint (ModelFileError when it is damaged, incomplete or hostile)."""
    path = os.fspath(path)
    header, arrays = fmt.read(path, KIND, lambda h, shapes: _check_shapes(h, shapes, path))
    return from_parts(header, arrays, path)


def to_parts(state: Checkpoint) -> tuple[bytes, dict[str, np.ndarray]]:
    """A read checkpoint as (header bytes, arrays): what rank 0 broadcasts (see resume.py)."""
    header = {"config": state.config, "epoch": state.epoch, "rng": state.rng, "history": state.history,
              "optimizer": state.optimizer, "early_stopping": state.early_stopping, "fit": state.fit, "run": state.run}
    arrays = parameter_arrays(state.weights, state.biases)
    for name, values in state.optimizer_state.items():
        arrays.update({f"opt.{name}.{i}": a for i, a in enumerate(values)})
    if state.best is not None:
        arrays.update(parameter_arrays(*state.best, prefix="best."))
    return json.dumps(header).encode("utf-8"), arrays


def from_parts(header: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> Checkpoint:
    """A :class:`Checkpoint` from a validated-shape header and its arrays (values are checked here)."""
    _check_header(header, path)
    config, epoch, opt = header["config"], header["epoch"], header["optimizer"]
    check_parameter_values(arrays, path, np.dtype(config["dtype"]) if config["dtype"] in ("float32", "float64") else None)
    layers = len(config["sizes"]) - 1
    state = {name: [arrays[f"opt.{name}.{i}"] for i in range(2 * layers)] for name in opt.get("state", [])}
    weights, biases = split_parameters(arrays, layers, "", path)
    best = split_parameters(arrays, layers, "best.", path) if "best.W1" in arrays else None
    return Checkpoint(
        config=config, epoch=epoch, weights=weights, biases=biases, optimizer=opt, optimizer_state=state,
        rng=header.get("rng"), history=header.get("history") or {}, early_stopping=header.get("early_stopping"),
        best=best, fit=header.get("fit") or {}, run=header.get("run") or {},
    )


def _check_header(header: dict[str, Any], path: str) -> None:
    """The checkpoint's header fields have the types :func:`save` writes (ModelFileError otherwise)."""
    def bad(what: str, value: Any) -> ModelFileError:
        return ModelFileError(f"{path!r} is a damaged checkpoint: {what}; got {value!r:.80}.")

    for key in ("config", "optimizer"):
        if not isinstance(header.get(key), dict):
            raise bad(f"its {key!r} must be a JSON object", header.get(key))
    config = header["config"]
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise bad(f"its config lacks {', '.join(missing)}", config)
    if config["dtype"] not in ("float32", "float64", "float16"):
        raise bad("its config's dtype must be float32 or float64", config["dtype"])
    epoch = header.get("epoch")
    if type(epoch) is not int or epoch < 0:
        raise bad("its 'epoch' must be a whole number ≥ 0", epoch)
    for key in ("rng", "history", "early_stopping", "fit", "run"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            raise bad(f"its {key!r} must be a JSON object or null", header[key])
    opt = header["optimizer"]
    for key, kind in (("config", dict), ("scalars", dict), ("state", list)):
        if key in opt and not isinstance(opt[key], kind):
            raise bad(f"its optimizer {key!r} must be a JSON {'object' if kind is dict else 'list'}", opt[key])
    names = opt.get("state", [])
    if not all(isinstance(name, str) and name.isidentifier() for name in names) or len(set(names)) != len(names):
        raise bad("its optimizer state names must be distinct identifiers", names)
    for key in ("finished", "stopped"):
        if key in (header.get("run") or {}) and type(header["run"][key]) is not bool:
            raise bad(f"its run {key!r} flag must be true or false", header["run"][key])


# -- reading (rank 0) and sharing ---------------------------------------------------------------------

def read_shared(path: Any, comm: Any, backend: Any) -> Checkpoint:
    """The checkpoint at ``path``, read by rank 0 only and broadcast to the other ranks (which need no
    shared filesystem). A failure on rank 0 reaches every rank as an error, not a hang."""
    path = os.fspath(path)
    if comm is None or comm.size == 1:
        return load(path)
    root = comm.rank == 0
    error: BaseException | None = None
    blob, arrays = b"", {}
    if root:
        try:
            header_bytes, arrays = to_parts(load(path))
            table = {name: [list(a.shape), a.dtype.str] for name, a in arrays.items()}
            blob = json.dumps({"header": json.loads(header_bytes), "table": table}).encode("utf-8")
        except (BpgpuError, OSError) as exc:
            error = exc
    n = int(comm.allreduce_scalar(float(len(blob) if error is None else -1) if root else 0.0))
    if n < 0:
        if root:
            raise error  # type: ignore[misc]
        raise ModelFileError(f"rank 0 could not read the checkpoint {path!r} (see rank 0's error).")
    raw = np.frombuffer(blob, dtype=np.uint8) if root else np.zeros(n, dtype=np.uint8)
    raw = to_host(comm.broadcast([to_backend(raw, backend)], root=0)[0])
    meta = json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode("utf-8"))
    names = list(meta["table"])
    mine = [arrays[k] if root else np.zeros(tuple(meta["table"][k][0]), dtype=np.dtype(meta["table"][k][1])) for k in names]
    got = comm.broadcast([to_backend(a, backend) for a in mine], root=0)
    return from_parts(meta["header"], {k: np.asarray(to_host(a)) for k, a in zip(names, got)}, path)
