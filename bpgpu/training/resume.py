"""Resuming ``fit`` from a checkpoint: the file is read (by rank 0 only in a data-parallel run, then
broadcast), checked against the network and the call, and its parameters, optimizer, RNG,
early-stopping and history state are restored.

A resume continues *the same run* or is refused, naming what differs: the network, batch size,
shuffling, the training data (its :func:`data_fingerprint`: rows, shapes and a checksum) and the
optimizer's settings (name, momentum, learning rate or schedule, weight decay, …). To continue on
purpose with other data or other optimizer settings, say so: ``resume=Resume(path, allow=("data",
"optimizer"))``. A run that had stopped early resumes to its end without another epoch.

Before the first epoch :func:`check_checkpoint_path` validates a ``checkpoint=`` path (its format
fields, its folder, that it is a file path at all), so a typo fails at once, not after an epoch.
"""

from __future__ import annotations

import json
import math
import os
import string
from dataclasses import dataclass, field
from typing import Any

from bpgpu.backend.arrays import to_backend
from bpgpu.backend.random import rng_from_state
from bpgpu.errors import BpgpuError, ConfigError, ModelFileError
from bpgpu.io import checkpoint as ckpt
from bpgpu.io import format as fmt
from bpgpu.io.checkpoint import read_shared
from bpgpu.io.fingerprint import data_fingerprint
from bpgpu.training.history import COLUMNS, History
from bpgpu.training.optimizers import Optimizer
from bpgpu.training.optimizers import from_config as optimizer_from_config

ALLOW = ("data", "optimizer")
__all__ = ["ALLOW", "Resume", "check_checkpoint_path", "checkpoint_path", "data_fingerprint", "read_shared", "resume_from"]


@dataclass(frozen=True)
class Resume:
    """``fit(..., resume=Resume(path, allow=(...)))``: resume from ``path`` while accepting the listed
    differences from the saved run — "data" (other training data) and/or "optimizer" (other optimizer
    settings: its saved state is kept where it fits and reset where it does not)."""

    path: Any
    allow: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.path, bool) or not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"resume must be the path of a checkpoint written by fit(checkpoint=...); got "
                            f"{self.path!r:.60} ({type(self.path).__name__}).")
        allow = (self.allow,) if isinstance(self.allow, str) else tuple(self.allow)
        bad = [a for a in allow if a not in ALLOW]
        if bad:
            raise ConfigError(f"Resume allow={bad!r} is not a difference bpgpu can accept; valid: {', '.join(ALLOW)}.")
        object.__setattr__(self, "allow", allow)


def as_resume(value: Any) -> Resume:
    return value if isinstance(value, Resume) else Resume(value)


# -- the data fingerprint (computed in bpgpu.io.fingerprint) -------------------------------------------

def _data_differences(saved: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    out = []
    for key, what in (("rows", "rows"), ("x_shape", "x's shape"), ("y_shape", "y's shape")):
        if saved.get(key) != mine.get(key):
            out.append(f"{what}: saved {saved.get(key)}, given {mine.get(key)}")
    if not out:
        sums = saved.get("sums")
        if not isinstance(sums, list) or len(sums) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in sums):
            raise ModelFileError(f"the checkpoint's data fingerprint is damaged (sums {sums!r:.60}).")
        close = all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6 * max(1, mine["rows"])) for a, b in zip(sums, mine["sums"]))
        if not close or saved.get("sample_sha256") != mine["sample_sha256"]:
            out.append("the values (checksum differs)")
    return out


# -- the optimizer ------------------------------------------------------------------------------------

def _optimizer_differences(saved: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(mine)):
        a, b = saved.get(key), mine.get(key)
        if key == "schedule" and (a is None or b is None):  # a custom callable: cannot be compared
            continue
        if json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
            out.append(f"{key}: saved {a!r}, given {b!r}")
    return out


# -- checkpoint paths ---------------------------------------------------------------------------------

def checkpoint_path(template: Any, epoch: int) -> str:
    """The file a checkpoint after ``epoch`` epochs goes to (``{epoch}`` fields filled in)."""
    text = os.fspath(template)
    return text.format(epoch=epoch) if "{" in text else text


