"""Checking the estimators' hyper-parameters at ``fit`` (scikit-learn's rule: ``__init__`` only stores them).

Every error names the parameter, says what was expected and what was given, and how to fix it. The ranges
are scikit-learn 1.9.1's (``BaseMultilayerPerceptron._parameter_constraints``) except where bpgpu differs,
which the messages say: ``solver='lbfgs'`` is not offered, ``hidden_layer_sizes=()`` (no hidden layer) is
refused, ``momentum`` must be < 1 and the regressor's ``loss`` is ``'squared_error'`` only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("adam", "sgd")
LEARNING_RATES = ("constant", "invscaling", "adaptive")


@dataclass(frozen=True)
class Settings:
    """The checked hyper-parameters ``fit`` works with (names as in scikit-learn)."""

    hidden_layer_sizes: tuple[int, ...]
    hidden: str          # bpgpu's name of the hidden activation
    solver: str
    alpha: float
    batch_size: Any      # "auto" or an int ≥ 1
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    tol: float
    momentum: float
    nesterov: bool
    n_iter_no_change: float
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float


def _name(est: Any) -> str:
    return type(est).__name__


def _real(est: Any, name: str, low: float, high: float, low_open: bool, high_open: bool) -> float:
    value = getattr(est, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_name(est)}: {name} must be a real number; got {value!r} ({type(value).__name__}).")
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if math.isnan(value) or below or above:
        lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{_name(est)}: {name} must be in {lo}, {hi}; got {value!r}.")
    return value


def _int(est: Any, name: str, minimum: int) -> int:
    value = getattr(est, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{_name(est)}: {name} must be an integer ≥ {minimum}; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{_name(est)}: {name} must be an integer ≥ {minimum}; got {value!r}.")
    return int(value)


def _choice(est: Any, name: str, valid: tuple[str, ...]) -> str:
    value = getattr(est, name)
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{_name(est)}: {name}={value!r} is not supported; valid: {', '.join(map(repr, valid))}.")
    return value


def _bool(est: Any, name: str) -> None:
    value = getattr(est, name)
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"{_name(est)}: {name} must be True or False; got {value!r}.")


def hidden_sizes(est: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints (an int means one hidden layer)."""
    value = est.hidden_layer_sizes
    sizes = [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{_name(est)}: hidden_layer_sizes must be a tuple of layer widths like (100,); got {value!r}.")
    sizes = list(sizes)
    if not sizes:
        raise ValueError(
            f"{_name(est)}: hidden_layer_sizes=() has no hidden layer; give at least one width, e.g. (100,) "
            "(for a linear model use sklearn.linear_model)."
        )
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
            raise ValueError(
                f"{_name(est)}: every entry of hidden_layer_sizes must be a positive integer; entry {i} is {s!r} "
                f"(hidden_layer_sizes={value!r})."
            )
    return tuple(int(s) for s in sizes)


def check(est: Any) -> Settings:
    """Validate ``est``'s parameters; return them as :class:`Settings`."""
    solver = est.solver
    if solver == "lbfgs":
        raise ValueError(
            f"{_name(est)}: solver='lbfgs' is not supported by bpgpu (full-batch L-BFGS runs in SciPy on the "
            "host); use solver='adam' (the default) or 'sgd', or sklearn.neural_network for L-BFGS."
        )
    solver = _choice(est, "solver", SOLVERS)
    activation = _choice(est, "activation", tuple(ACTIVATIONS))
    batch_size = est.batch_size
    if batch_size != "auto":
        batch_size = _int(est, "batch_size", 1)
    momentum = _real(est, "momentum", 0.0, 1.0, False, True)
    n_iter_no_change = est.n_iter_no_change
    if not (isinstance(n_iter_no_change, float) and math.isinf(n_iter_no_change) and n_iter_no_change > 0):
        n_iter_no_change = _int(est, "n_iter_no_change", 1)
    for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
        _bool(est, name)
    _int(est, "max_fun", 1)  # accepted for compatibility; only L-BFGS uses it
    if est.dtype not in (None, "float32", "float64"):
        raise ValueError(f"{_name(est)}: dtype={est.dtype!r} is not supported; use None (follow X), 'float32' or 'float64'.")
    fraction = _real(est, "validation_fraction", 0.0, 1.0, False, True)
    if est.early_stopping and fraction == 0.0:
        raise ValueError(f"{_name(est)}: early_stopping=True needs validation_fraction in (0, 1), e.g. 0.1; got 0.0.")
    return Settings(
        hidden_layer_sizes=hidden_sizes(est),
        hidden=ACTIVATIONS[activation],
        solver=solver,
        alpha=_real(est, "alpha", 0.0, math.inf, False, True),
        batch_size=batch_size,
        learning_rate=_choice(est, "learning_rate", LEARNING_RATES),
        learning_rate_init=_real(est, "learning_rate_init", 0.0, math.inf, True, True),
        power_t=_real(est, "power_t", 0.0, math.inf, False, True),
        max_iter=_int(est, "max_iter", 1),
        tol=_real(est, "tol", 0.0, math.inf, False, True),
        momentum=momentum,
        nesterov=bool(est.nesterovs_momentum),
        n_iter_no_change=n_iter_no_change,
        validation_fraction=fraction,
        beta_1=_real(est, "beta_1", 0.0, 1.0, False, True),
        beta_2=_real(est, "beta_2", 0.0, 1.0, False, True),
        epsilon=_real(est, "epsilon", 0.0, math.inf, True, True),
    )
