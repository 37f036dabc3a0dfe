"""``net.save(path)`` / ``bpgpu.load(path, device=None)``: a network's configuration and parameters
in the portable format of :mod:`bpgpu.io.format` (host arrays, so a GPU-trained model loads anywhere).

Both directions apply the same rule: parameters are finite floating-point numbers. ``save`` refuses a
network holding NaN/inf (it could not be loaded back), ``load`` refuses a file holding them, and
loading into a narrower dtype (``dtype="float32"`` for a float64 file) refuses values that would
overflow to ±inf there."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import resolve
from bpgpu.errors import ConfigError, DataError, ModelFileError, ShapeError
from bpgpu.io import format as fmt

KIND = "bpgpu-model"
CONFIG_KEYS = ("sizes", "hidden", "output", "cost", "dtype", "init")


def parameter_arrays(weights: list[Any], biases: list[Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Host copies named ``W1…WL-1``, ``b1…`` (layer numbers as in ``net.weights[l]`` = W^{l+1})."""
    out = {f"{prefix}W{l + 1}": np.asarray(to_host(w)) for l, w in enumerate(weights)}
    out.update({f"{prefix}b{l + 1}": np.asarray(to_host(b)) for l, b in enumerate(biases)})
    return out


def check_finite_for_save(arrays: dict[str, np.ndarray], what: str) -> None:
    """Refuse to write NaN/inf parameters or state (``load`` would refuse the file)."""
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise DataError(
                f"{what} holds NaN or infinite values (in {name}); bpgpu does not save such a file, since "
                "loading it would be refused. Train again (lower the learning rate) or reload a good model."
            )


def split_parameters(arrays: dict[str, np.ndarray], layers: int, prefix: str = "", path: str = "") -> tuple[list, list]:
    try:
        return ([arrays[f"{prefix}W{l + 1}"] for l in range(layers)], [arrays[f"{prefix}b{l + 1}"] for l in range(layers)])
    except KeyError as exc:
        raise ModelFileError(f"{path!r} lacks the parameter array {exc.args[0]!r}; the file is incomplete.") from None


def check_sizes(config: Any, path: str) -> list[int]:
    sizes = config.get("sizes") if isinstance(config, dict) else None
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(type(n) is int and n > 0 for n in sizes):
        raise ModelFileError(f"{path!r}: the header's sizes must be a list of positive layer widths; got {sizes!r}.")
    return sizes


def parameter_shapes(sizes: list[int], prefix: str = "") -> dict[str, tuple[int, ...]]:
    """``{prefix}W^l``: (n_l, n_{l−1}) and ``{prefix}b^l``: (n_l,) for a network of ``sizes``."""
    out: dict[str, tuple[int, ...]] = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"{prefix}W{l + 1}"], out[f"{prefix}b{l + 1}"] = (n_out, n_in), (n_out,)
    return out


def check_sizes_match(config: Any, shapes: dict[str, Any], path: str, prefix: str = "") -> None:
    """The header's ``sizes`` must be the shapes of the stored W^l / b^l (``shapes``: name → shape, or
    name → array) — checked before any array is read or a network of that size is built, so a damaged
    or hostile header can never make bpgpu allocate a huge network."""
    sizes = check_sizes(config, path)
    for name, shape in parameter_shapes(sizes, prefix).items():
        if name not in shapes:
            raise ModelFileError(f"{path!r} lacks the parameter array {name!r}; the file is incomplete.")
        got = tuple(getattr(shapes[name], "shape", shapes[name]))
        if got != shape:
            raise ModelFileError(
                f"{path!r}: the parameters do not fit the saved sizes {sizes}: {name} has shape {got}, expected {shape}."
            )


def check_parameter_values(arrays: dict[str, np.ndarray], path: str, dtype: Any = None) -> None:
    """Floating point, finite, and (when loading into ``dtype``) within that dtype's range."""
    limit = float(np.finfo(dtype).max) if dtype is not None else None
    for name, a in arrays.items():
        if a.dtype.kind != "f":
            raise ModelFileError(f"{path!r}: parameters must be floating point; {name} has dtype {a.dtype}.")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path!r}: the saved parameters contain NaN or infinite values (in {name}).")
        if limit is not None and a.size and a.dtype.itemsize > np.dtype(dtype).itemsize:
            biggest = float(np.max(np.abs(a)))
            if biggest > limit:
                raise ModelFileError(
                    f"{path!r}: {name} holds {biggest:.3g}, which overflows {np.dtype(dtype).name} (largest "
                    f"{limit:.3g}); load it as {a.dtype.name} (dtype={a.dtype.name!r})."
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
            precision=config.get("precision") if dtype in (None, "float32") else None,  # mixed16 masters: float32
        )
    except (ConfigError, ShapeError, TypeError) as exc:  # a DeviceError (the device asked for) propagates
        raise ModelFileError(f"{path!r}: the saved configuration is not valid ({exc}).") from None


def load_parameters(net: Any, arrays: dict[str, np.ndarray], path: str, prefix: str = "") -> None:
    weights, biases = split_parameters(arrays, len(net.weights), prefix, path)
    names = list(parameter_shapes(net.sizes, prefix))
    check_parameter_values(dict(zip(names[0::2] + names[1::2], weights + biases)), path, _host_dtype(net))
    for l, (w, b) in enumerate(zip(weights, biases)):
        if tuple(w.shape) != tuple(net.weights[l].shape) or tuple(b.shape) != tuple(net.biases[l].shape):
            raise ModelFileError(f"{path!r}: the parameters do not fit the saved sizes (layer {l + 1}: weights "
                                 f"{tuple(w.shape)}, biases {tuple(b.shape)}).")
    # The arrays were just read into buffers nobody else holds: adopt them (no copy on the CPU), so
    # loading peaks at about twice the model (these plus the network's initial parameters, freed here).
    net.weights = [to_backend(w, net.backend, net.dtype) for w in weights]
    net.biases = [to_backend(b, net.backend, net.dtype) for b in biases]


def _host_dtype(net: Any) -> np.dtype:
    return np.dtype(net.dtype_name)


def save(net: Any, path: str | os.PathLike) -> str:
    """Write ``net`` to ``path`` (exactly that name) atomically; returns the path. A network holding
    NaN/inf parameters is refused (DataError): such a file could not be loaded back."""
    arrays = parameter_arrays(net.weights, net.biases)
    check_finite_for_save(arrays, "the network")
    return fmt.write(path, KIND, {"config": net.config()}, arrays)


def load(path: str | os.PathLike, device: Any = None, xp: Any = None, dtype: str | None = None) -> Any:
    """The network saved at ``path``, on ``device`` (default: ``BPGPU_DEVICE``, else the CPU) — any device,
    whatever device it was trained on. ``dtype`` overrides the saved one (values that would overflow it
    are refused)."""
    path = os.fspath(path)

    built: list[Any] = []

    def check(header: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
        """Before any array is read: the shapes fit the config, nothing else is stored, and the network
        is built (its initial parameters are freed when the loaded ones replace them: peak ≈ 2× model)."""
        check_sizes_match(header.get("config"), shapes, path)
        extra = sorted(set(shapes) - set(parameter_shapes(header["config"]["sizes"])))
        if extra:
            raise ModelFileError(f"{path!r} holds arrays a model file does not have ({', '.join(extra[:5])}); "
                                 "it is corrupted or tampered with.")
        built.append(build(header.get("config"), path, device, xp, dtype))

    _, arrays = fmt.read(path, KIND, check)
    net = built[0]
    load_parameters(net, arrays, path)
    return net