def check_checkpoint_path(template: Any, epochs: int = 1) -> None:
    """Validate ``fit(checkpoint=...)`` before the first epoch: a str/PathLike whose only format field
    is ``{epoch}`` (with an optional integer format such as ``{epoch:03d}``), whose folder exists and
    whose target (for the first and last epoch) is a regular file or absent."""
    if isinstance(template, bool) or not isinstance(template, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path such as 'ck-{{epoch}}.npz'; got {template!r:.60} "
                        f"({type(template).__name__}).")
    text = os.fspath(template)
    if not isinstance(text, str) or not text:
        raise TypeError(f"checkpoint must be a non-empty text path; got {template!r:.60}.")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"checkpoint={text!r} is not a valid path template ({exc}); write braces as "
                          "{{ and }}, and use only the field {epoch}.") from None
    bad = [f for f in fields if f != "epoch"]
    if bad:
        raise ConfigError(f"checkpoint={text!r} uses the field {{{bad[0]}}}; the only field a checkpoint path "
                          "may contain is {epoch} (e.g. 'ck-{epoch:03d}.npz').")
    try:
        first, last = checkpoint_path(text, 1), checkpoint_path(text, epochs)
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"checkpoint={text!r}: its {{epoch}} field cannot be filled in ({exc}); use e.g. "
                          "{epoch} or {epoch:03d}.") from None
    for path in {first, last}:
        fmt.check_target(path, what=f"checkpoint={path!r}")


# -- resuming -----------------------------------------------------------------------------------------

def resume_from(
    net: Any, resume: Any, optimizer: Optimizer | None, es: Any, batch_size: int | None = None,
    fingerprint: dict[str, Any] | None = None, comm: Any = None, shuffle: bool | None = None,
) -> tuple:
    """``(optimizer, rng, epochs_done, history)`` of the checkpoint ``resume`` (a path or a
    :class:`Resume`), restored into ``net`` (parameters), ``es`` (early stopping) and the optimizer
    (the given one, or one rebuilt from the file). ``history.stopped_epoch`` is set when the saved run
    had stopped early: the caller then trains no further epoch."""
    request = as_resume(resume)
    path = os.fspath(request.path)
    state = read_shared(path, comm, net.backend)
    mine = net.config()
    if state.config != mine:
        diff = {k: (state.config.get(k), mine.get(k)) for k in {**state.config, **mine}
                if state.config.get(k) != mine.get(k)}  # keys of either side (a mixed16 run saves "precision")
        raise ConfigError(
            f"checkpoint {path!r} is for another network: (saved, this net) differ in {diff}; "
            "build the network with the checkpoint's settings."
        )
    saved_fit = state.fit
    saved_batch = saved_fit.get("batch_size")
    if batch_size is not None and saved_batch is not None and saved_batch != batch_size:
        raise ConfigError(
            f"checkpoint {path!r} was written with batch_size={saved_batch!r} but fit was given "
            f"batch_size={batch_size}; resume with the same batch_size to continue the same run."
        )
    if shuffle is not None and "shuffle" in saved_fit and bool(saved_fit["shuffle"]) != bool(shuffle):
        raise ConfigError(f"checkpoint {path!r} was written with shuffle={saved_fit['shuffle']} but fit was given "
                          f"shuffle={shuffle}; resume with shuffle={saved_fit['shuffle']}.")
    if fingerprint is not None and isinstance(saved_fit.get("data"), dict) and "data" not in request.allow:
        try:
            differs = _data_differences(saved_fit["data"], fingerprint)
        except ModelFileError as exc:
            raise ModelFileError(f"checkpoint {path!r}: {exc}") from None
        if differs:
            raise ConfigError(
                f"checkpoint {path!r} was written while training on other data ({'; '.join(differs)}); resume "
                "with the same x and y, or pass resume=bpgpu.Resume(path, allow=('data',)) to continue on new data."
            )
    saved_opt = state.optimizer.get("config", {})
    if optimizer is not None and optimizer.name != saved_opt.get("name"):
        raise ConfigError(
            f"checkpoint {path!r} was written with optimizer {saved_opt.get('name')!r} but fit was given "
            f"{optimizer.name!r}; pass the same optimizer (or optimizer=None to rebuild it from the checkpoint)."
        )
    if optimizer is not None and "optimizer" not in request.allow:
        differs = _optimizer_differences(saved_opt, optimizer.config())
        if differs:
            raise ConfigError(
                f"checkpoint {path!r} was written with other optimizer settings ({'; '.join(differs)}); pass "
                "optimizer=None to continue with the saved one, or resume=bpgpu.Resume(path, allow=('optimizer',)) "
                "to change them on purpose."
            )
    try:  # a damaged checkpoint must give ModelFileError, never a raw KeyError/AttributeError
        if optimizer is None:
            optimizer = optimizer_from_config(saved_opt)
        rng = rng_from_state(state.rng) if state.rng is not None else None
        history = _history(state)
        arrays = {name: [to_backend(a, net.backend, net.dtype) for a in values] for name, values in state.optimizer_state.items()}
        _check_optimizer_state(optimizer, state, request)
        scalars = state.optimizer.get("scalars", {})
        if optimizer.state_names and set(optimizer.state_names) <= set(arrays):
            optimizer.load_state(arrays, scalars)
        else:  # allowed optimizer change whose state the file lacks: start that state afresh
            optimizer.reset(net.weights + net.biases)
            optimizer.steps = scalars.get("steps", 0)
        if es is not None and state.early_stopping is not None:
            best = None
            if state.best is not None:
                best = tuple([to_backend(a, net.backend, net.dtype) for a in group] for group in state.best)
            es.load_state(state.early_stopping, best, state.epoch)
        elif es is not None:  # the saved run had no early stopping: this one starts it afresh
            es.reset()
    except ConfigError as exc:  # a field of the file that does not hold up: name the file
        raise ModelFileError(f"checkpoint {path!r} is damaged or does not fit this fit: {exc}") from None
    except BpgpuError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise ModelFileError(
            f"checkpoint {path!r} is damaged: its optimizer, RNG, early-stopping or history state cannot be "
            f"restored ({type(exc).__name__}: {exc}). Resume from an earlier checkpoint or start again."
        ) from None
    net.set_parameters(state.weights, state.biases)
    if state.run.get("stopped") and history.stopped_epoch is None:
        history.stopped_epoch = state.epoch
    if history.stopped_epoch is not None and es is not None and es.restore_best and es.best_params is not None:
        # the saved run had stopped early: it ended with its best epoch's parameters, and so does this one
        net.set_parameters(*es.best_params)
    return optimizer, rng, state.epoch, history


