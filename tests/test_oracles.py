"""Independent oracles for the gradients: PyTorch autograd, finite differences, the per-example loop."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from helpers import COMBOS, make_data, max_scaled_difference


def _torch_cost(torch, weights, biases, hidden, output, cost, x, y):
    """The same network written directly in torch, differentiated by autograd."""
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "identity": lambda t: t}
    a = x
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T + b
        if l < len(weights) - 1:
            a = act[hidden](z)
    F = torch.nn.functional
    if cost == "cross_entropy" and output == "softmax":
        return F.cross_entropy(z, y, reduction="mean")
    if cost == "cross_entropy":
        return F.binary_cross_entropy_with_logits(z, y, reduction="sum") / z.shape[0]
    a = {"softmax": lambda t: torch.softmax(t, dim=1), "sigmoid": torch.sigmoid, "identity": lambda t: t}[output](z)
    return 0.5 * ((a - y) ** 2).sum() / z.shape[0]


@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_gradients_match_pytorch_autograd(hidden, output, cost):
    torch = pytest.importorskip("torch", reason="torch is optional: pip install torch==2.13.0")
    rng = np.random.default_rng(5)
    sizes = [6, 8, 5, 3]
    x, y = make_data(sizes, output, 11, rng, labels=False)
    net = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", seed=2)
    c, grad_w, grad_b = net.backprop(x, y)

    ws, bs = [[torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in ps] for ps in net.get_parameters()]
    ty = torch.tensor(np.argmax(y, axis=1)) if (output == "softmax" and cost == "cross_entropy") else torch.tensor(y)
    loss = _torch_cost(torch, ws, bs, hidden, output, cost, torch.tensor(x), ty)
    loss.backward()
    assert c == pytest.approx(loss.item(), rel=1e-12, abs=1e-14)
    assert max_scaled_difference(grad_w + grad_b, [w.grad for w in ws] + [b.grad for b in bs]) <= 1e-12


@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_gradients_match_finite_differences(hidden, output, cost):
    rng = np.random.default_rng(8)
    sizes = [4, 5, 3]
    x, y = make_data(sizes, output, 6, rng)
    net = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", seed=4)
    report = bpgpu.gradcheck(net, x, y)
    assert set(report) == {"W1", "W2", "b1", "b2", "direction"}
    assert max(report.values()) < 1e-6, report


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """The check can fail: break BP3 in the engine gradcheck checks and it must notice."""
    from bpgpu.engines.numpy.step import Engine

    real = Engine.gradients

    def broken(self, *args):
        cost, gw, gb = real(self, *args)
        return cost, gw, [g * 1.01 for g in gb]

    monkeypatch.setattr(Engine, "gradients", broken)
    rng = np.random.default_rng(0)
    x, y = make_data([3, 4, 2], "softmax", 5, rng)
    report = bpgpu.gradcheck(bpgpu.MLP([3, 4, 2], dtype="float64", seed=0), x, y)
    assert report["b1"] > 1e-3 and report["W1"] < 1e-6


def test_gradcheck_random_directions_scale_to_a_larger_net(capsys):
    rng = np.random.default_rng(1)
    x, y = make_data([30, 40, 10], "softmax", 16, rng)
    net = bpgpu.MLP([30, 40, 10], "relu", dtype="float32", seed=1)
    report = bpgpu.gradcheck(net, x, y, max_entries=4, directions=6, verbose=True)
    assert report["direction"] < 1e-6
    assert "worst relative error" in capsys.readouterr().out


def test_gradcheck_redraws_inputs_on_a_relu_kink():
    """An input that puts a hidden ReLU exactly at z = 0 is jittered off the kink before differencing."""
    net = bpgpu.MLP([2, 3, 2], "relu", dtype="float64", seed=0)
    w, b = net.get_parameters()
    b[0][:] = 0.0
    net.set_parameters(w, b)
    x = np.zeros((1, 2))  # z = 0 for every hidden unit: the derivative does not exist there
    report = bpgpu.gradcheck(net, x, np.array([1]))
    assert max(report.values()) < 1e-6


def test_the_second_seeds_worked_example():
    """One sigmoid neuron, cross-entropy, x = 2, w = 0.5, b = −1, y = 1: ∂C/∂w = (a − y)x = −1.0."""
    net = bpgpu.MLP([1, 1], output="sigmoid", cost="cross_entropy", dtype="float64")
    net.set_parameters([np.array([[0.5]])], [np.array([-1.0])])
    x, y = np.array([[2.0]]), np.array([[1.0]])
    cost, grad_w, grad_b = net.backprop(x, y)
    assert float(grad_w[0][0, 0]) == -1.0
    assert float(grad_b[0][0]) == -0.5
    assert cost == pytest.approx(np.log(2.0), rel=1e-15)
    eps = 1e-6
    numeric = []
    for w in (0.5 + eps, 0.5 - eps):
        net.set_parameters([np.array([[w]])], [np.array([-1.0])])
        numeric.append(net.cost(x, y))
    assert (numeric[0] - numeric[1]) / (2 * eps) == pytest.approx(-1.0000000000842668, abs=1e-9)


SIZES_AND_BATCHES = [([3, 2], 1), ([5, 4, 3], 1), ([7, 9, 2], 2), ([4, 6, 6, 6, 3], 13), ([10, 1, 4], 33)]


@pytest.mark.parametrize("hidden,output,cost", COMBOS)
@pytest.mark.parametrize("sizes,m", SIZES_AND_BATCHES, ids=lambda v: str(v))
def test_batched_equals_the_per_example_loop(hidden, output, cost, sizes, m):
    rng = np.random.default_rng(len(sizes) * 100 + m)
    x, y = make_data(sizes, output, m, rng)
    net = bpgpu.MLP(sizes, hidden, output, cost, dtype="float64", seed=m)
    c1, w1, b1 = net.backprop(x, y)
    c2, w2, b2 = net.backprop_per_example(x, y)
    assert c1 == pytest.approx(c2, rel=1e-12, abs=1e-15)
    assert max_scaled_difference(w1 + b1, w2 + b2) <= 1e-12


def test_batched_equals_the_loop_on_a_strict_device():
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(2)
    x, y = make_data([4, 5, 3], "softmax", 6, rng)
    net = bpgpu.MLP([4, 5, 3], "tanh", dtype="float32", seed=0, xp=xps, device=xps.Device("device2"))
    c1, w1, b1 = net.backprop(x, y)
    c2, w2, b2 = net.backprop_per_example(x, y)
    assert max_scaled_difference(w1 + b1, w2 + b2) <= 1e-5
