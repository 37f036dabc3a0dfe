"""The network and optimizer behind a fitted estimator, and their host (NumPy) form for pickling.

Initialisation is scikit-learn's (``BaseMultilayerPerceptron._init_coef``): for each layer, from the
estimator's ``RandomState``, ``coef ~ U(±b)`` of shape (n_in, n_out) then ``intercept ~ U(±b)``, with
b = √(6 / (n_in + n_out)) (√(2 / …) for the logistic activation); bpgpu stores W^l = coefᵀ, shape
(n_out, n_in). The same ``random_state`` therefore starts from scikit-learn's very weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.network import MLP
from bpgpu.training.optimizers import SGD, Adam
from bpgpu.training.optimizers import from_config as optimizer_from_config

# scikit-learn's out_activation_ -> (bpgpu output, bpgpu cost)
OUTPUTS = {"softmax": ("softmax", "cross_entropy"), "logistic": ("sigmoid", "cross_entropy"),
           "identity": ("identity", "quadratic")}


def sklearn_init(sizes: list[int], activation: str, rng: np.random.RandomState) -> tuple[list, list]:
    """Host float64 (weights (n_out, n_in), biases) drawn exactly as scikit-learn draws them."""
    factor = 2.0 if activation == "logistic" else 6.0
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (n_in + n_out))
        coef = rng.uniform(-bound, bound, (n_in, n_out))
        intercept = rng.uniform(-bound, bound, n_out)
        weights.append(np.ascontiguousarray(coef.T))
        biases.append(intercept)
    return weights, biases


def make_network(sizes: list[int], hidden: str, out_activation: str, backend: Any, dtype: str) -> MLP:
    output, cost = OUTPUTS[out_activation]
    return MLP(sizes, hidden=hidden, output=output, cost=cost, dtype=dtype, device=backend, seed=0)


def make_optimizer(settings: Any) -> Any:
    """scikit-learn's solver as a bpgpu optimizer (weight decay and Adam's ε are set per step, see _loop)."""
    if settings.solver == "adam":
        return Adam(settings.learning_rate_init, betas=(settings.beta_1, settings.beta_2), eps=settings.epsilon)
    nesterov = settings.nesterov and settings.momentum > 0
    return SGD(settings.learning_rate_init, momentum=settings.momentum, nesterov=nesterov)


class Model:
    """A bpgpu ``MLP`` and its optimizer, on one backend."""

    def __init__(self, net: MLP, optimizer: Any, lr: float) -> None:
        self.net = net
        self.optimizer = optimizer
        self.lr = lr  # η now: scikit-learn's 'invscaling' / 'adaptive' change it between epochs

    def sklearn_parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Host copies in scikit-learn's layout: coefs_ (n_in, n_out), intercepts_ (n_out,)."""
        weights, biases = self.net.get_parameters()
        return [np.ascontiguousarray(w.T) for w in weights], biases

    # -- pickling: host arrays only, so a model fitted on a GPU unpickles on a CPU-only machine ----
    def host_state(self) -> dict[str, Any]:
        """The network's configuration and parameters, the optimizer's configuration, state and step
        count (the core's checkpoint pieces), all as plain Python / NumPy objects."""
        weights, biases = self.net.get_parameters()
        opt = self.optimizer
        return {
            "config": self.net.config(), "weights": weights, "biases": biases, "lr": self.lr,
            "optimizer": opt.config(), "optimizer_scalars": opt.scalars(),
            "optimizer_state": {k: [to_host(a).copy() for a in v] for k, v in opt.state.items()},
        }

    @classmethod
    def from_host_state(cls, state: dict[str, Any], backend: Any) -> "Model":
        cfg = state["config"]
        net = MLP(cfg["sizes"], hidden=cfg["hidden"], output=cfg["output"], cost=cfg["cost"], dtype=cfg["dtype"],
                  device=backend, seed=0)
        net.set_parameters(state["weights"], state["biases"])
        opt = optimizer_from_config(state["optimizer"])
        arrays = {k: [to_backend(a, net.backend, net.dtype, copy=True) for a in v]
                  for k, v in state["optimizer_state"].items()}
        opt.load_state(arrays, state["optimizer_scalars"])
        return cls(net, opt, state["lr"])