def _check_optimizer_state(optimizer: Optimizer, state: ckpt.Checkpoint, request: Resume) -> None:
    names = set(state.optimizer_state)
    if names != set(optimizer.state_names) and "optimizer" not in request.allow:
        raise ConfigError(f"the saved optimizer state holds {sorted(names)} but {optimizer.name} keeps "
                          f"{sorted(optimizer.state_names)}.")
    steps = state.optimizer.get("scalars", {}).get("steps", 0)
    if type(steps) is not int or steps < 0:
        raise ConfigError(f"the saved optimizer step count must be a whole number ≥ 0; got {steps!r:.40}.")
    for a in state.optimizer_state.get("v", []) if optimizer.name == "adam" else []:
        if a.size and float(a.min()) < 0:
            raise ConfigError("the saved Adam second moments (v) hold negative values; they are squares.")


def _history(state: ckpt.Checkpoint) -> History:
    data = state.history
    n = state.epoch
    for name in COLUMNS:
        if name in data and (not isinstance(data[name], list) or len(data[name]) != n):
            raise ConfigError(f"the history column {name!r} must be a list of {n} entries (one per epoch done).")
    if "epoch" in data and data["epoch"] != list(range(1, n + 1)):
        raise ConfigError(f"the history's epoch column must be 1…{n}.")
    for key in ("best_epoch", "stopped_epoch"):
        value = data.get(key)
        if value is not None and (type(value) is not int or not 1 <= value <= n):
            raise ConfigError(f"the history's {key} must be an epoch 1…{n} or null; got {value!r:.40}.")
    return History.from_dict(data)
