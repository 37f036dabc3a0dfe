"""The first-use warm-up (bpgpu/engines/warmup.py): it runs the step's kernels on a stand-in network
and leaves the real network and optimizer exactly as they were."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.engines.warmup import stand_in, warm_up
from bpgpu.training.optimizers import SGD, Adam


@pytest.mark.parametrize("hidden,output,n_out", [("relu", "softmax", 10), ("sigmoid", "sigmoid", 1),
                                                 ("tanh", "sigmoid", 3), ("sigmoid", "identity", 2)])
def test_warm_up_changes_nothing_of_the_network_or_optimizer(hidden, output, n_out):
    net = bpgpu.MLP([5, 7, 6, n_out], hidden=hidden, output=output, seed=0)
    opt = Adam(1e-3)
    x = np.random.default_rng(0).random((8, 5))
    y = {"softmax": np.arange(8) % n_out, "identity": np.ones((8, n_out))}.get(
        output, (np.arange(8) % 2) if n_out == 1 else np.ones((8, n_out)))
    net.fit(x, y, 1, 4, optimizer=opt, progress=False, seed=0)  # Adam state and step count exist
    before = net.get_parameters(), {k: [np.array(a) for a in v] for k, v in opt.state.items()}, opt.steps
    seconds = warm_up(net, opt, batch_size=4)
    assert seconds > 0
    after = net.get_parameters()
    for a, b in zip(before[0][0] + before[0][1], after[0] + after[1]):
        assert np.array_equal(a, b)
    assert opt.steps == before[2]
    for k, v in before[1].items():
        assert all(np.array_equal(a, np.array(b)) for a, b in zip(v, opt.state[k]))


def test_the_stand_in_has_the_same_kernels_shape_of_network():
    net = bpgpu.MLP([784, 300, 100, 10], hidden="relu", dtype="float64", seed=0)
    small = stand_in(net)
    assert small.sizes == [2, 2, 2, 2] and small.hidden.name == "relu" and small.output == "softmax"
    assert small.dtype_name == "float64" and small.backend.label == net.backend.label


@pytest.mark.gpu
def test_warm_up_on_the_gpu(gpu_cupy):
    net = bpgpu.MLP([6, 5, 3], device="cuda:0", seed=0)
    w0 = bpgpu.to_host(net.weights[0]).copy()
    assert warm_up(net, SGD(0.1, momentum=0.9)) > 0
    assert np.array_equal(bpgpu.to_host(net.weights[0]), w0)


@pytest.mark.gpu
def test_bpgpu_train_prints_the_warm_up_before_epoch_1(gpu_cupy, capsys):
    from bpgpu.cli.main import main

    assert main(["train", "--device", "cuda:0", "--epochs", "1", "--no-progress", "--sizes", "64,8,10"]) == 0
    out = capsys.readouterr().out
    assert "warm-up:" in out and "not in the epoch times" in out
    assert out.index("warm-up:") < out.index("time:")


def test_bpgpu_train_on_the_cpu_has_no_warm_up_line(capsys):
    from bpgpu.cli.main import main

    assert main(["train", "--epochs", "1", "--no-progress", "--sizes", "64,8,10"]) == 0
    assert "warm-up:" not in capsys.readouterr().out
