"""Every device index works (issue 10, rows 1 and 2), shown on the CuPy test double (two devices, CuPy's
rule that an operand must live on the current device) and on real CuPy where a card is: ``cuda:1``
trains on device 1 and equals the ``cuda:0`` run; ``xp=cupy`` / ``xp=array_api_compat.cupy`` with device
objects or integers; optimizer state kept across steps on cuda:1; under mpirun each rank takes the GPU
of its local rank."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.backend.arrays import to_host

pytestmark = pytest.mark.gpu


def _data(m=48, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n_in)), rng.integers(0, n_out, size=m)


def _on(net, index):
    return all(p.device.id == index for p in net.weights + net.biases)


def _train(device, **kw):
    x, y = _data()
    xv, yv = _data(16, seed=1)
    net = bpgpu.MLP([5, 7, 3], hidden="relu", dtype="float64", seed=3, device=device, **kw)
    hist = net.fit(x, y, epochs=3, batch_size=8, optimizer=bpgpu.Adam(0.01), validation_data=(xv, yv),
                   early_stopping=bpgpu.EarlyStopping(patience=5) if hasattr(bpgpu, "EarlyStopping") else None,
                   seed=7, progress=False)
    return net, hist


def test_cuda_1_trains_on_device_1_and_equals_the_cuda_0_run(two_gpus):
    net0, h0 = _train("cuda:0")
    net1, h1 = _train("cuda:1")
    assert net1.backend.label == "cuda:1" and _on(net1, 1) and _on(net0, 0)
    assert h0.cost == h1.cost and h0.val_cost == h1.val_cost
    for a, b in zip(net0.weights + net0.biases, net1.weights + net1.biases):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    x, y = _data(10, seed=2)
    # evaluate / predict / backprop / cost on device 1, with device 0 current the whole time
    assert net1.evaluate(x, y) == net0.evaluate(x, y)
    np.testing.assert_array_equal(to_host(net1.predict(x)), to_host(net0.predict(x)))
    proba = net1.predict_proba(x)
    assert proba.device.id == 1
    c1, gw1, gb1 = net1.backprop(x, y)
    c0, gw0, gb0 = net0.backprop(x, y)
    assert c1 == c0 and all(g.device.id == 1 for g in gw1 + gb1)
    for a, b in zip(gw0 + gb0, gw1 + gb1):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    assert net1.cost(x, y) == net0.cost(x, y)


def test_save_load_and_copy_stay_on_device_1(two_gpus, tmp_path):
    net, _ = _train("cuda:1")
    path = net.save(tmp_path / "net.npz")
    back = bpgpu.load(path, device="cuda:1")
    assert back.backend.label == "cuda:1" and _on(back, 1)
    twin = net.copy()
    assert twin.backend.label == "cuda:1" and _on(twin, 1)
    x, y = _data(6, seed=4)
    np.testing.assert_array_equal(to_host(back.predict_proba(x)), to_host(net.predict_proba(x)))


def test_optimizer_state_is_kept_across_steps_on_cuda_1(two_gpus):
    """A user loop of backprop + opt.step on cuda:1: Adam's moments and step count carry over (they
    were re-created every step when devices were compared by string)."""
    x, y = _data()
    runs = {}
    for dev in ("cuda:0", "cuda:1"):
        net = bpgpu.MLP([5, 7, 3], dtype="float64", seed=3, device=dev)
        opt = bpgpu.Adam(0.01)
        for k in range(4):
            _, gw, gb = net.backprop(x[8 * k: 8 * k + 8], y[8 * k: 8 * k + 8])
            net.weights, net.biases = opt.step(net.weights, net.biases, gw, gb)
            state = [s for name in opt.state_names for s in opt.state[name]]
            assert all(s.device.id == int(dev[-1]) for s in state)
            if k == 0:
                first = [id(s) for s in state]
        assert [id(s) for s in state] == first, "optimizer state was re-created"
        runs[dev] = [to_host(p) for p in net.weights + net.biases]
    for a, b in zip(runs["cuda:0"], runs["cuda:1"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("how", ["cupy-device-0", "int-0", "cupy-device-1", "int-1", "compat-device-1",
                                 "compat-none", "cupy-none", "device-object-alone"])
def test_xp_cupy_and_compat_cupy_take_device_objects_and_integers(two_gpus, how):
    import array_api_compat.cupy as compat_cupy

    cupy = two_gpus
    kwargs, want = {
        "cupy-device-0": ({"xp": cupy, "device": cupy.cuda.Device(0)}, 0),
        "int-0": ({"xp": cupy, "device": 0}, 0),
        "cupy-device-1": ({"xp": cupy, "device": cupy.cuda.Device(1)}, 1),
        "int-1": ({"xp": cupy, "device": 1}, 1),
        "compat-device-1": ({"xp": compat_cupy, "device": cupy.cuda.Device(1)}, 1),
        "compat-none": ({"xp": compat_cupy}, 0),
        "cupy-none": ({"xp": cupy}, 0),
        "device-object-alone": ({"device": cupy.cuda.Device(1)}, 1),
    }[how]
    net = bpgpu.MLP([4, 6, 3], dtype="float64", seed=0, **kwargs)
    assert net.backend.label == f"cuda:{want}" and _on(net, want)
    x, y = _data(12, n_in=4)
    net.fit(x, y, epochs=1, batch_size=4, seed=0, progress=False)
    assert _on(net, want)


def test_xp_cupy_without_a_device_means_cupys_current_device(two_gpus):
    cupy = two_gpus
    with cupy.cuda.Device(1):
        net = bpgpu.MLP([4, 3], seed=0, xp=cupy)
    assert net.backend.label == "cuda:1"


def test_a_missing_gpu_index_is_a_device_error_and_a_bare_integer_names_the_spelling(gpu_cupy):
    count = gpu_cupy.cuda.runtime.getDeviceCount()
    with pytest.raises(bpgpu.DeviceError, match=rf"cuda:{count} does not exist: this machine has {count} GPU"):
        bpgpu.MLP([3, 2], xp=gpu_cupy, device=count)
    with pytest.raises(bpgpu.ConfigError, match=r"device=1 is not understood.*device='cuda:1', or xp=cupy with device=1"):
        bpgpu.MLP([3, 2], device=1)


def test_arrays_given_on_another_gpu_are_refused_not_migrated(two_gpus):
    cupy = two_gpus
    net = bpgpu.MLP([4, 3], seed=0, device="cuda:1")
    with cupy.cuda.Device(0):
        x = cupy.ones((2, 4))
    with pytest.raises(bpgpu.DeviceMismatchError):
        net.forward(x)


@pytest.mark.parametrize("local,count,spec,want", [("1", 2, "gpu", 1), ("3", 2, "cuda", 1), ("0", 2, "gpu", 0),
                                                   ("1", 2, "cuda:0", 0), ("1", 1, "gpu", 0)])
def test_under_mpirun_each_rank_takes_the_gpu_of_its_local_rank(cupy_double, monkeypatch, local, count, spec, want):
    cupy_double.reset(device_count=count)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", local)
    assert bpgpu.MLP([3, 2], seed=0, device=spec).backend.label == f"cuda:{want}"
    monkeypatch.setenv("BPGPU_DEVICE", spec)
    assert bpgpu.MLP([3, 2], seed=0).backend.label == f"cuda:{want}"


def test_local_rank_from_each_launcher():
    from bpgpu.distributed.local import default_gpu_index, local_rank

    assert local_rank({}) is None and default_gpu_index(4, {}) == 0
    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "MV2_COMM_WORLD_LOCAL_RANK"):
        assert local_rank({var: "5"}) == 5
        assert default_gpu_index(4, {var: "5"}) == 1
    assert default_gpu_index(0, {"SLURM_LOCALID": "3"}) == 0


def test_moving_a_network_between_the_cpu_and_each_gpu_keeps_its_parameters(two_gpus):
    net = bpgpu.MLP([4, 6, 3], dtype="float64", seed=0)
    before = [to_host(p).copy() for p in net.weights + net.biases]
    for device, index in (("cuda:1", 1), ("cuda:0", 0), ("cuda:1", 1)):
        net.to(device)
        assert net.backend.label == device and _on(net, index)
        x, y = _data(8, n_in=4)
        net.fit(x, y, epochs=1, batch_size=4, optimizer=bpgpu.SGD(1e-12), seed=0, progress=False)
        assert _on(net, index)
    net.to("cpu")
    for a, b in zip(before, net.weights + net.biases):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_a_cpu_network_given_gpu_arrays_takes_them_to_the_host(two_gpus):
    cupy = two_gpus
    net = bpgpu.MLP([4, 3], dtype="float64", seed=0)
    x = np.random.default_rng(0).normal(size=(5, 4))
    with cupy.cuda.Device(1):
        xd = cupy.asarray(x)
    np.testing.assert_array_equal(to_host(net.forward(xd)), to_host(net.forward(x)))


@pytest.mark.parametrize("features", [{"dropout": 0.3}, {"clip_norm": 0.1, "clip_value": 0.05}],
                         ids=["dropout-generic-engine", "clipping-cupy-engine"])
def test_fit_options_on_cuda_1_equal_the_cpu_run(two_gpus, features):
    x, y = _data()
    runs = []
    for device in ("cpu", "cuda:1"):
        net = bpgpu.MLP([5, 7, 3], hidden="relu", dtype="float64", seed=3, device=device)
        hist = net.fit(x, y, epochs=2, batch_size=8, optimizer=bpgpu.SGD(0.1, momentum=0.9), seed=7,
                       progress=False, **features)
        runs.append((hist, [to_host(p) for p in net.weights + net.biases]))
    (h0, p0), (h1, p1) = runs
    np.testing.assert_allclose(h1.cost, h0.cost, rtol=1e-12)
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)
