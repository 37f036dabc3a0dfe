"""``MLPRegressor``: scikit-learn's multi-layer perceptron regressor, trained by bpgpu on any device."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import column_or_1d

from bpgpu.sklearn._base import BaseMLP


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn 1.9.1's ``MLPRegressor`` (identity output, loss
    ½·mean squared error over rows and outputs), trained by backpropagation on NumPy, CuPy or any array-API
    library. Parameters as :class:`bpgpu.sklearn.MLPClassifier`; ``loss`` is 'squared_error' only
    ('poisson' needs an exponential output bpgpu does not have: a clear error).
    """

    _y_numeric = True
    _cost_scale_by_outputs = True

    def __init__(
        self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
        batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
        shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
        epsilon=1e-8, n_iter_no_change=10, max_fun=15000, device=None, dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, device=device, dtype=dtype,
        )
        self.loss = loss

    def _encode_targets(self, y: Any, incremental: bool, first_pass: bool) -> tuple[np.ndarray, str]:
        if self.loss != "squared_error":
            raise ValueError(
                f"MLPRegressor: loss={self.loss!r} is not supported by bpgpu; use loss='squared_error' "
                "('poisson' needs an exponential output layer; sklearn.neural_network.MLPRegressor has it)."
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets = np.asarray(y, dtype=np.float64)
        return (targets.reshape(-1, 1) if targets.ndim == 1 else targets), "identity"

    def _validation_labels(self, y: Any, targets: np.ndarray, rows: np.ndarray) -> Any:
        return targets[rows, 0] if targets.shape[1] == 1 else targets[rows]

    def _score_outputs(self, outputs: np.ndarray, y_true: Any, sample_weight: Any) -> float:
        return r2_score(y_true, outputs[:, 0] if outputs.shape[1] == 1 else outputs, sample_weight=sample_weight)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over (X, y), continuing the current network."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Predicted targets, shape (n_samples,) for one output, (n_samples, n_outputs) otherwise."""
        a, back = self._outputs(X, "predict")
        if self.n_outputs_ == 1:
            a = a[:, 0]
        return self._returned(a, back)
