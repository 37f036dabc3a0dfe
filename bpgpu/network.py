"""``MLP``: a multilayer perceptron whose parameters live on one backend (NumPy, CuPy, torch, …)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import math

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import Backend, resolve
from bpgpu.backend.precision import network_precision, tf32_requested
from bpgpu.backend.random import default_init, initial_parameters
from bpgpu.engines import make_engine
from bpgpu.math import backprop as bp
from bpgpu.math.activations import hidden_activation, output_activation
from bpgpu.math.costs import Objective, default_cost
from bpgpu.errors import ConfigError, ShapeError
from bpgpu.validation import check_features, check_seed, check_sizes, check_targets


class MLP:
    """A fully connected network trained by backpropagation.

    ``sizes`` as in Nielsen's ``[784, 30, 10]``. ``hidden`` ∈ sigmoid, tanh, relu, identity;
    ``output`` ∈ softmax, sigmoid, identity (default: softmax for several outputs, sigmoid for one);
    ``cost`` ∈ cross_entropy, quadratic (default: cross-entropy, quadratic for an identity output).
    ``device``: "cpu", "gpu", "cuda:N", "auto", or a device object of the library passed as ``xp``
    (default: ``BPGPU_DEVICE``, else "cpu"). ``seed`` fixes the initial weights on every backend.
    ``tf32``: float32 matrix products in TF32 on a GPU (default off, or ``BPGPU_TF32=1``);
    ``precision="mixed16"`` / ``"mixedbf16"``: float16 / bfloat16 math with float32 master weights and
    dynamic loss scaling (bpgpu/engines/mixed.py).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden: str = "sigmoid",
        output: str | None = None,
        cost: str | None = None,
        dtype: str = "float32",
        device: Any = None,
        seed: int | None = None,
        xp: Any = None,
        init: str | None = None,
        tf32: bool | None = None,
        precision: str | None = None,
    ) -> None:
        self.sizes = check_sizes(sizes)
        self.hidden = hidden_activation(hidden)
        output = output if output is not None else ("softmax" if self.sizes[-1] > 1 else "sigmoid")
        self.objective = Objective(cost if cost is not None else default_cost(output_activation(output).name), output)
        if self.output == "softmax" and self.sizes[-1] == 1:
            raise ConfigError(
                "output='softmax' with a single output unit always outputs 1 and cannot learn; "
                "use output='sigmoid' for one unit (binary), or give the output layer one unit per class."
            )
        self.backend: Backend = replace(resolve(device, xp), tf32=tf32_requested(tf32))
        self.dtype = self.backend.dtype(dtype)
        self.precision = network_precision(precision, self.dtype_name, self.backend)
        self.init = init if init is not None else default_init(self.hidden.name)
        self.seed = check_seed(seed)
        host_w, host_b = initial_parameters(self.sizes, self.init, seed)
        with self.backend.activate():
            self.weights: list[Any] = [to_backend(w, self.backend, self.dtype) for w in host_w]
            self.biases: list[Any] = [to_backend(b, self.backend, self.dtype) for b in host_b]

    # -- description -------------------------------------------------------------------------------
    @property
    def output(self) -> str:
        return self.objective.output.name

    @property
    def cost_name(self) -> str:
        return self.objective.cost.name

    @property
    def xp(self) -> Any:
        return self.backend.xp

    @property
    def device(self) -> Any:
        return self.backend.device

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    @property
    def num_parameters(self) -> int:
        return sum(math.prod(w.shape) + b.shape[0] for w, b in zip(self.weights, self.biases))

    def config(self) -> dict[str, Any]:
        """What it takes to rebuild this network (the save file's header uses it)."""
        config = {
            "sizes": list(self.sizes), "hidden": self.hidden.name, "output": self.output,
            "cost": self.cost_name, "dtype": self.dtype_name, "init": self.init,
        }
        if self.precision.startswith("mixed"):  # only then: files of plain networks are unchanged
            config["precision"] = self.precision
        return config

    def __repr__(self) -> str:
        return (
            f"MLP({self.sizes}, hidden={self.hidden.name!r}, output={self.output!r}, cost={self.cost_name!r}, "
            f"dtype={self.dtype_name!r}, device={self.backend.label!r}"
            + (f", precision={self.precision!r}" if self.precision.startswith("mixed") else "")
            + (", tf32=True" if self.backend.tf32 else "") + ")"
        )

    # -- inputs ------------------------------------------------------------------------------------
    def as_features(self, x: Any, name: str = "x", check: bool = True) -> Any:
        """``x`` validated and on this network's device and dtype (host data is copied once).
        ``check=False``: an array already on the device is not read back for NaN/inf (no host sync)."""
        return check_features(x, self.backend, self.sizes[0], self.dtype, name, check)

    def as_targets(self, y: Any, m: int, name: str = "y", check: bool = True) -> Any:
        """``y`` as (m, n_L) float rows on this device: one-hot/target rows or integer class labels.
        ``check=False``: device arrays are not read back (finiteness, label range, probabilities)."""
        return check_targets(y, self.backend, m, self.sizes[-1], self.output, self.dtype, name, self.cost_name,
                             check)

    def _batch(self, x: Any, y: Any, check: bool = True) -> tuple[Any, Any]:
        x = self.as_features(x, check=check)
        return x, self.as_targets(y, x.shape[0], check=check)

    # -- the math (through this network's step engine, bpgpu.engines) ------------------------------
    def engine(self) -> Any:
        """The step engine this network computes gradients and outputs with (made once per backend;
        it reads the current parameters at every call). ``fit`` makes its own, training one."""
        e = self.__dict__.get("_engine")
        if e is None or e.net is not self or self.__dict__.get("_engine_backend") is not self.backend:
            e = make_engine(self)
            self.__dict__["_engine"], self.__dict__["_engine_backend"] = e, self.backend
        return e

    def forward(self, x: Any) -> Any:
        """Output activations A^L, shape (m, n_L), on the network's device."""
        with self.backend.activate():
            return self.engine().outputs(self.as_features(x))[1]

    def backprop(
        self, x: Any, y: Any, sample_weight: Any = None, check: bool = True,
    ) -> tuple[float, list[Any], list[Any]]:
        """``(cost, grad_weights, grad_biases)`` of the batch: the mean cost (a float) and ∂C/∂W^l,
        ∂C/∂b^l (BP1–BP4), shaped like ``weights`` / ``biases`` and on the network's device.
        ``sample_weight`` (one ≥ 0 per row): the weighted mean cost Σ w_i C_i / Σ w_i and its gradients.
        ``check=False``: device arrays are not read back for their values (your own loop over batches
        already on the GPU: the cost is then the call's only host sync)."""
        with self.backend.activate():
            x, y = self._batch(x, y, check)
            if sample_weight is not None:
                from bpgpu.training.loop import sample_weights

                sample_weight = sample_weights(self, sample_weight, x.shape[0])
            cost, grad_w, grad_b = self.engine().gradients(x, y, sample_weight)
            return float(cost), grad_w, grad_b

    def backprop_per_example(self, x: Any, y: Any) -> tuple[float, list[Any], list[Any]]:
        """The same as :meth:`backprop`, by the seeds' one-example-at-a-time loop (slow; a reference)."""
        with self.backend.activate():
            x, y = self._batch(x, y)
            cost, grad_w, grad_b = bp.backprop_per_example(self.weights, self.biases, self.hidden, self.objective, x, y)
            return float(cost), grad_w, grad_b

    def cost(self, x: Any, y: Any, check: bool = True) -> float:
        """The mean cost of a batch (``check``: as for :meth:`backprop`)."""
        with self.backend.activate():
            x, y = self._batch(x, y, check)
            return float(self.engine().cost(x, y))

    # -- training, inference, saving (thin: the work is in bpgpu.training and bpgpu.io) ------------
    def fit(
        self, x: Any, y: Any, epochs: int, batch_size: int = 32, optimizer: Any = None,
        validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
        progress: bool = True, early_stopping: Any = None, checkpoint: Any = None, checkpoint_every: int = 1,
        resume: Any = None, record_grad_norms: bool = True, comm: Any = None, sample_weight: Any = None,
        class_weight: Any = None, clip_norm: float | None = None, clip_value: float | None = None, dropout: float = 0.0,
    ) -> Any:
        """Train by mini-batch backpropagation; returns a History. See :func:`bpgpu.training.loop.fit`."""
        from bpgpu.training.loop import fit

        return fit(
            self, x, y, epochs, batch_size, optimizer=optimizer, validation_data=validation_data, shuffle=shuffle,
            seed=seed, progress=progress, early_stopping=early_stopping, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, resume=resume, record_grad_norms=record_grad_norms, comm=comm,
            sample_weight=sample_weight, class_weight=class_weight, clip_norm=clip_norm, clip_value=clip_value,
            dropout=dropout,
        )

    def evaluate(self, x: Any, y: Any, batch_size: int = 4096, check: bool = True) -> dict[str, Any]:
        """``{"cost", "accuracy", "n"}`` on (x, y), computed in batches (accuracy None for regression);
        ``check``: as for :meth:`backprop`."""
        from bpgpu.training.evaluate import evaluate_arrays

        with self.backend.activate():
            x, y = self._batch(x, y, check)
            return evaluate_arrays(self, x, y, batch_size)

    def predict(self, x: Any, batch_size: int = 4096) -> Any:
        """Class labels (argmax over several units, ≥ 0.5 for one sigmoid unit) or raw outputs (identity)."""
        from bpgpu.training.evaluate import predict

        with self.backend.activate():
            return predict(self, x, batch_size)

    def predict_proba(self, x: Any, batch_size: int = 4096) -> Any:
        """The output activations A^L (probabilities for softmax / sigmoid), on the device."""
        from bpgpu.training.evaluate import predict_proba

        with self.backend.activate():
            return predict_proba(self, x, batch_size)

    def save(self, path: Any) -> str:
        """Write the configuration and parameters to ``path`` (npz + JSON header, atomic); see bpgpu.load."""
        from bpgpu.io.model import save

        with self.backend.activate():
            return save(self, path)

    # -- moving and copying ------------------------------------------------------------------------
    def get_parameters(self) -> tuple[list[Any], list[Any]]:
        """Host (NumPy) copies of the weights and biases."""
        with self.backend.activate():
            return [to_host(w).copy() for w in self.weights], [to_host(b).copy() for b in self.biases]

    def set_parameters(self, weights: Sequence[Any], biases: Sequence[Any]) -> None:
        """Replace the parameters (any library; copied to this device and dtype); shapes are checked."""
        if len(weights) != len(self.weights) or len(biases) != len(self.biases):
            raise ShapeError(f"expected {len(self.weights)} weight and bias arrays; got {len(weights)} and {len(biases)}.")
        with self.backend.activate():
            new_w = [to_backend(w, self.backend, self.dtype, copy=True) for w in weights]
            new_b = [to_backend(b, self.backend, self.dtype, copy=True) for b in biases]
        for l, (w, b, w0, b0) in enumerate(zip(new_w, new_b, self.weights, self.biases)):
            if tuple(w.shape) != tuple(w0.shape) or tuple(b.shape) != tuple(b0.shape):
                raise ShapeError(
                    f"layer {l + 1}: expected weights {tuple(w0.shape)} and biases {tuple(b0.shape)}; "
                    f"got {tuple(w.shape)} and {tuple(b.shape)}."
                )
        self.weights, self.biases = new_w, new_b

    def to(self, device: Any = None, xp: Any = None, dtype: str | None = None) -> "MLP":
        """Move the parameters to another device / array library (and optionally dtype), in place."""
        backend = replace(resolve(device, xp), tf32=self.backend.tf32)  # TF32 goes with the network
        host_w, host_b = self.get_parameters()
        dtype = dtype if dtype is not None else self.dtype_name
        self.backend = backend
        self.dtype = backend.dtype(dtype)
        with backend.activate():
            self.weights = [to_backend(w, backend, self.dtype) for w in host_w]
            self.biases = [to_backend(b, backend, self.dtype) for b in host_b]
        return self

    def copy(self, device: Any = None, xp: Any = None, dtype: str | None = None) -> "MLP":
        """An independent copy, on this network's backend unless another is given."""
        new = object.__new__(MLP)
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_engine", "_engine_backend")})
        new.weights, new.biases = list(self.weights), list(self.biases)
        if device is None and xp is None:
            device = self.backend
        return new.to(device, xp, dtype)
