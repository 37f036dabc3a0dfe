"""The CuPy step engine (bpgpu/engines/cupy/) on the CuPy test double (and on real CuPy where a card
is): equal to the generic reference engine for every hidden × output × cost combination and every
optimizer; the device operations per step within issue 9's targets; no device→host sync per batch in
``fit``; fit's peak device memory as a multiple of the model state; an out-of-memory error leaves the
parameters at a step boundary."""

from __future__ import annotations

import numpy as np
import pytest

import bpgpu
from bpgpu.backend.arrays import to_host
from bpgpu.engines import StepConfig, make_engine
from helpers import COMBOS, make_data, max_scaled_difference

pytestmark = pytest.mark.gpu

OPTIMIZERS = {
    "sgd": lambda: bpgpu.SGD(0.1),
    "momentum": lambda: bpgpu.SGD(0.05, momentum=0.9),
    "nesterov": lambda: bpgpu.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: bpgpu.Adam(0.01),
    "momentum-decay": lambda: bpgpu.SGD(0.05, momentum=0.9, weight_decay=1e-3),
    "adam-decay": lambda: bpgpu.Adam(0.01, weight_decay=1e-3),
}


def _train_steps(net, opt, x, y, batch, generic, steps=3, sample_weight=None):
    eng = make_engine(net, opt, StepConfig(batch_size=batch), generic=generic)
    with net.backend.activate():
        xd, yd = net.as_features(x), net.as_targets(y, x.shape[0])
        sw = None if sample_weight is None else bpgpu.to_backend(sample_weight, net.backend, net.dtype)
        import cupy
        idx = cupy.asarray(np.random.default_rng(5).permutation(x.shape[0]))
        eng.start_epoch()
        for k in range(steps):
            eng.step(xd, yd, idx[k * batch:(k + 1) * batch], sw)
    return eng, eng.end_epoch()


def _pair(hidden, output, cost, opt_name, dtype="float64", sizes=(6, 7, 5, 3), device="cuda:0"):
    nets = [bpgpu.MLP(list(sizes), hidden, output, cost, dtype=dtype, seed=2, device=device) for _ in range(2)]
    return nets, [OPTIMIZERS[opt_name]() for _ in range(2)]


@pytest.mark.parametrize("hidden,output,cost", COMBOS)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_engine_equals_the_generic_engine(gpu_cupy, hidden, output, cost, opt_name):
    (fast, ref), (o1, o2) = _pair(hidden, output, cost, opt_name)
    x, y = make_data([6, 7, 5, 3], output, 40, np.random.default_rng(0))
    e1, s1 = _train_steps(fast, o1, x, y, 8, generic=False, steps=4)
    e2, s2 = _train_steps(ref, o2, x, y, 8, generic=True, steps=4)
    assert type(e1).__module__ == "bpgpu.engines.cupy.step" and e2.name == "generic"
    assert max_scaled_difference(fast.weights + fast.biases, ref.weights + ref.biases) <= 1e-12
    assert s1.batches == s2.batches == 4 and s1.finite and s2.finite
    assert s1.cost_sum == pytest.approx(s2.cost_sum, rel=1e-12)
    assert s1.weight_sum == s2.weight_sum
    np.testing.assert_allclose(s1.grad_norm_sums, s2.grad_norm_sums, rtol=1e-11)
    for name in o1.state_names:  # the state lives on as views of the engine's flat buffers
        assert max_scaled_difference(o1.state[name], o2.state[name]) <= 1e-12
    assert o1.steps == o2.steps == 4


@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_gradients_and_outputs_equal_the_generic_engine(two_gpus, hidden, output, cost):
    net = bpgpu.MLP([6, 7, 5, 3], hidden, output, cost, dtype="float64", seed=4, device="cuda:1")
    x, y = make_data([6, 7, 5, 3], output, 13, np.random.default_rng(1))
    with net.backend.activate():
        xd, yd = net.as_features(x), net.as_targets(y, 13)
    fast, ref = make_engine(net), make_engine(net, generic=True)
    assert fast.name == "cupy"
    c1, w1, b1 = fast.gradients(xd, yd)
    with net.backend.activate():  # the reference engine leaves the device to its callers
        c2, w2, b2 = ref.gradients(xd, yd)
        z2, a2 = ref.outputs(xd)
    assert all(g.device.id == 1 for g in w1 + b1)
    assert float(c1) == pytest.approx(float(c2), rel=1e-12)
    assert max_scaled_difference(w1 + b1, w2 + b2) <= 1e-12
    z1, a1 = fast.outputs(xd)
    assert max_scaled_difference([z1, a1], [z2, a2]) <= 1e-12


