"""scikit-learn's own estimator checks (``check_estimator``) for bpgpu.sklearn's estimators, at their
default parameters, with no expected failures. Includes the array-API checks (array-api-strict, torch
CPU; CuPy / torch CUDA where a GPU is usable, skipped otherwise)."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from bpgpu.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# At the default max_iter=200 the tiny check data often stop by max_iter, which warns exactly as
# scikit-learn's own MLP does; the project's "warnings are errors" would turn that into a failure.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_compatible_estimator(estimator, check, monkeypatch):
    # scikit-learn refuses array_api_dispatch unless SciPy's array-API mode is declared; bpgpu's
    # estimators call no SciPy function on device arrays, so declaring it for the check is enough.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)
