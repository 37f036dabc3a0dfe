"""What ``MLPClassifier`` and ``MLPRegressor`` share: parameters, ``fit`` / ``partial_fit``, inference,
pickling. The subclasses only encode targets and turn outputs into predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from bpgpu.backend.arrays import to_host
from bpgpu.backend.device import resolve
from bpgpu.errors import DeviceError
from bpgpu.math import backprop as bp
from bpgpu.sklearn import _data
from bpgpu.sklearn._loop import run_epochs
from bpgpu.sklearn._model import Model, make_network, make_optimizer, sklearn_init
from bpgpu.sklearn._params import check as check_params

PREDICT_BATCH = 4096


class BaseMLP(BaseEstimator):
    """Base class; see :class:`bpgpu.sklearn.MLPClassifier` for the parameters."""

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001, batch_size="auto",
        learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
        random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
        early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, device=None, dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    # -- subclass hooks ----------------------------------------------------------------------------
    _y_numeric = False
    _cost_scale_by_outputs = False  # scikit-learn's squared loss is averaged over the outputs too

    def _encode_targets(self, y: Any, incremental: bool, first_pass: bool) -> tuple[np.ndarray, str]:
        raise NotImplementedError  # pragma: no cover

    def _validation_labels(self, y: Any, targets: np.ndarray, rows: np.ndarray) -> Any:
        raise NotImplementedError  # pragma: no cover

    def _score_outputs(self, outputs: np.ndarray, y_true: Any, sample_weight: Any) -> float:
        raise NotImplementedError  # pragma: no cover

    # -- training ----------------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> "BaseMLP":
        settings = check_params(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True; use fit, or early_stopping=False.")
        fitted = hasattr(self, "_model") or getattr(self, "_model_host", None) is not None
        first_pass = not fitted or (not self.warm_start and not incremental)
        backend, namespace = _data.training_backend(self, X)
        with backend.activate():  # CuPy runs on the current device: make it the network's
            X, y = validate_data(self, X, _data.host(y), reset=first_pass, accept_sparse=False, multi_output=True,
                                 y_numeric=self._y_numeric, dtype=_float_dtypes(X))
            targets, out_activation = self._encode_targets(y, incremental, first_pass)
            sw = None
            if sample_weight is not None:  # read on the host: one weight per row, finite, ≥ 0
                sw = _check_sample_weight(_data.host(sample_weight), np.empty((X.shape[0], 1)), dtype=np.float64,
                                          ensure_non_negative=True)
            dtype = self.dtype or ("float32" if _is_float32(X) else "float64")
            self._random_state = check_random_state(self.random_state)
            hidden = list(settings.hidden_layer_sizes)
            sizes = [int(X.shape[1])] + hidden + [int(targets.shape[1])]
            if first_pass:
                model = self._start(settings, sizes, out_activation, backend, dtype)
            else:
                model = self._continue(settings, sizes, backend, incremental)
            data = self._training_data(settings, model, X, y, targets, sw)
            run_epochs(self, settings, model, data, incremental)
            self._fit_namespace = namespace
            self.coefs_, self.intercepts_ = model.sklearn_parameters()
            if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
                raise ValueError(
                    "Solver produced non-finite parameter weights. The input data may contain large values and need "
                    "to be preprocessed."
                )
        return self

    def _start(self, settings: Any, sizes: list[int], out_activation: str, backend: Any, dtype: str) -> Model:
        """A new network with scikit-learn's initial weights, a new optimizer, fresh fitted attributes."""
        for name in ("_model", "_model_host"):
            self.__dict__.pop(name, None)
        self.n_outputs_ = sizes[-1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = out_activation
        weights, biases = sklearn_init(sizes, self.activation, self._random_state)
        net = make_network(sizes, settings.hidden, out_activation, backend, dtype)
        net.set_parameters(weights, biases)
        self._model = Model(net, make_optimizer(settings), settings.learning_rate_init)
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        else:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf
        return self._model

    def _continue(self, settings: Any, sizes: list[int], backend: Any, incremental: bool) -> Model:
        """The fitted network (warm_start / partial_fit), on ``backend``; ``fit`` gets a new optimizer."""
        model = self._get_model(backend)
        if list(model.net.sizes) != sizes:
            raise ValueError(
                f"{type(self).__name__}: warm_start/partial_fit continues the fitted network of layer sizes "
                f"{list(model.net.sizes)}, but these data and hidden_layer_sizes give {sizes}; "
                "set warm_start=False to fit a new network."
            )
        if not incremental:  # scikit-learn: a new optimizer for every fit, warm or not
            model.optimizer = make_optimizer(settings)
            model.lr = settings.learning_rate_init
        return model

    def _training_data(self, settings: Any, model: Model, X: Any, y: Any, targets: np.ndarray,
                       sw: Any) -> _data.TrainingData:
        """The rows on the device; with ``early_stopping``, scikit-learn's (stratified) validation split."""
        data = _data.TrainingData(model.net, X, targets, sw,
                                  float(targets.shape[1]) if self._cost_scale_by_outputs else 1.0)
        if self.early_stopping:
            stratify = targets.astype(bool) if self._stratify() else None
            train, val = train_test_split(np.arange(X.shape[0]), random_state=self._random_state,
                                          test_size=settings.validation_fraction, stratify=stratify)
            if val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
                )
            data.use(train, val, self._validation_labels(y, targets, val))
        return data

    def _stratify(self) -> bool:
        return False

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "BaseMLP":
        """Fit the model to ``X`` (n_samples, n_features) and targets ``y``; ``sample_weight``: one
        non-negative weight per row (the batch loss becomes Σ s_i C_i / Σ s_i, as in scikit-learn)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # -- the network -------------------------------------------------------------------------------
    def _get_model(self, backend: Any = None) -> Model:
        """The fitted network, rebuilt from host arrays after unpickling (on ``backend`` or the ``device``
        parameter); moved when ``backend`` differs from where it lives."""
        model = self.__dict__.get("_model")
        if model is not None and backend is not None and not _data.same_place(model.net.backend, backend):
            self._model_host, model = model.host_state(), None
        if model is None:
            state = self.__dict__["_model_host"]
            target = backend if backend is not None else _unpickled_backend(self.device)
            with target.activate():
                model = self._model = Model.from_host_state(state, target)
            del self.__dict__["_model_host"]
        return model

    def _outputs(self, X: Any, method: str, logits: bool = False) -> tuple[Any, Any]:
        """(A^L, or the logits Z^L, on the device; the backend outputs go back to, None for NumPy)."""
        check_is_fitted(self)
        _data.check_same_namespace(self, X, method)
        back = _data.input_backend(X)
        net = self._get_model().net
        xp = net.xp
        with net.backend.activate():
            X = validate_data(self, X, reset=False, accept_sparse=False, dtype=_float_dtypes(X))
            x = net.as_features(X)
            parts = []
            for start in range(0, x.shape[0], PREDICT_BATCH):
                xb = x[start:min(start + PREDICT_BATCH, x.shape[0]), :]
                z, a, _ = bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, xb, xp=xp)
                parts.append(z if logits else a)
            out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
        return out, back

    @staticmethod
    def _returned(a: Any, back: Any) -> Any:
        return to_host(a) if back is None else a

    # -- pickling: host arrays only -----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        model = state.pop("_model", None)
        if model is not None:
            state["_model_host"] = model.host_state()
            state["_fit_namespace"] = None  # after unpickling the network lives on the `device` parameter
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = False
        return tags


def _unpickled_backend(device: Any) -> Any:
    """Where an unpickled (or moved) model goes: the ``device`` parameter (default ``BPGPU_DEVICE``, else
    the CPU); a GPU that is not usable here is a clear error saying how to use the CPU instead."""
    try:
        return resolve(device)
    except DeviceError as exc:
        raise DeviceError(
            f"{exc} This estimator's device={device!r}; to run it on this machine's CPU, "
            "call est.set_params(device='cpu') first."
        ) from None


def _float_dtypes(X: Any) -> Any:
    """The float dtypes validation keeps (float64 first: what integers become), in X's namespace."""
    if _data.dispatching() and _data.is_device_array(X):
        xp = _data.backend_of(X).xp
        return (xp.float64, xp.float32)
    return (np.float64, np.float32)


def _is_float32(X: Any) -> bool:
    return str(X.dtype).endswith("float32")
