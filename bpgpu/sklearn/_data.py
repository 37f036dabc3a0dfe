"""Where the data lives and how it gets to the network.

Rule (scikit-learn's array-API contract): under ``sklearn.config_context(array_api_dispatch=True)`` an
input ``X`` of a non-NumPy array library (CuPy, torch, array-api-strict, …) keeps its namespace and device:
the network is trained there and every output comes back in that namespace. Otherwise ``X`` is converted
as scikit-learn converts it (NumPy, pandas, lists) and the network lives on the estimator's ``device``
(default: ``BPGPU_DEVICE``, else the CPU); outputs are NumPy arrays. Labels ``y`` and ``sample_weight``
are read on the host (they may come from any namespace) and moved once.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import sklearn

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import backend_of, resolve


def dispatching() -> bool:
    return bool(sklearn.get_config().get("array_api_dispatch", False))


def is_device_array(x: Any) -> bool:
    """An array of a library other than NumPy (CuPy, torch, array-api-strict, …)."""
    return (array_api_compat.is_array_api_obj(x) and not array_api_compat.is_numpy_array(x)
            and not hasattr(x, "iloc") and not hasattr(x, "tocsr"))


def input_backend(x: Any) -> Any:
    """The backend ``x`` lives on when it keeps its namespace (dispatch on, non-NumPy array), else None."""
    return backend_of(x) if dispatching() and is_device_array(x) else None


def host(y: Any) -> Any:
    """``y`` / ``sample_weight`` on the host: device arrays are copied to NumPy, everything else is as given."""
    return to_host(y) if is_device_array(y) else y


def training_backend(est: Any, x: Any) -> tuple[Any, str | None]:
    """(backend, namespace name of X or None): X's own under dispatch, else ``resolve(est.device)``."""
    backend = input_backend(x)
    if backend is not None:
        return backend, backend.name
    return resolve(est.device), None


def same_place(a: Any, b: Any) -> bool:
    return a.name == b.name and str(a.device) == str(b.device)


def check_same_namespace(est: Any, x: Any, method: str) -> None:
    """scikit-learn's rule: under dispatch, predict-time X must use fit's namespace and device."""
    if not dispatching():
        return
    fitted = getattr(est, "_fit_namespace", None)
    given = input_backend(x)
    if given is None and fitted is None:
        return
    net_backend = est._get_model().net.backend
    if given is not None and fitted is not None and same_place(given, net_backend):
        return
    if given is not None and fitted is None and same_place(given, net_backend):
        return  # e.g. CuPy X for a model fitted from NumPy data on device='cuda'
    used = fitted if fitted is not None else "numpy"
    now = given.name if given is not None else "numpy"
    raise ValueError(
        f"Inputs passed to {type(est).__name__}.{method}() must use the same namespace and the same device as "
        f"those passed to fit(). Array namespaces used during fit ({used}) and {method} ({now}) differ; move X "
        f"to {net_backend.label} or refit."
    )


class TrainingData:
    """Training (and early-stopping validation) rows on the network's device."""

    def __init__(self, net: Any, x: Any, y: np.ndarray, sw: np.ndarray | None, cost_scale: float) -> None:
        self.net = net
        self.x_all = net.as_features(x)
        self.y_all = to_backend(y, net.backend, net.dtype)
        self.sw_all_host = None if sw is None else np.asarray(sw, dtype=np.float64)
        self.cost_scale = cost_scale
        self.use(np.arange(self.x_all.shape[0]), None, None)

    def use(self, train: np.ndarray, val: np.ndarray | None, y_val_labels: Any) -> None:
        """Train on rows ``train``; keep rows ``val`` (with their original labels) for validation scores."""
        net = self.net
        xp = net.xp
        if val is None and train.shape[0] == self.x_all.shape[0]:
            self.x_train, self.y_train = self.x_all, self.y_all
            self.sw_train_host = self.sw_all_host
        else:
            rows = to_backend(train, net.backend, xp.int64)
            self.x_train = xp.take(self.x_all, rows, axis=0)
            self.y_train = xp.take(self.y_all, rows, axis=0)
            self.sw_train_host = None if self.sw_all_host is None else self.sw_all_host[train]
        self.sw_train = (None if self.sw_train_host is None
                         else to_backend(self.sw_train_host, net.backend, net.dtype))
        self.n_train = int(self.x_train.shape[0])
        self.x_val = None
        if val is not None:
            self.x_val = xp.take(self.x_all, to_backend(val, net.backend, xp.int64), axis=0)
            self.y_val = y_val_labels
            self.sw_val = None if self.sw_all_host is None else self.sw_all_host[val]

    def validation_score(self, est: Any, model: Any) -> float:
        """Accuracy (classifier) or R² (regressor) on the validation rows, NaN for non-finite outputs."""
        outputs = to_host(model.net.predict_proba(self.x_val))
        if not np.isfinite(outputs).all():
            return float("nan")
        return float(est._score_outputs(outputs, self.y_val, self.sw_val))