@pytest.mark.parametrize("opt_name", ["momentum", "adam"])
def test_weighted_rows_equal_the_generic_engine(gpu_cupy, opt_name):
    (fast, ref), (o1, o2) = _pair("tanh", "softmax", "cross_entropy", opt_name)
    x, y = make_data([6, 7, 5, 3], "softmax", 40, np.random.default_rng(2))
    w = np.random.default_rng(3).uniform(0.0, 2.0, size=40)
    _, s1 = _train_steps(fast, o1, x, y, 8, generic=False, sample_weight=w)
    _, s2 = _train_steps(ref, o2, x, y, 8, generic=True, sample_weight=w)
    assert max_scaled_difference(fast.weights + fast.biases, ref.weights + ref.biases) <= 1e-12
    assert s1.weight_sum == pytest.approx(s2.weight_sum, rel=1e-12)
    assert s1.cost_sum == pytest.approx(s2.cost_sum, rel=1e-12)


def test_float32_equals_the_generic_engine_within_float32_tolerance(gpu_cupy):
    (fast, ref), (o1, o2) = _pair("relu", "softmax", "cross_entropy", "adam", dtype="float32")
    x, y = make_data([6, 7, 5, 3], "softmax", 40, np.random.default_rng(4))
    _train_steps(fast, o1, x, y, 8, generic=False)
    _train_steps(ref, o2, x, y, 8, generic=True)
    assert fast.weights[0].dtype == np.float32
    assert max_scaled_difference(fast.weights + fast.biases, ref.weights + ref.biases) <= 1e-5


# -- what a card would run: device operations, syncs and memory, counted on the double --------------------
def _ops_per_step(double, sizes, opt, batch=16):
    net = bpgpu.MLP(sizes, "relu", "softmax", "cross_entropy", dtype="float32", seed=0, device="cuda:0")
    x, y = make_data(sizes, "softmax", 2 * batch, np.random.default_rng(0))
    eng = make_engine(net, opt, StepConfig(batch_size=batch))
    xd, yd = net.as_features(x.astype(np.float32)), net.as_targets(y, 2 * batch)
    cupy = double.cupy
    idx = cupy.asarray(np.arange(2 * batch))
    eng.start_epoch()
    eng.step(xd, yd, idx[:batch])                      # the first step builds what later steps reuse
    with double.record() as rec:
        eng.step(xd, yd, idx[batch:])
    return rec


@pytest.mark.parametrize("opt_name,limit", [("momentum", 24), ("adam", 30)])
def test_w2_step_is_at_most_24_device_operations_with_momentum_and_30_with_adam(cupy_double, opt_name, limit):
    rec = _ops_per_step(cupy_double, [784, 256, 256, 10], OPTIMIZERS[opt_name]())
    assert rec.n_ops <= limit, rec.report()
    assert rec.n_ops == 23, rec.report()            # 2 gathers + 9 forward/cost/BP1 + 10 BP2-BP4 + norms + update
    assert rec.n_syncs == 0, rec.report()
    assert rec.n_allocations <= 4 and rec.bytes_allocated <= 16 * 1024, rec.report()  # no layer-sized temporaries


def test_w3_depth_step_is_at_most_30_device_operations(cupy_double):
    rec = _ops_per_step(cupy_double, [1024, 4096, 4096, 1024, 10], OPTIMIZERS["momentum"](), batch=4)
    assert rec.n_ops <= 30 and rec.n_syncs == 0, rec.report()
    assert rec.n_ops == 29, rec.report()


