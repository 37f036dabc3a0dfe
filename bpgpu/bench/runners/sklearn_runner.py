"""scikit-learn's ``MLPClassifier.partial_fit`` (plain SGD, no momentum, no L2; shuffling each call as
``fit`` shuffles each epoch; it computes every batch's loss itself) with the same hidden layers,
activation and batch size. Its output layer is always softmax + log-loss (or
logistic for two classes), so on W1 it does not use the quadratic cost: noted in the report."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np

from bpgpu.bench.runners.base import Runner
from bpgpu.bench.workloads import Workload


class SklearnRunner(Runner):
    name = "scikit-learn"
    device = "cpu"

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        if importlib.util.find_spec("sklearn") is None:
            return "scikit-learn is not installed (pip install \".[bench]\" from the bpgpu checkout)"
        return None

    def import_library(self) -> None:
        import sklearn.neural_network  # noqa: F401

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            hidden_layer_sizes=tuple(workload.sizes[1:-1]),
            activation="logistic" if workload.hidden == "sigmoid" else "relu",
            solver="sgd", batch_size=workload.batch, learning_rate_init=workload.lr, momentum=0.0,
            nesterovs_momentum=False, alpha=0.0, shuffle=True, random_state=0,
        )
        classes = np.arange(workload.sizes[-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(x[:workload.batch], labels[:workload.batch], classes=classes)  # allocates the weights
        self.state = {"clf": clf, "x": x, "labels": labels, "wl": workload, "classes": classes}

    def run(self, steps: int) -> None:
        s = self.state
        n = steps * s["wl"].batch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s["clf"].partial_fit(s["x"][:n], s["labels"][:n])

    def describe(self) -> dict[str, Any]:
        import sklearn

        return {"library": f"scikit-learn {sklearn.__version__}",
                "note": "softmax + log-loss output (MLPClassifier has no quadratic cost)"}
