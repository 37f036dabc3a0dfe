"""``bpgpu train --data FILE --target COLUMN`` on real tables written in the test (scikit-learn's iris and
diabetes as CSV / NPZ): accuracy and R² on the held-out split, the schedules, checkpoint + resume equal
to an uninterrupted run, early stopping, and errors that name the flag."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import bpgpu
from bpgpu.cli.main import main

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="the real tables come from scikit-learn")


@pytest.fixture
def iris_csv(tmp_path):
    iris = sklearn_datasets.load_iris()
    path = tmp_path / "iris.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*iris.feature_names, "species"])
        w.writerows([[*row, iris.target_names[t]] for row, t in zip(iris.data, iris.target)])
    return path


def _line(out, start):
    return next(line for line in out.splitlines() if line.startswith(start))


def _run(capsys, *argv):
    code = main(["train", "--no-progress", "--device", "cpu", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_iris_csv_trains_and_reports_held_out_accuracy(iris_csv, capsys, tmp_path):
    model = tmp_path / "iris-model.npz"
    code, out, err = _run(capsys, "--data", str(iris_csv), "--target", "species", "--epochs", "60", "--sizes", "4,16,3",
                          "--optimizer", "adam", "--lr", "0.01", "--schedule", "cosine", "--warmup", "5", "--save", str(model))
    assert code == 0, err
    assert "120 training, 30 held-out examples" in out and "3 classes (setosa, versicolor, virginica)" in out
    assert float(_line(out, "held-out accuracy:").split()[2].rstrip("%")) >= 90.0, out
    net = bpgpu.load(model)
    assert net.sizes == [4, 16, 3]


def test_regression_npz_reports_r2(tmp_path, capsys):
    d = sklearn_datasets.load_diabetes()
    path = tmp_path / "diabetes.npz"
    np.savez(path, x=(d.data - d.data.mean(0)) / d.data.std(0), progression=(d.target - d.target.mean()) / d.target.std() + 0.01)
    code, out, err = _run(capsys, "--data", str(path), "--target", "progression", "--epochs", "40", "--sizes", "10,16,1",
                          "--optimizer", "adam", "--lr", "0.003", "--schedule", "plateau", "--dtype", "float64")
    assert code == 0, err
    assert "regression (identity output, quadratic cost)" in out and "output='identity'" in out
    r2 = float(_line(out, "held-out accuracy:").split("R² ")[1].split()[0])
    assert 0.3 < r2 < 1.0, out  # a linear model scores about 0.45 on diabetes


def test_checkpoint_and_resume_equal_one_run(iris_csv, tmp_path, capsys):
    common = ["--data", str(iris_csv), "--target", "species", "--sizes", "4,8,3", "--dtype", "float64",
              "--schedule", "one-cycle", "--lr", "0.1"]
    whole, half = tmp_path / "whole.npz", tmp_path / "half.npz"
    assert _run(capsys, *common, "--epochs", "10", "--save", str(whole), "--checkpoint", str(tmp_path / "ck-{epoch}.npz"))[0] == 0
    assert (tmp_path / "ck-4.npz").exists() and (tmp_path / "ck-10.npz").exists()
    code, out, err = _run(capsys, *common, "--epochs", "10", "--resume", str(tmp_path / "ck-4.npz"), "--save", str(half))
    assert code == 0, err
    a, b = bpgpu.load(whole), bpgpu.load(half)
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb))


def test_early_stopping_ends_the_run(iris_csv, capsys):
    code, out, err = _run(capsys, "--data", str(iris_csv), "--target", "species", "--epochs", "500",
                          "--early-stopping", "2", "--validation-split", "0.3", "--sizes", "4,8,3")
    assert code == 0, err
    epochs = int(_line(out, "time:").split(" for ")[1].split()[0])
    assert epochs < 500


@pytest.mark.parametrize("argv,match", [
    (["--target", "nope"], "--target 'nope' is not a column"),
    (["--target", "species", "--mnist", "x"], "--data and --mnist"),
    ([], "--data needs --target"),
    (["--target", "species", "--task", "regression"], "--task regression needs a numeric target but --target 'species'"),
    (["--target", "species", "--warmup", "2"], "--warmup applies to --schedule cosine"),
    (["--target", "species", "--schedule", "cosine", "--warmup", "9", "--epochs", "9"], "--warmup must be fewer epochs than --epochs 9"),
    (["--target", "species", "--schedule", "plateau", "--lr-gamma", "3"], "--lr-gamma must be in"),
])
def test_bad_flags_are_named(iris_csv, capsys, argv, match):
    code, out, err = _run(capsys, "--data", str(iris_csv), *argv)
    assert code == 1 and match in err, err


def test_non_numeric_feature_column_is_named(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    path.write_text("height,colour,label\n1.0,3,a\n2.0,red,b\n3.0,4,a\n")
    code, out, err = _run(capsys, "--data", str(path), "--target", "label")
    assert code == 1 and "feature column 'colour'" in err and "'red'" in err, err
    code, out, err = _run(capsys, "--target", "label")
    assert code == 1 and "--target names a column of --data" in err


def test_adamw_dropout_and_clipping_flags_reach_fit(iris_csv, capsys, monkeypatch):
    seen = {}
    real_fit = bpgpu.MLP.fit

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(bpgpu.MLP, "fit", spy)
    code, out, err = _run(capsys, "--data", str(iris_csv), "--target", "species", "--epochs", "40", "--sizes", "4,16,3",
                          "--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.01", "--dropout", "0.2",
                          "--clip-norm", "1.5", "--clip-value", "0.5")
    assert code == 0, err
    assert "AdamW(" in out and "dropout 0.2, clip norm 1.5, clip value 0.5" in out
    assert isinstance(seen["optimizer"], bpgpu.AdamW) and seen["optimizer"].weight_decay == 0.01
    assert (seen["dropout"], seen["clip_norm"], seen["clip_value"]) == (0.2, 1.5, 0.5)
    assert float(_line(out, "held-out accuracy:").split()[2].rstrip("%")) >= 90.0, out


def test_class_weight_flag_maps_labels_to_classes(iris_csv, capsys, monkeypatch):
    seen = {}
    real_fit = bpgpu.MLP.fit

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(bpgpu.MLP, "fit", spy)
    common = ["--data", str(iris_csv), "--target", "species", "--epochs", "2", "--sizes", "4,8,3"]
    assert _run(capsys, *common, "--class-weight", "virginica=2.5, setosa=0")[0] == 0
    assert seen["class_weight"] == {2: 2.5, 0: 0.0}  # classes sorted: setosa 0, versicolor 1, virginica 2
    assert _run(capsys, *common, "--class-weight", "balanced")[0] == 0 and seen["class_weight"] == "balanced"
    for bad, match in (("rose=2", "a label of the data (setosa, versicolor, virginica)"), ("setosa=x", "not a number"),
                       ("setosa=-1", "finite number ≥ 0"), ("setosa", "LABEL=WEIGHT")):
        code, out, err = _run(capsys, *common, "--class-weight", bad)
        assert code == 1 and "--class-weight" in err and match in err, err
        assert "network:" not in out  # refused before anything was built or trained


@pytest.mark.parametrize("argv", [["--validation-split", "1.5"], ["--early-stopping", "-1"], ["--schedule", "cyclic"],
                                  ["--dropout", "1"], ["--dropout", "-0.1"], ["--clip-norm", "0"], ["--clip-value", "-2"],
                                  ["--clip-norm", "inf"], ["--optimizer", "lion"]])
def test_bad_values_rejected_by_the_parser(iris_csv, argv):
    with pytest.raises(SystemExit):
        main(["train", "--data", str(iris_csv), "--target", "species", *argv])


def test_standardize_trains_raw_wine_and_the_saved_model_takes_raw_features(tmp_path, capsys):
    wine = sklearn_datasets.load_wine()
    path, model = tmp_path / "wine.csv", tmp_path / "wine-model.npz"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*wine.feature_names, "cultivar"])
        w.writerows([[*row, wine.target_names[t]] for row, t in zip(wine.data, wine.target)])
    common = ["--data", str(path), "--target", "cultivar", "--epochs", "30", "--sizes", "13,16,3"]
    code, out, err = _run(capsys, *common)
    assert code == 0 and "--standardize usually trains much better" in out  # raw wine: proline's std is ~300
    code, out, err = _run(capsys, *common, "--standardize", "--save", str(model), "--dtype", "float64")
    assert code == 0, err
    accuracy = float(_line(out, "held-out accuracy:").split()[2].rstrip("%"))
    assert accuracy >= 90.0, out
    net = bpgpu.load(model)  # raw features in, the same held-out accuracy out
    from bpgpu.data.tabular import load_table, split

    _, held = split(load_table(path, "cultivar", dtype="float64"), 0.2, seed=0)
    assert 100 * net.evaluate(held.x, held.y)["accuracy"] == pytest.approx(accuracy)


def test_folding_the_scaler_into_the_first_layer_is_exact():
    import argparse

    from bpgpu.cli.train_options import UserData, fold_scaler, standardize

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)) * np.array([1.0, 100.0, 0.01, 5.0]) + np.array([3.0, -200.0, 0.0, 7.0])
    x[:, 3] = 7.0  # a constant feature: std 1
    data = standardize(argparse.Namespace(standardize=True), UserData(x, rng.integers(0, 3, 30), None, None, "t", np.arange(3)))
    net = bpgpu.MLP([4, 5, 3], hidden="tanh", dtype="float64", seed=0)
    before = np.asarray(net.predict_proba(data.x_train))
    raw = fold_scaler(net, data, data.x_train)
    assert raw is x
    np.testing.assert_allclose(np.asarray(net.predict_proba(raw)), before, rtol=0, atol=1e-13)


def test_an_interrupted_standardize_run_saves_a_model_that_takes_raw_features(iris_csv, tmp_path, capsys, monkeypatch):
    """Ctrl-C at a step boundary keeps --save, with the scaling folded in as after a finished run."""
    from bpgpu.data.tabular import load_table, split
    from bpgpu.errors import TrainingInterrupted

    real_fit, seen = bpgpu.MLP.fit, {}

    def fit_then_interrupt(net, x, y, epochs, **kwargs):
        real_fit(net, x, y, epochs=3, **{**kwargs, "validation_data": None})
        x_val = kwargs["validation_data"][0]  # the standardized held-out rows
        seen["proba"] = np.asarray(bpgpu.to_host(net.predict_proba(x_val)))
        raise TrainingInterrupted("stopped", signal="SIGINT", epoch=3, batch=4)

    monkeypatch.setattr(bpgpu.MLP, "fit", fit_then_interrupt)
    model = tmp_path / "iris-model.npz"
    code, out, err = _run(capsys, "--data", str(iris_csv), "--target", "species", "--sizes", "4,8,3",
                          "--dtype", "float64", "--standardize", "--save", str(model))
    assert code == 130 and "at a step boundary" in err and str(model) in err
    _, held = split(load_table(iris_csv, "species", dtype="float64"), 0.2, seed=0)
    np.testing.assert_allclose(bpgpu.load(model).predict_proba(held.x), seen["proba"], rtol=0, atol=1e-12)
