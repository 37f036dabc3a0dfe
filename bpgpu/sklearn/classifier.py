"""``MLPClassifier``: scikit-learn's multi-layer perceptron classifier, trained by bpgpu on any device."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.sklearn import _data
from bpgpu.sklearn._base import BaseMLP


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn 1.9.1's ``MLPClassifier`` (same parameters, defaults,
    fitted attributes and convergence rules), trained by backpropagation on NumPy, CuPy or any array-API
    library.

    Output and loss as in scikit-learn: softmax + log-loss for several classes, one logistic unit for two,
    one logistic unit per label for a multilabel indicator ``y``. Labels may be of any kind (strings,
    1…k, booleans); ``predict`` returns them. Parameters are scikit-learn's, except:

    - ``solver``: 'adam' (default) or 'sgd'; 'lbfgs' is not offered (a clear error). ``max_fun`` (an
      L-BFGS setting) is accepted and ignored.
    - ``hidden_layer_sizes`` needs at least one hidden layer; ``momentum`` must be < 1.
    - ``device``: where the network lives for NumPy/pandas/list inputs — "cpu", "gpu", "cuda:N", "auto"
      (default None: ``BPGPU_DEVICE``, else the CPU). Under
      ``sklearn.config_context(array_api_dispatch=True)`` a CuPy / torch / array-api-strict ``X`` keeps its
      device: training runs there and outputs come back in X's namespace.
    - ``dtype``: None (float32 data stays float32, everything else float64, as in scikit-learn), 'float32'
      (the fast choice on a GPU) or 'float64'.

    ``coefs_`` / ``intercepts_`` are host NumPy copies in scikit-learn's (n_in, n_out) layout, made at the
    end of ``fit``; the network itself stays on its device. Pickles hold host arrays only.
    """

    _y_numeric = False

    def _encode_targets(self, y: Any, incremental: bool, first_pass: bool) -> tuple[np.ndarray, str]:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                        f"Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}.")
        targets = self._label_binarizer.transform(y).astype(np.float64)
        kind = self._label_binarizer.y_type_
        return targets, "softmax" if kind == "multiclass" else "logistic"

    def _stratify(self) -> bool:
        return self.n_outputs_ == 1

    def _validation_labels(self, y: Any, targets: np.ndarray, rows: np.ndarray) -> Any:
        return self._label_binarizer.inverse_transform(targets[rows])

    def _labels(self, outputs: np.ndarray) -> np.ndarray:
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def _score_outputs(self, outputs: np.ndarray, y_true: Any, sample_weight: Any) -> float:
        return accuracy_score(y_true, self._labels(outputs), sample_weight=sample_weight)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> "MLPClassifier":
        """One epoch over (X, y), continuing the current network; ``classes`` (all labels) on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            y_host = _data.host(y)
            if type_of_target(y_host).startswith("multilabel"):
                self._label_binarizer.fit(y_host)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X: Any) -> Any:
        """Labels of the same kind as ``y`` (an indicator matrix for multilabel ``y``)."""
        a, back = self._outputs(X, "predict")
        labels = self._labels(to_host(a))
        if back is None or labels.dtype.kind not in "biuf":
            return labels
        return to_backend(labels, back)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n_samples, n_classes) (one column per label for multilabel ``y``)."""
        a, back = self._outputs(X, "predict_proba")
        if self.n_outputs_ == 1:
            xp = self._get_model().net.xp
            a = xp.concat([1 - a, a], axis=1)
        return self._returned(a, back)

    def predict_log_proba(self, X: Any) -> Any:
        """log ``predict_proba``, computed from the logits z: z − logsumexp(z) for softmax, log σ(z) =
        −softplus(−z) and log(1 − σ(z)) = −softplus(z) for logistic units (finite where p underflows to 0)."""
        z, back = self._outputs(X, "predict_log_proba", logits=True)
        xp = self._get_model().net.xp
        if self.out_activation_ == "softmax":
            zmax = xp.max(z, axis=1, keepdims=True)
            log_p = z - (zmax + xp.log(xp.sum(xp.exp(z - zmax), axis=1, keepdims=True)))
        elif self.n_outputs_ == 1:
            log_p = xp.concat([-_softplus(xp, z), -_softplus(xp, -z)], axis=1)
        else:
            log_p = -_softplus(xp, -z)
        return self._returned(log_p, back)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _softplus(xp: Any, z: Any) -> Any:
    """softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}), without overflow."""
    zero = xp.zeros((), dtype=z.dtype, device=z.device)
    return xp.maximum(z, zero) + xp.log1p(xp.exp(-xp.abs(z)))
