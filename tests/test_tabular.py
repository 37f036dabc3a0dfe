"""The tabular loader (bpgpu.data.tabular) on real data written to disk in the test: scikit-learn's
iris, wine and diabetes dumped to CSV / NPZ read back equal to the source arrays, labels of every kind,
the held-out split, and each bad input's error."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from bpgpu.data.tabular import load_table, split
from bpgpu.errors import ConfigError, DataError

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="the real tables come from scikit-learn")


def _write_csv(path, header, rows, delimiter=","):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _iris_csv(tmp_path, name="iris.csv"):
    iris = sklearn_datasets.load_iris()
    species = iris.target_names[iris.target]
    rows = [[*map(repr, map(float, row)), s] for row, s in zip(iris.data, species)]
    return _write_csv(tmp_path / name, [*iris.feature_names, "species"], rows), iris


def test_iris_csv_with_string_labels(tmp_path):
    path, iris = _iris_csv(tmp_path)
    table = load_table(path, "species", dtype="float64")
    assert table.feature_names == list(iris.feature_names)
    np.testing.assert_array_equal(table.x, iris.data)  # repr round-trips: bit for bit
    assert table.task == "classification" and list(table.classes) == sorted(iris.target_names)
    np.testing.assert_array_equal(table.classes[table.y], iris.target_names[iris.target])
    assert table.y.dtype == np.int64 and table.x.dtype == np.float64
    assert load_table(path, "species").x.dtype == np.float32


def test_quoted_fields_take_the_careful_path_to_the_same_table(tmp_path):
    path, iris = _iris_csv(tmp_path)
    fast = load_table(path, "species", dtype="float64")
    quoted = tmp_path / "quoted.csv"
    rows = [[*map(repr, map(float, row)), f"Iris, {s}"] for row, s in zip(iris.data, iris.target_names[iris.target])]
    _write_csv(quoted, [*iris.feature_names, "species"], rows)
    assert '"' in quoted.read_text()  # csv.writer quoted the labels holding a comma
    careful = load_table(quoted, "species", dtype="float64")
    np.testing.assert_array_equal(careful.x, fast.x)
    np.testing.assert_array_equal(careful.y, fast.y)
    assert list(careful.classes) == [f"Iris, {c}" for c in fast.classes]
    extra = tmp_path / "extra.csv"
    extra.write_text("a,y\n1,0\n2,1,9\n")
    with pytest.raises(DataError, match="row 2 has 3 fields"):
        load_table(extra, "y")


def test_wine_target_first_labels_one_to_k_tsv_gz(tmp_path):
    wine = sklearn_datasets.load_wine()
    rows = [[int(t) + 1, *map(repr, map(float, row))] for t, row in zip(wine.target, wine.data)]
    path = _write_csv(tmp_path / "wine.tsv.gz", ["cultivar", *wine.feature_names], rows, delimiter="\t")
    table = load_table(path, "cultivar", dtype="float64")
    np.testing.assert_array_equal(table.x, wine.data)
    assert list(table.classes) == [1, 2, 3]
    np.testing.assert_array_equal(table.y, wine.target)


def test_diabetes_is_regression_and_task_can_be_forced(tmp_path):
    diabetes = sklearn_datasets.load_diabetes()
    rows = [[*map(repr, map(float, row)), repr(float(t) + 0.5)] for row, t in zip(diabetes.data, diabetes.target)]
    path = _write_csv(tmp_path / "diabetes.csv", [*diabetes.feature_names, "progression"], rows)
    table = load_table(path, "progression", dtype="float64")
    assert table.task == "regression" and table.classes is None
    np.testing.assert_array_equal(table.y, diabetes.target + 0.5)
    whole = _write_csv(tmp_path / "counts.csv", ["a", "count"], [[i * 0.5, i % 7] for i in range(40)])
    assert load_table(whole, "count").task == "classification"  # whole numbers: classes, as scikit-learn reads them
    forced = load_table(whole, "count", task="regression")
    assert forced.task == "regression" and forced.y[3] == 3.0


def test_npz_columns_and_blocks(tmp_path):
    iris = sklearn_datasets.load_iris()
    path = tmp_path / "iris.npz"
    np.savez(path, x=iris.data, extra=np.arange(150), label=iris.target_names[iris.target])
    table = load_table(path, "label", dtype="float64")
    assert table.feature_names == ["x[0]", "x[1]", "x[2]", "x[3]", "extra"]
    np.testing.assert_array_equal(table.x[:, :4], iris.data)
    np.testing.assert_array_equal(table.classes[table.y], iris.target_names[iris.target])
    np.savez(tmp_path / "xy.npz", x=iris.data, y=iris.target.reshape(-1, 1))
    np.testing.assert_array_equal(load_table(tmp_path / "xy.npz", "y").y, iris.target)


def test_split_is_stratified_disjoint_and_seeded(tmp_path):
    path, iris = _iris_csv(tmp_path)
    table = load_table(path, "species")
    train, held = split(table, 0.2, seed=3)
    assert len(train) + len(held) == 150 and len(held) == 30
    assert np.bincount(held.y).tolist() == [10, 10, 10]
    rows = {tuple(r) + (c,) for r, c in zip(table.x.tolist(), table.y.tolist())}
    assert {tuple(r) + (c,) for r, c in zip(np.vstack([train.x, held.x]).tolist(), np.concatenate([train.y, held.y]).tolist())} == rows
    again, _ = split(table, 0.2, seed=3)
    np.testing.assert_array_equal(again.x, train.x)
    other, _ = split(table, 0.2, seed=4)
    assert not np.array_equal(other.x, train.x)
    with pytest.raises(ConfigError, match="fraction"):
        split(table, 1.5)


def test_non_numeric_feature_names_the_column_and_line(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", ["age", "colour", "y"], [[1, 2, 0], [3, "red", 1], [4, 5, 0]])
    with pytest.raises(DataError, match=r"feature column 'colour'.*row 2 holds 'red'"):
        load_table(path, "y")
    empty = _write_csv(tmp_path / "gap.csv", ["a", "b", "y"], [[1, 2, 0], [3, "", 1]])
    with pytest.raises(DataError, match="'b'.*empty cell"):
        load_table(empty, "y")
    nan = _write_csv(tmp_path / "nan.csv", ["a", "y"], [[1, 0], ["nan", 1]])
    with pytest.raises(DataError, match="'a'.*nan.*missing"):
        load_table(nan, "y")


@pytest.mark.parametrize("header,rows,target,match", [
    (["a", "b"], [[1, 2]], "c", r"--target 'c' is not a column.*'a', 'b'"),
    (["a", "a", "y"], [[1, 2, 0]], "y", "twice"),
    (["a", "", "y"], [[1, 2, 0]], "y", "no name"),
    (["1.5", "2", "3"], [[1, 2, 0]], "3", "header row"),
    (["a", "y"], [[1, 0], [2]], "y", "row 2 has 1 fields"),
    (["a", "y"], [[1, "cat"], [2, "cat"]], "y", "single class"),
    (["a", "y"], [[1, "cat"], [2, "dog"]], "y", "--task regression needs a numeric target"),
    (["a", "y"], [], "y", "no data rows"),
    (["y"], [[1], [2]], "y", "no feature columns"),
])
def test_bad_tables(tmp_path, header, rows, target, match):
    path = _write_csv(tmp_path / "t.csv", header, rows)
    task = "regression" if "task" in match else "auto"
    with pytest.raises((DataError, ConfigError), match=match):
        load_table(path, target, task=task, names={"target": "--target", "task": "--task"})


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="--data 'x.json'.*csv"):
        load_table("x.json", "y", names={"path": "--data"})
    np.savez(tmp_path / "obj.npz", x=np.array([object(), 1], dtype=object), y=np.arange(2))
    with pytest.raises(DataError, match="without running code"):
        load_table(tmp_path / "obj.npz", "y")
    np.savez(tmp_path / "ragged.npz", x=np.zeros((4, 2)), y=np.arange(3))
    with pytest.raises(DataError, match="different numbers of rows"):
        load_table(tmp_path / "ragged.npz", "y")
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "missing.csv", "y")
    with pytest.raises(ConfigError, match="task"):
        load_table(tmp_path / "missing.csv", "y", task="ranking")
