"""Resuming ``fit`` from a checkpoint: the file is read, checked against the network and the call,
and its parameters, optimizer, RNG, early-stopping and history state are restored."""

from __future__ import annotations

from typing import Any

from bpgpu.backend.arrays import to_backend
from bpgpu.backend.random import rng_from_state
from bpgpu.errors import BpgpuError, ConfigError, ModelFileError
from bpgpu.io import checkpoint as ckpt
from bpgpu.training.history import History
from bpgpu.training.optimizers import Optimizer
from bpgpu.training.optimizers import from_config as optimizer_from_config


def resume_from(net: Any, path: Any, optimizer: Optimizer | None, es: Any, batch_size: int | None = None) -> tuple:
    state = ckpt.load(path)
    mine = net.config()
    if state.config != mine:
        diff = {k: (state.config.get(k), mine.get(k)) for k in mine if state.config.get(k) != mine.get(k)}
        raise ConfigError(
            f"checkpoint {str(path)!r} is for another network: (saved, this net) differ in {diff}; "
            "build the network with the checkpoint's settings."
        )
    saved_batch = state.fit.get("batch_size")
    if batch_size is not None and saved_batch is not None and saved_batch != batch_size:
        raise ConfigError(
            f"checkpoint {str(path)!r} was written with batch_size={saved_batch!r} but fit was given "
            f"batch_size={batch_size}; resume with the same batch_size to continue the same run."
        )
    net.set_parameters(state.weights, state.biases)
    saved_opt = state.optimizer.get("config", {})
    if optimizer is not None and optimizer.name != saved_opt.get("name"):
        raise ConfigError(
            f"checkpoint {str(path)!r} was written with optimizer {saved_opt.get('name')!r} but fit was given "
            f"{optimizer.name!r}; pass the same optimizer (or optimizer=None to rebuild it from the checkpoint)."
        )
    try:  # a damaged checkpoint must give ModelFileError, never a raw KeyError/AttributeError
        if optimizer is None:
            optimizer = optimizer_from_config(saved_opt)
        arrays = {name: [to_backend(a, net.backend, net.dtype) for a in values] for name, values in state.optimizer_state.items()}
        optimizer.load_state(arrays, state.optimizer.get("scalars", {}))
        if es is not None and state.early_stopping is not None:
            best = None
            if state.best is not None:
                best = tuple([to_backend(a, net.backend, net.dtype) for a in group] for group in state.best)
            es.load_state(state.early_stopping, best)
        rng = rng_from_state(state.rng) if state.rng is not None else None
        history = History.from_dict(state.history)
    except ConfigError as exc:  # e.g. an unknown optimizer name in the file: say which file
        raise ConfigError(f"checkpoint {str(path)!r}: {exc}") from None
    except BpgpuError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(
            f"checkpoint {str(path)!r} is damaged: its optimizer, RNG, early-stopping or history state cannot be "
            f"restored ({type(exc).__name__}: {exc}). Resume from an earlier checkpoint or start again."
        ) from None
    return optimizer, rng, state.epoch, history
