"""bpgpu.sklearn against scikit-learn itself: with the same random_state and float64, bpgpu's estimators
start from scikit-learn's weights, shuffle in its order and apply its updates, so coefficients, loss
curves, iteration counts and validation scores agree; plus labels, pandas, errors, pickling,
model selection and the array-API path."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as skn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bpgpu.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(120, 5, n_targets=2, noise=1.0, random_state=0)
    return X, y / 100.0


def assert_same_fit(ours, theirs, loss_rtol=1e-5):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=loss_rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_


CLASSIFIER_CASES = {
    "adam": dict(),
    "adam-batches": dict(batch_size=32),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.05, batch_size=40),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.05, momentum=0.0, batch_size=40),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, batch_size=40),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05, tol=1e-2,
                         n_iter_no_change=2, batch_size=40),
    "early-stopping": dict(early_stopping=True, validation_fraction=0.2, n_iter_no_change=3),
    "logistic-2-layers": dict(activation="logistic", hidden_layer_sizes=(7, 5)),
    "tanh-no-shuffle": dict(activation="tanh", shuffle=False, alpha=0.01),
}


@pytest.mark.parametrize("case", list(CLASSIFIER_CASES))
def test_classifier_matches_scikit_learn(iris, case):
    X, y = iris
    params = dict(random_state=1, max_iter=40, **CLASSIFIER_CASES[case])
    ours = MLPClassifier(**params).fit(X, y)
    theirs = skn.MLPClassifier(**params).fit(X, y)
    assert_same_fit(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
        assert ours.best_loss_ is None and theirs.best_loss_ is None
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-5)
        assert ours.validation_scores_ is None and ours.best_validation_score_ is None


def test_binary_and_multilabel_match_scikit_learn(iris):
    X, y = iris
    for Xd, yd in [(X, np.where(y == 1, "yes", "no")),
                   make_multilabel_classification(80, 6, n_classes=3, random_state=0)]:
        ours = MLPClassifier(random_state=0, max_iter=30).fit(Xd, yd)
        theirs = skn.MLPClassifier(random_state=0, max_iter=30).fit(Xd, yd)
        assert_same_fit(ours, theirs)
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_array_equal(ours.predict(Xd), theirs.predict(Xd))
        np.testing.assert_allclose(ours.predict_proba(Xd), theirs.predict_proba(Xd), rtol=1e-9)
        np.testing.assert_allclose(ours.predict_log_proba(Xd), theirs.predict_log_proba(Xd), rtol=1e-9)


@pytest.mark.parametrize("batch_size", ["auto", 32])
def test_sample_weight_matches_scikit_learn(iris, batch_size):
    X, y = iris
    sw = np.random.RandomState(0).randint(0, 4, len(y)).astype(float)
    ours = MLPClassifier(random_state=1, max_iter=25, batch_size=batch_size).fit(X, y, sample_weight=sw)
    theirs = skn.MLPClassifier(random_state=1, max_iter=25, batch_size=batch_size).fit(X, y, sample_weight=sw)
    assert_same_fit(ours, theirs)


def test_integer_sample_weight_equals_repeated_rows(iris):
    """One full batch: weights 0..3 are the same training as dropping / repeating those rows."""
    X, y = iris
    sw = np.random.RandomState(3).randint(0, 4, len(y))
    weighted = MLPClassifier(random_state=0, max_iter=20, batch_size=len(y)).fit(X, y, sample_weight=sw)
    repeated = MLPClassifier(random_state=0, max_iter=20, batch_size=int(sw.sum())).fit(
        np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-7)


@pytest.mark.parametrize("params", [dict(activation="tanh"), dict(early_stopping=True), dict(solver="sgd")])
def test_regressor_matches_scikit_learn(regression, params):
    X, y = regression
    params = dict(random_state=2, max_iter=30, **params)
    for target in (y, y[:, 0]):
        ours = MLPRegressor(**params).fit(X, target)
        theirs = skn.MLPRegressor(**params).fit(X, target)
        assert_same_fit(ours, theirs)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8, atol=1e-10)
        assert ours.predict(X).shape == target.shape
        if params.get("early_stopping"):
            np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-8)


def test_partial_fit_and_warm_start_match_scikit_learn(iris):
    X, y = iris
    ours, theirs = MLPClassifier(random_state=0), skn.MLPClassifier(random_state=0)
    for _ in range(3):
        ours.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
        theirs.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    ours.partial_fit(X[100:], y[100:])
    theirs.partial_fit(X[100:], y[100:])
    assert_same_fit(ours, theirs)
    ours = MLPClassifier(random_state=0, max_iter=5, warm_start=True).fit(X, y).fit(X, y)
    theirs = skn.MLPClassifier(random_state=0, max_iter=5, warm_start=True).fit(X, y).fit(X, y)
    assert_same_fit(ours, theirs)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_convergence_rules(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        MLPClassifier(max_iter=3, random_state=0).fit(X, y)
    stopped = MLPClassifier(random_state=0, tol=0.5, n_iter_no_change=2).fit(X, y)
    # epoch 1 sets best_loss_; epochs 2-4 do not beat it by tol: the count exceeds n_iter_no_change
    assert stopped.n_iter_ == 4 == skn.MLPClassifier(random_state=0, tol=0.5, n_iter_no_change=2).fit(X, y).n_iter_
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier(random_state=0, tol=0.5, n_iter_no_change=2).fit(X, y)


def test_labels_of_any_kind_and_pandas(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    clf = MLPClassifier(random_state=0, max_iter=50).fit(frame, pd.Series(names))
    assert list(clf.feature_names_in_) == ["sl", "sw", "pl", "pw"] and clf.n_features_in_ == 4
    assert clf.predict(frame).dtype == names.dtype and set(clf.predict(frame)) <= set(names)
    assert clf.score(frame, names) > 0.8
    one_based = MLPClassifier(random_state=0, max_iter=50).fit(X, y + 1)
    np.testing.assert_array_equal(one_based.classes_, [1, 2, 3])
    assert set(one_based.predict(X)) <= {1, 2, 3}
    Xm, ym = make_multilabel_classification(60, 5, n_classes=4, random_state=1)
    multi = MLPClassifier(random_state=0, max_iter=20).fit(Xm, ym)
    assert multi.predict(Xm).shape == ym.shape and multi.predict_proba(Xm).shape == ym.shape
    reg = MLPRegressor(random_state=0, max_iter=20).fit(frame, pd.Series(X[:, 0] * 2))
    assert reg.predict(frame).shape == (len(X),)


@pytest.mark.parametrize("params, match", [
    (dict(solver="newton"), "solver='newton'"),
    (dict(solver="lbfgs"), "solver='lbfgs' is not supported"),
    (dict(hidden_layer_sizes=()), "hidden_layer_sizes=\\(\\)"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(validation_fraction=1.5), "validation_fraction must be in"),
    (dict(activation="softplus"), "activation='softplus'"),
    (dict(learning_rate="cosine"), "learning_rate='cosine'"),
    (dict(alpha=-1.0), "alpha must be in"),
    (dict(momentum=1.0), "momentum must be in"),
    (dict(batch_size=0), "batch_size must be an integer"),
    (dict(dtype="float16"), "dtype='float16'"),
])
def test_bad_parameters_name_the_argument(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_sample_weight_and_loss(iris):
    X, y = iris
    with pytest.raises(ValueError, match="sample_weight.shape"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="loss='poisson' is not supported"):
        MLPRegressor(loss="poisson").fit(X, y.astype(float))


def test_pickle_holds_host_arrays_and_clone(iris):
    X, y = iris
    clf = MLPClassifier(random_state=0, max_iter=20, solver="sgd").fit(X, y)
    blob = pickle.dumps(clf)
    state = clf.__getstate__()
    assert "_model" not in state
    host = state["_model_host"]
    for arrays in (host["weights"], host["biases"], *host["optimizer_state"].values()):
        assert all(type(a) is np.ndarray for a in arrays)
    assert host["optimizer"]["name"] == "sgd" and host["optimizer_scalars"]["steps"] == 20
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    back.partial_fit(X, y)  # the optimizer (momentum) state came along
    clf.partial_fit(X, y)
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), rtol=1e-12)
    fresh = clone(clf)
    assert not hasattr(fresh, "coefs_") and fresh.get_params() == clf.get_params()


def test_pipeline_grid_search_cross_val(iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=50, learning_rate_init=0.01, hidden_layer_sizes=(20,)))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(MLPClassifier(random_state=0, max_iter=50, learning_rate_init=0.01), {"hidden_layer_sizes": [(5,), (20,)]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(5,), (20,)] and grid.best_score_ > 0.8


def test_float32_follows_the_data(iris):
    X, y = iris
    clf = MLPClassifier(random_state=0, max_iter=10).fit(X.astype(np.float32), y)
    assert clf.predict_proba(X).dtype == np.float32 and clf.coefs_[0].dtype == np.float32
    assert MLPClassifier(random_state=0, max_iter=10, dtype="float64").fit(
        X.astype(np.float32), y).predict_proba(X).dtype == np.float64


def _dispatch():
    import sklearn

    return sklearn.config_context(array_api_dispatch=True)


def test_array_api_torch_stays_on_its_device(iris, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    X, y = iris
    Xt, yt = torch.asarray(X), torch.asarray(y)
    with _dispatch():
        clf = MLPClassifier(random_state=0, max_iter=15).fit(Xt, yt)
        assert clf._get_model().net.backend.name == "torch"
        proba, labels = clf.predict_proba(Xt), clf.predict(Xt)
        assert isinstance(proba, torch.Tensor) and isinstance(labels, torch.Tensor)
        assert isinstance(clf.score(Xt, yt), float)
        with pytest.raises(ValueError, match="must use the same namespace"):
            clf.predict(X)
    assert all(type(c) is np.ndarray for c in clf.coefs_)
    reference = MLPClassifier(random_state=0, max_iter=15).fit(X, y)
    np.testing.assert_allclose(proba.numpy(), reference.predict_proba(X), rtol=1e-9)
    # pickled from torch, unpickled onto the `device` parameter (the CPU): NumPy in, NumPy out
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(back.predict_proba(X), reference.predict_proba(X), rtol=1e-9)


def test_array_api_strict_device(iris, monkeypatch):
    xp = pytest.importorskip("array_api_strict")
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    X, y = iris
    dev = xp.Device("device1")
    Xs, ys = xp.asarray(X, device=dev), xp.asarray(y, device=dev)
    with _dispatch():
        reg = MLPRegressor(random_state=0, max_iter=10).fit(Xs, xp.astype(ys, xp.float64))
        out = reg.predict(Xs)
    assert out.device == dev and out.shape == (len(y),)


def test_ctrl_c_ends_training_with_scikit_learns_warning(iris, monkeypatch):
    from bpgpu.sklearn import _step

    X, y = iris
    real, calls = _step.Stepper.step, []

    def step(self, *args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(_step.Stepper, "step", step)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf = MLPClassifier(random_state=0, batch_size=50).fit(X, y)  # 3 batches per epoch
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
    assert clf.predict(X).shape == (150,) and len(clf.coefs_) == 2


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("namespace, device, dtype", [
    ("array_api_strict", "CPU_DEVICE", "float64"), ("array_api_strict", "device1", "float32"),
    ("torch", "cpu", "float64"), ("torch", "cpu", "float32"),
])
def test_array_api_values_equal_the_numpy_fit(Estimator, namespace, device, dtype, monkeypatch):
    """scikit-learn's stricter array-API check: attributes and every method's output equal the NumPy fit's."""
    pytest.importorskip(namespace)
    from sklearn.utils.estimator_checks import check_array_api_input_and_values

    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check_array_api_input_and_values(Estimator.__name__, Estimator(max_iter=50), array_namespace=namespace,
                                     device_name=device, dtype_name=dtype, check_sample_weight=True)


def test_verbose_prints_scikit_learns_lines(iris, capsys):
    X, y = iris
    MLPClassifier(random_state=0, max_iter=3, verbose=True, early_stopping=True).fit(X, y)
    MLPClassifier(random_state=0, verbose=True, tol=0.5, n_iter_no_change=1).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out
    assert "did not improve more than tol=0.500000 for 1 consecutive epochs. Stopping." in out