def _fit_record(double, n_rows, epochs=2, opt=None, batch=8, sizes=(20, 16, 16, 4)):
    net = bpgpu.MLP(list(sizes), "relu", dtype="float32", seed=0, device="cuda:0")
    x, y = make_data(list(sizes), "softmax", n_rows, np.random.default_rng(0))
    xd, yd = bpgpu.to_backend(x, net.backend, "float32"), double.cupy.asarray(y)   # data on the device first
    with double.record() as rec:
        net.fit(xd, yd, epochs=epochs, batch_size=batch, optimizer=opt or bpgpu.SGD(0.05, momentum=0.9),
                seed=1, progress=False)
    return net, rec


def test_fit_makes_no_device_to_host_sync_per_batch(cupy_double):
    """Syncs of a fit do not grow with the number of batches (0 per batch), and each extra batch costs
    exactly one engine step's operations."""
    _, short = _fit_record(cupy_double, 64)           # 8 batches per epoch
    _, long = _fit_record(cupy_double, 128)           # 16 batches per epoch
    assert long.n_syncs == short.n_syncs, long.report()
    per_batch = (long.n_ops - short.n_ops) / (2 * 8)
    assert per_batch <= 24, (per_batch, long.report())
    engine_lines = [k for k in long.syncs if "engines/cupy" in k]
    assert len(engine_lines) <= 2, long.report()      # end_epoch's one read (+ the epoch snapshot elsewhere)


