"""Arrays of another library as input (bpgpu/backend/arrays.py adopt): taken over by DLPack without a
copy where they live on the network's device, copied once (with a log line) from a GPU into a CPU
network, a DeviceMismatchError between different devices; outputs are always the network's arrays."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest

import bpgpu
from bpgpu.backend import arrays
from bpgpu.backend.arrays import adopt, dlpack_device
from bpgpu.backend.device import resolve

torch = pytest.importorskip("torch", reason="torch is optional: pip install torch==2.13.0")
xps = pytest.importorskip("array_api_strict")

RNG = np.random.default_rng(3)
X = RNG.normal(size=(6, 3)).astype(np.float32)
Y = np.array([0, 1, 1, 0, 1, 0])


def _net(**kw):
    return bpgpu.MLP([3, 4, 2], seed=1, **kw)


def test_a_cpu_network_takes_a_torch_cpu_tensor_without_a_copy():
    net = _net()
    t = torch.from_numpy(X.copy())
    taken = adopt(t, net.backend)
    assert isinstance(taken, np.ndarray) and np.shares_memory(taken, t.numpy())  # zero copy
    out = net.forward(t)
    assert isinstance(out, np.ndarray)  # the network's namespace
    np.testing.assert_array_equal(out, net.forward(X))
    assert net.cost(t, torch.from_numpy(Y)) == net.cost(X, Y)
    cost, grad_w, _ = net.backprop(t.requires_grad_(True), Y)  # an autograd leaf: detached, not refused
    assert isinstance(grad_w[0], np.ndarray) and cost == net.backprop(X, Y)[0]


def test_a_torch_network_takes_numpy_and_host_strict_arrays():
    net = _net(xp=torch, device="cpu")
    a = xps.asarray(X, device=xps.Device("CPU_DEVICE"))
    out = net.forward(a)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), net.forward(X).numpy())


def test_fit_takes_torch_data():
    a, b = _net(), _net()
    ha = a.fit(torch.from_numpy(X), torch.from_numpy(Y), 2, 3, progress=False, seed=0)
    hb = b.fit(X, Y, 2, 3, progress=False, seed=0)
    assert ha.cost == hb.cost  # same data, same arithmetic
    for wa, wb in zip(a.get_parameters()[0], b.get_parameters()[0]):
        np.testing.assert_array_equal(wa, wb)


class FakeGpuArray:
    """A DLPack producer on CUDA device ``index`` (an array of a library bpgpu does not know), with
    host memory underneath so the test can run: it exports a host copy only when asked for one
    (``dl_device=(1, 0)``, ``copy=True``), as CuPy and torch do."""

    namespace = types.SimpleNamespace(__name__="fakegpu", isdtype=np.isdtype, float32=np.float32,
                                      float64=np.float64, int64=np.int64)

    def __init__(self, a, index=0):
        self._a, self.index = np.asarray(a), index
        self.shape, self.dtype, self.ndim, self.device = self._a.shape, self._a.dtype, self._a.ndim, f"cuda:{index}"
        self.exports = []

    def __array_namespace__(self, api_version=None):
        return self.namespace

    def __dlpack_device__(self):
        return (2, self.index)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.exports.append((dl_device, copy))
        if dl_device is None or tuple(dl_device) != (1, 0):
            raise BufferError("a CUDA array cannot be read on the host without a copy")
        return self._a.copy().__dlpack__(max_version=max_version)


def test_a_gpu_array_into_a_cpu_network_is_copied_to_the_host_with_a_log_line(caplog, monkeypatch):
    monkeypatch.setattr(arrays, "_warned", set())
    net = _net()
    g = FakeGpuArray(X)
    assert dlpack_device(g) == (2, 0)
    with caplog.at_level(logging.WARNING, logger="bpgpu"):
        out = net.forward(g)
        net.forward(g)
    np.testing.assert_array_equal(out, net.forward(X))
    assert caplog.text.count("copying it to the host") == 1  # once per source library and argument
    assert "x is a test_interop array on cuda:0" in caplog.text and "net.to('cuda:0')" in caplog.text
    assert g.exports[-1] == ((1, 0), True)


def test_a_gpu_array_is_refused_by_a_network_on_another_gpu():
    """A GPU array never moves between devices behind the caller's back (a stand-in torch backend on
    cuda:1; the array lives on cuda:0)."""
    from bpgpu.backend.device import Backend

    backend = Backend(xp=None, device=torch.device("cuda", 1), name="torch")
    assert adopt(FakeGpuArray(X, index=0), backend) is None
    cpu_tensor = adopt(torch.from_numpy(X), resolve("cpu"))
    assert isinstance(cpu_tensor, np.ndarray)


def test_fake_devices_are_not_taken_over():
    """array-api-strict's device1/device2 stand for other devices: still a DeviceMismatchError."""
    net = _net()
    with pytest.raises(bpgpu.DeviceMismatchError, match="move the data"):
        net.forward(xps.asarray(X, device=xps.Device("device1")))
    assert dlpack_device(xps.asarray(X, device=xps.Device("device2"))) is None


@pytest.mark.gpu
def test_cupy_and_torch_cuda_share_memory(need_gpu):
    cupy = pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    net = _net(device="cuda:0")
    t = torch.from_numpy(X).cuda(0)
    taken = adopt(t, net.backend)
    assert isinstance(taken, cupy.ndarray) and taken.data.ptr == t.data_ptr()
    np.testing.assert_allclose(bpgpu.to_host(net.forward(t)), bpgpu.to_host(net.forward(X)))
    cpu = _net()
    np.testing.assert_allclose(cpu.forward(cupy.asarray(X)), cpu.forward(X))


@pytest.mark.gpu
def test_cupy_arrays_into_cpu_and_gpu_networks(gpu_cupy, caplog, monkeypatch):
    """On the CuPy test double (and on real CuPy where a card is): a CuPy array into a CPU network is
    copied to the host with a log line; into a CuPy network on its device it is used as it is; on
    another GPU it is a DeviceMismatchError; a torch CPU tensor into a CuPy network is host data."""
    cupy = gpu_cupy
    monkeypatch.setattr(arrays, "_warned", set())
    cpu = _net()
    with caplog.at_level(logging.WARNING, logger="bpgpu"):
        out = cpu.forward(cupy.asarray(X))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, cpu.forward(X))
    assert "x is a cupy array on cuda:0" in caplog.text and "copying it to the host" in caplog.text
    gpu = _net(device="cuda:0")
    xg = cupy.asarray(X)
    assert adopt(xg, gpu.backend) is not None
    np.testing.assert_allclose(bpgpu.to_host(gpu.forward(xg)), cpu.forward(X), rtol=1e-6)
    np.testing.assert_allclose(bpgpu.to_host(gpu.forward(torch.from_numpy(X))), cpu.forward(X), rtol=1e-6)
    if cupy.cuda.runtime.getDeviceCount() > 1:
        with cupy.cuda.Device(1):
            other = cupy.asarray(X)
        with pytest.raises(bpgpu.DeviceMismatchError, match="cuda:1"):
            gpu.forward(other)
