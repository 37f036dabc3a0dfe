"""``net.save(path)`` / ``bpgpu.load(path, device=None)``: a network's configuration and parameters
in the portable format of :mod:`bpgpu.io.format` (host arrays, so a GPU-trained model loads anywhere)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_host
from bpgpu.backend.device import resolve
from bpgpu.errors import BpgpuError, ConfigError, ModelFileError, ShapeError
from bpgpu.io import format as fmt

KIND = "bpgpu-model"
CONFIG_KEYS = ("sizes", "hidden", "output", "cost", "dtype", "init")


def parameter_arrays(weights: list[Any], biases: list[Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Host copies named ``W1…WL-1``, ``b1…`` (layer numbers as in ``net.weights[l]`` = W^{l+1})."""
    out = {f"{prefix}W{l + 1}": np.asarray(to_host(w)) for l, w in enumerate(weights)}
    out.update({f"{prefix}b{l + 1}": np.asarray(to_host(b)) for l, b in enumerate(biases)})
    return out


def split_parameters(arrays: dict[str, np.ndarray], layers: int, prefix: str = "", path: str = "") -> tuple[list, list]:
    try:
        return ([arrays[f"{prefix}W{l + 1}"] for l in range(layers)], [arrays[f"{prefix}b{l + 1}"] for l in range(layers)])
    except KeyError as exc:
        raise ModelFileError(f"{path!r} lacks the parameter array {exc.args[0]!r}; the file is incomplete.") from None


def check_sizes_match(config: Any, arrays: dict[str, np.ndarray], path: str, prefix: str = "") -> None:
    """The header's ``sizes`` must be the shapes of the stored W^l / b^l — checked before a network of
    that size is built, so a damaged or hostile header can never make bpgpu allocate a huge network."""
    sizes = config.get("sizes") if isinstance(config, dict) else None
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(type(n) is int and n > 0 for n in sizes):
        raise ModelFileError(f"{path!r}: the header's sizes must be a list of positive layer widths; got {sizes!r}.")
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape in ((f"{prefix}W{l + 1}", (n_out, n_in)), (f"{prefix}b{l + 1}", (n_out,))):
            if name not in arrays:
                raise ModelFileError(f"{path!r} lacks the parameter array {name!r}; the file is incomplete.")
            if tuple(arrays[name].shape) != shape:
                raise ModelFileError(
                    f"{path!r}: the parameters do not fit the saved sizes {sizes}: {name} has shape "
                    f"{tuple(arrays[name].shape)}, expected {shape}."
                )


def build(config: Any, path: str, device: Any = None, xp: Any = None, dtype: str | None = None) -> Any:
    """An MLP from a header's config (validated: a bad config is a ModelFileError naming the file)."""
    from bpgpu.network import MLP

    if not isinstance(config, dict) or any(k not in config for k in CONFIG_KEYS):
        raise ModelFileError(f"{path!r}: the header's config must give {', '.join(CONFIG_KEYS)}; got {config!r}.")
    backend = resolve(device, xp)  # a bad device argument is the caller's ConfigError, not the file's
    if dtype is not None:
        backend.dtype(dtype)
    try:
        return MLP(
            config["sizes"], hidden=config["hidden"], output=config["output"], cost=config["cost"],
            dtype=dtype or config["dtype"], device=backend, init=config["init"], seed=0,
        )
    except (ConfigError, ShapeError, TypeError) as exc:  # a DeviceError (the device asked for) propagates
        raise ModelFileError(f"{path!r}: the saved configuration is not valid ({exc}).") from None


def load_parameters(net: Any, arrays: dict[str, np.ndarray], path: str, prefix: str = "") -> None:
    weights, biases = split_parameters(arrays, len(net.weights), prefix, path)
    for a in weights + biases:
        if a.dtype.kind != "f":
            raise ModelFileError(f"{path!r}: parameters must be floating point; found dtype {a.dtype}.")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path!r}: the saved parameters contain NaN or infinite values.")
    try:
        net.set_parameters(weights, biases)
    except BpgpuError as exc:
        raise ModelFileError(f"{path!r}: the parameters do not fit the saved sizes ({exc}).") from None


def save(net: Any, path: str | os.PathLike) -> str:
    """Write ``net`` to ``path`` (exactly that name) atomically; returns the path."""
    return fmt.write(path, KIND, {"config": net.config()}, parameter_arrays(net.weights, net.biases))


def load(path: str | os.PathLike, device: Any = None, xp: Any = None, dtype: str | None = None) -> Any:
    """The network saved at ``path``, on ``device`` (default: ``BPGPU_DEVICE``, else the CPU) — any device,
    whatever device it was trained on. ``dtype`` overrides the saved one."""
    path = os.fspath(path)
    header, arrays = fmt.read(path, KIND)
    check_sizes_match(header.get("config"), arrays, path)
    net = build(header.get("config"), path, device, xp, dtype)
    load_parameters(net, arrays, path)
    return net
