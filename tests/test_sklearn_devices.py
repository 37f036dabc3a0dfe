"""bpgpu.sklearn on a GPU, shown on the CuPy test double (tests/cupy_double/: CuPy's rules over NumPy,
two devices) and on real CuPy where a card is: training on the asked device, CuPy inputs under array-API
dispatch staying CuPy (scikit-learn's own array-API check with namespace "cupy"), and a model fitted on
a GPU unpickling on a machine without one."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

import sklearn  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.utils.estimator_checks import check_array_api_input  # noqa: E402

from bpgpu.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_scikit_learns_array_api_check_with_cupy(gpu_cupy, Estimator, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check_array_api_input(Estimator.__name__, Estimator(), array_namespace="cupy")


def test_device_parameter_trains_on_cuda_1(cupy_double, iris):
    X, y = iris
    clf = MLPClassifier(random_state=0, max_iter=20, device="cuda:1").fit(X, y)
    net = clf._get_model().net
    assert net.backend.label == "cuda:1" and all(w.device.id == 1 for w in net.weights)
    reference = MLPClassifier(random_state=0, max_iter=20).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), rtol=1e-9)
    assert type(clf.predict(X)) is np.ndarray and all(type(c) is np.ndarray for c in clf.coefs_)


def test_cupy_input_under_dispatch_stays_on_its_device(cupy_double, iris, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    cp = cupy_double.cupy
    X, y = iris
    with cp.cuda.Device(1):
        Xc, yc = cp.asarray(X), cp.asarray(y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = MLPClassifier(random_state=0, max_iter=10).fit(Xc, yc)
        proba, labels = clf.predict_proba(Xc), clf.predict(Xc)
    assert isinstance(proba, cp.ndarray) and proba.device.id == 1 and labels.device.id == 1
    assert clf._get_model().net.backend.label == "cuda:1"


def test_fitted_on_a_gpu_unpickles_on_a_cpu_only_machine(cupy_double, iris, tmp_path, monkeypatch):
    X, y = iris
    monkeypatch.setenv("BPGPU_DEVICE", "cuda:1")
    clf = MLPClassifier(random_state=0, max_iter=20).fit(X, y)
    assert clf._get_model().net.backend.label == "cuda:1"
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", clf.predict_proba(X))
    # a fresh interpreter without CuPy (no double installed) and without BPGPU_DEVICE
    script = (
        "import pickle, sys, numpy as np\n"
        "assert 'cupy' not in sys.modules\n"
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"p = clf.predict_proba(np.load({str(tmp_path / 'X.npy')!r}))\n"
        f"np.testing.assert_allclose(p, np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-12)\n"
        "assert clf._get_model().net.backend.label == 'cpu' and 'cupy' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "BPGPU_DEVICE"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_explicit_gpu_device_on_a_cpu_only_machine_says_how_to_use_the_cpu(cupy_double, iris, tmp_path):
    X, y = iris
    clf = MLPClassifier(random_state=0, max_iter=5, device="cuda:1").fit(X, y)
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(clf))
    script = (
        "import pickle, numpy as np, bpgpu\n"
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "X = np.zeros((2, 4))\n"
        "try:\n"
        "    clf.predict(X)\n"
        "except bpgpu.DeviceError as exc:\n"
        "    assert \"set_params(device='cpu')\" in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no DeviceError')\n"
        "assert clf.set_params(device='cpu').predict(X).shape == (2,)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "BPGPU_DEVICE"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
