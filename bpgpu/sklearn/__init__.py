"""scikit-learn estimators trained by bpgpu: ``MLPClassifier`` and ``MLPRegressor``, drop-in for
``sklearn.neural_network``'s (same parameters, defaults, attributes and convergence rules), on the CPU, a
GPU (``device=`` / ``BPGPU_DEVICE``) or, under ``sklearn.config_context(array_api_dispatch=True)``, on
the device of a CuPy / torch / array-api-strict ``X``. Needs ``pip install ".[sklearn]"`` from the checkout."""

from bpgpu.sklearn.classifier import MLPClassifier
from bpgpu.sklearn.regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