def model_peak(double, sizes, opt, batch, rows, dtype="float32"):
    """(peak device bytes of a fit over its model, the parameters' bytes, the workspace bytes per batch
    row): the peak counts what fit holds besides the data, which is on the device before (the network's
    own parameter arrays at the start included, since fit re-homes them into its flat buffer)."""
    import gc

    gc.collect()
    net = bpgpu.MLP(list(sizes), "relu", dtype=dtype, seed=0, device="cuda:0")
    x, y = make_data(list(sizes), "softmax", rows, np.random.default_rng(0))
    xd, yd = bpgpu.to_backend(x, net.backend, dtype), double.cupy.asarray(y)
    start = sum(-(-int(p.nbytes) // 512) * 512 for p in net.weights + net.biases)
    with double.record() as rec:
        net.fit(xd, yd, epochs=1, batch_size=batch, optimizer=opt, seed=1, progress=False)
    params = sum(int(p.nbytes) for p in net.weights + net.biases)
    itemsize = np.dtype(dtype).itemsize
    hidden = list(sizes[1:-1])
    per_row = itemsize * (sizes[0] + 3 * sizes[-1] + sum(hidden) + max(hidden))
    return rec.peak_bytes + start, params, per_row


@pytest.mark.parametrize("opt_name,copies", [("sgd", 2), ("momentum", 3), ("adam", 4)])
def test_fit_peak_device_memory_is_the_model_state_copies_plus_the_batch_workspace(cupy_double, opt_name, copies):
    """fit's peak device memory = ``copies`` × the parameters' bytes (P, G and the optimizer state:
    2 SGD, 3 SGD-momentum, 4 Adam) + the workspace per batch row (itemsize × (n_0 + 3 n_L + Σ hidden +
    max hidden)) + the one-hot targets fit makes from labels (n_rows × n_L), within 64 KiB of small
    per-step results and 512-byte blocks. The README's GPU section quotes these numbers for W2."""
    peak, params, per_row = model_peak(cupy_double, [64, 256, 256, 10], OPTIMIZERS[opt_name](), 32, 256)
    targets = 256 * 10 * 4
    assert copies * params <= peak <= copies * params + 32 * per_row + targets + 64 * 1024, (peak, params, per_row)


def test_out_of_memory_leaves_the_parameters_at_a_step_boundary(cupy_double):
    cupy = cupy_double.cupy
    net = bpgpu.MLP([20, 16, 16, 4], "relu", dtype="float64", seed=0, device="cuda:0")
    x, y = make_data([20, 16, 16, 4], "softmax", 32, np.random.default_rng(0))
    eng = make_engine(net, bpgpu.Adam(0.01), StepConfig(batch_size=8))
    xd, yd = net.as_features(x), net.as_targets(y, 32)
    idx = cupy.asarray(np.arange(32))
    eng.start_epoch()
    eng.step(xd, yd, idx[:8])
    before = [to_host(p).copy() for p in net.weights + net.biases]
    state = [to_host(s).copy() for s in eng.optimizer.state["m"]]
    pool = cupy.get_default_memory_pool()
    pool.set_limit(size=pool.used_bytes() + 512)      # the next step's first small result does not fit
    with pytest.raises(MemoryError):
        eng.step(xd, yd, idx[8:16])
    pool.set_limit(size=0)
    for a, b in zip(before, [to_host(p) for p in net.weights + net.biases]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(state, [to_host(s) for s in eng.optimizer.state["m"]]):
        np.testing.assert_array_equal(a, b)
    assert eng.optimizer.steps == 1
    eng.step(xd, yd, idx[8:16])                       # and training goes on from there
    assert eng.optimizer.steps == 2


def test_fit_on_the_engine_equals_fit_on_numpy(two_gpus):
    x, y = make_data([8, 9, 3], "softmax", 50, np.random.default_rng(7))
    runs = []
    for device in ("cpu", "cuda:1"):
        net = bpgpu.MLP([8, 9, 3], "tanh", dtype="float64", seed=1, device=device)
        h = net.fit(x, y, epochs=3, batch_size=7, optimizer=bpgpu.Adam(0.01), seed=3, progress=False)
        runs.append((h, [to_host(p) for p in net.weights + net.biases]))
    (h1, p1), (h2, p2) = runs
    np.testing.assert_allclose(h1.cost, h2.cost, rtol=1e-12)
    np.testing.assert_allclose(np.array(h1.grad_norms), np.array(h2.grad_norms), rtol=1e-11)
    assert max_scaled_difference(p2, p1) <= 1e-12


def test_without_gradient_norms_a_step_is_one_operation_fewer(cupy_double):
    net = bpgpu.MLP([784, 256, 256, 10], "relu", dtype="float32", seed=0, device="cuda:0")
    x, y = make_data([784, 256, 256, 10], "softmax", 32, np.random.default_rng(0))
    eng = make_engine(net, bpgpu.SGD(0.1, momentum=0.9), StepConfig(batch_size=16, record_grad_norms=False))
    xd, yd = net.as_features(x.astype(np.float32)), net.as_targets(y, 32)
    idx = cupy_double.cupy.asarray(np.arange(32))
    eng.start_epoch()
    eng.step(xd, yd, idx[:16])
    with cupy_double.record() as rec:
        eng.step(xd, yd, idx[16:])
    assert rec.n_ops == 22 and rec.n_syncs == 0, rec.report()
    assert eng.end_epoch().grad_norm_sums == []


def test_divergence_on_cuda_1_names_the_step_and_keeps_the_weights_from_before_it(two_gpus):
    """fit's replay from the host snapshot (the CuPy engine checks no step on the host) finds the same
    epoch and batch as the NumPy engine, which refuses the bad step before applying it."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 3)) * 10, rng.normal(size=(40, 2)) * 10
    errors, kept = [], []
    for device in ("cpu", "cuda:1"):
        net = bpgpu.MLP([3, 8, 2], hidden="relu", output="identity", dtype="float64", seed=0, device=device)
        with pytest.raises(bpgpu.DivergenceError) as info:
            net.fit(x, y, 30, 8, optimizer=bpgpu.SGD(1e20), seed=0, progress=False)
        errors.append((info.value.epoch, info.value.batch))
        kept.append([to_host(p) for p in net.weights + net.biases])
        assert all(np.all(np.isfinite(a)) for a in kept[-1])
    assert errors[0] == errors[1]
    for a, b in zip(*kept):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_and_resume_on_cuda_1_equal_one_run(two_gpus, tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(45, 5)), rng.integers(0, 3, size=45)
    kw = dict(hidden="tanh", dtype="float64", device="cuda:1")
    whole = bpgpu.MLP([5, 8, 3], seed=0, **kw)
    h_whole = whole.fit(x, y, epochs=4, batch_size=8, optimizer=bpgpu.Adam(0.01), seed=2, progress=False)
    first = bpgpu.MLP([5, 8, 3], seed=0, **kw)
    first.fit(x, y, epochs=2, batch_size=8, optimizer=bpgpu.Adam(0.01), seed=2, progress=False,
              checkpoint=tmp_path / "ck-{epoch}.npz")
    resumed = bpgpu.MLP([5, 8, 3], seed=9, **kw)
    h = resumed.fit(x, y, epochs=4, batch_size=8, resume=tmp_path / "ck-2.npz", progress=False)
    assert resumed.backend.label == "cuda:1" and h.cost == h_whole.cost
    for a, b in zip(whole.weights + whole.biases, resumed.weights + resumed.biases):
        np.testing.assert_array_equal(to_host(a), to_host(b))


def test_out_of_memory_in_fit_is_bpgpus_error_and_the_network_stays_usable(cupy_double):
    cupy = cupy_double.cupy
    net = bpgpu.MLP([20, 64, 4], "relu", dtype="float32", seed=0, device="cuda:1")
    x, y = make_data([20, 64, 4], "softmax", 64, np.random.default_rng(0))
    before = [to_host(p).copy() for p in net.weights + net.biases]
    pool = cupy.get_default_memory_pool()
    with cupy.cuda.Device(1):
        pool.set_limit(size=pool.used_bytes(1) + 8 * 1024)      # too small for fit's flat buffers
    try:
        with pytest.raises(bpgpu.OutOfMemoryError, match="batch"):
            net.fit(x, y, epochs=1, batch_size=16, progress=False)
    finally:
        pool.set_limit(size=0)
    for a, b in zip(before, [to_host(p) for p in net.weights + net.biases]):
        np.testing.assert_array_equal(a, b)
    net.fit(x, y, epochs=1, batch_size=16, progress=False)          # and it trains once memory is there
    assert all(p.device.id == 1 for p in net.weights)


@pytest.mark.parametrize("clip", [{"clip_norm": 0.05}, {"clip_value": 0.01}, {"clip_norm": 0.05, "clip_value": 0.01}],
                         ids=["norm", "value", "both"])
@pytest.mark.parametrize("opt_name", ["momentum", "adam-decay"])
def test_gradient_clipping_equals_the_generic_engine(two_gpus, clip, opt_name):
    runs = []
    for generic in (False, True):
        net = bpgpu.MLP([6, 7, 5, 3], "relu", dtype="float64", seed=2, device="cuda:1")
        x, y = make_data([6, 7, 5, 3], "softmax", 40, np.random.default_rng(0))
        with net.backend.activate():  # the reference engine makes its accumulators on the current device
            eng = make_engine(net, OPTIMIZERS[opt_name](), StepConfig(batch_size=8, **clip), generic=generic)
            assert eng.name == ("generic" if generic else "cupy")
            xd, yd = net.as_features(x), net.as_targets(y, 40)
            idx = two_gpus.asarray(np.arange(40))
            eng.start_epoch()
            for k in range(5):
                eng.step(xd, yd, idx[8 * k: 8 * k + 8])
            runs.append((net, eng.end_epoch()))
    (fast, s1), (ref, s2) = runs
    assert max_scaled_difference(fast.weights + fast.biases, ref.weights + ref.biases) <= 1e-12
    np.testing.assert_allclose(s1.grad_norm_sums, s2.grad_norm_sums, rtol=1e-11)   # norms before clipping


def test_inference_and_gradients_hold_no_device_memory_after_the_call(cupy_double):
    import gc

    net = bpgpu.MLP([20, 64, 4], "relu", dtype="float32", seed=0, device="cuda:0")
    x, y = make_data([20, 64, 4], "softmax", 500, np.random.default_rng(0))
    xd = bpgpu.to_backend(x, net.backend, "float32")
    gc.collect()
    held = cupy_double.live_bytes()
    for _ in range(2):
        net.predict(xd)
        net.evaluate(xd, y)
        net.backprop(xd, y)
    gc.collect()
    assert cupy_double.live_bytes() == held          # no 500-row workspace kept by the cached engine
