"""``bpgpu train`` end to end, its default's accuracy on the digits, and ``plot_history``."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import bpgpu
from bpgpu.cli.main import main


def test_train_default_reaches_97_percent_on_the_digits(capsys, monkeypatch):
    monkeypatch.delenv("BPGPU_DEVICE", raising=False)
    assert main(["train", "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("test accuracy:"))
    accuracy = float(line.split()[2].rstrip("%"))
    assert accuracy >= 97.0, out
    assert "s/epoch) on cpu" in out


def test_train_options_save_and_plot(tmp_path, capsys):
    model, plot = tmp_path / "digits.npz", tmp_path / "history.png"
    code = main(["train", "--sizes", "64,20,10", "--hidden", "tanh", "--optimizer", "adam", "--lr", "0.01",
                 "--epochs", "3", "--batch-size", "64", "--dtype", "float64", "--seed", "1", "--device", "cpu",
                 "--save", str(model), "--plot", str(plot)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "epoch 3/3" in captured.err  # the progress bar (stderr)
    net = bpgpu.load(model)
    assert net.sizes == [64, 20, 10] and net.hidden.name == "tanh" and net.dtype_name == "float64"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_reports_bad_options(capsys):
    assert main(["train", "--sizes", "10,5,10", "--epochs", "1", "--no-progress"]) == 1
    assert "64 features" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--sizes", "64,x,10"])


def test_train_on_mnist_idx_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    assert main(["train", "--mnist", str(tmp_path), "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MNIST" in out and "30 training, 10 test" in out and "[784, 128, 64, 10]" in out
    nielsen = ["--sizes", "784,30,10", "--hidden", "sigmoid", "--output", "sigmoid", "--cost", "quadratic", "--lr", "3.0",
               "--momentum", "0", "--weight-decay", "0", "--lr-step", "0", "--batch-size", "10"]
    assert main(["train", "--mnist", str(tmp_path), "--epochs", "1", "--no-progress", *nielsen]) == 0
    assert "output='sigmoid', cost='quadratic'" in capsys.readouterr().out


def test_plot_history_writes_a_png(tmp_path):
    x, y = bpgpu.datasets.make_classification(60, 4, 3, seed=0)
    net = bpgpu.MLP([4, 6, 3], seed=0)
    history = net.fit(x[:40], y[:40], epochs=3, batch_size=10, validation_data=(x[40:], y[40:]), progress=False)
    path = bpgpu.plot_history(history, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path == str(tmp_path / "h.png")
    no_norms = net.fit(x, y, epochs=2, batch_size=10, progress=False, record_grad_norms=False)
    bpgpu.plot_history(no_norms.to_dict(), tmp_path / "h2.svg")
    assert (tmp_path / "h2.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="empty"):
        bpgpu.plot_history(bpgpu.History(), tmp_path / "h3.png")


def test_plot_history_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    import sys

    history = bpgpu.History.from_dict({"epoch": [1], "cost": [0.5], "val_cost": [None], "val_accuracy": [None],
                                       "seconds": [0.1], "lr": [0.1], "grad_norms": [[1.0]]})
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"bpgpu\[plot\]"):
        bpgpu.plot_history(history, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()
