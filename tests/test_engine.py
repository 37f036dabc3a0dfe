"""The step engines (bpgpu/engines): the NumPy engine equals the generic reference on every
hidden × output × cost combination and every optimizer; its update is bit-identical to
Optimizer.step; it allocates nothing gradient-sized per step; sample weights; one all-reduce call."""

from __future__ import annotations

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bpgpu
from bpgpu import to_host
from bpgpu.engines import StepConfig, make_engine
from bpgpu.engines.generic.step import Engine as GenericEngine
from bpgpu.engines.numpy.step import Engine as NumpyEngine
from bpgpu.engines.numpy.step import Layout
from bpgpu.math import backprop as bp
from helpers import COMBOS, make_data, ThreadComm, thread_ranks

TOL = {"float32": dict(rtol=2e-4, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-13)}
SIZES = [7, 6, 5, 4]

OPTIMIZERS = {
    "sgd": lambda: bpgpu.SGD(0.1),
    "momentum": lambda: bpgpu.SGD(0.1, momentum=0.9),
    "nesterov": lambda: bpgpu.SGD(0.05, momentum=0.8, nesterov=True),
    "sgd-decay": lambda: bpgpu.SGD(0.1, momentum=0.9, weight_decay=1e-2),
    "adam": lambda: bpgpu.Adam(0.01),
    "adam-decay": lambda: bpgpu.Adam(0.01, weight_decay=1e-2),
}


def _case(hidden, output, cost, dtype, scale=1.0, seed=0, m=9):
    net = bpgpu.MLP(SIZES, hidden=hidden, output=output, cost=cost, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x, y = make_data(SIZES, output, m, rng, labels=False)
    return net, net.as_features(scale * x), net.as_targets(y, m)


def _host(net):
    return [np.array(to_host(a)) for a in net.weights + net.biases]


def _assert_close(got, want, dtype):
    np.testing.assert_allclose(float(got[0]), float(want[0]), **TOL[dtype])
    for g, w in zip(got[1] + got[2], want[1] + want[2]):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL[dtype])


# -- gradients -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,output,cost", COMBOS, ids=lambda v: str(v))
def test_numpy_engine_gradients_equal_the_reference(hidden, output, cost, dtype):
    net, x, y = _case(hidden, output, cost, dtype)
    reference = bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y)
    _assert_close(NumpyEngine(net).gradients(x, y), reference, dtype)
    _assert_close(GenericEngine(net).gradients(x, y), reference, dtype)
    z, a = NumpyEngine(net).outputs(x)
    z_ref, a_ref, _ = bp.feedforward(net.weights, net.biases, net.hidden, net.objective.output, x)
    np.testing.assert_allclose(a, a_ref, **TOL[dtype])
    np.testing.assert_allclose(z, z_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,output,cost", [("sigmoid", "sigmoid", "quadratic"), ("relu", "softmax", "cross_entropy"),
                                                ("tanh", "sigmoid", "cross_entropy"), ("identity", "softmax", "quadratic")])
def test_numpy_engine_equals_the_reference_when_saturated(hidden, output, cost, dtype):
    """Inputs so large that sigmoids saturate and the exp clip is hit: same values, finite, no warnings."""
    net, x, y = _case(hidden, output, cost, dtype, scale=300.0, seed=1)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is σ's true value
        got = NumpyEngine(net).gradients(x, y)
    _assert_close(got, bp.backprop_generic(net.weights, net.biases, net.hidden, net.objective, x, y), dtype)
    assert np.isfinite(float(got[0]))


def test_gradients_are_new_arrays_and_inputs_are_left_alone():
    net, x, y = _case("sigmoid", "softmax", "cross_entropy", "float32")
    before = [a.copy() for a in (x, y, *net.weights, *net.biases)]
    engine = NumpyEngine(net)
    first = engine.gradients(x, y)
    kept = [g.copy() for g in first[1] + first[2]]
    engine.gradients(2 * x, y)
    assert all(np.array_equal(g, k) for g, k in zip(first[1] + first[2], kept))
    for b, a in zip(before, (x, y, *net.weights, *net.biases)):
        np.testing.assert_array_equal(a, b)


def test_each_backend_gets_its_engine():
    assert type(bpgpu.MLP([3, 2]).engine()) is NumpyEngine
    strict = pytest.importorskip("array_api_strict")
    assert type(bpgpu.MLP([3, 2], xp=strict, device=strict.Device("device1")).engine()) is GenericEngine
    assert type(make_engine(bpgpu.MLP([3, 2]), generic=True)) is GenericEngine


# -- training: the NumPy engine's fit equals the reference engine's fit --------------------------------

def _fit(net, x, y, optimizer, monkeypatch=None, generic=False, **kw):
    if generic:
        import bpgpu.training.loop as loop

        monkeypatch.setattr(loop, "make_engine", lambda n, o, c: make_engine(n, o, c, generic=True))
    history = net.fit(x, y, epochs=3, batch_size=4, optimizer=optimizer, seed=2, progress=False, **kw)
    if generic:
        monkeypatch.undo()
    return history


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("hidden,output,cost", COMBOS, ids=lambda v: str(v))
def test_numpy_fit_equals_generic_fit_for_every_combination_and_optimizer(monkeypatch, hidden, output, cost, opt):
    net, x, y = _case(hidden, output, cost, "float64", m=10)
    other = net.copy()
    h_fast = _fit(net, x, y, OPTIMIZERS[opt]())
    h_ref = _fit(other, x, y, OPTIMIZERS[opt](), monkeypatch, generic=True)
    for a, b in zip(_host(net), _host(other)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_fast.cost, h_ref.cost, rtol=1e-10)
    np.testing.assert_allclose(np.array(h_fast.grad_norms), np.array(h_ref.grad_norms), rtol=1e-9)


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_the_flat_update_is_bit_identical_to_optimizer_step(opt):
    """Same gradients in, same bits out: Optimizer.update_flat over one flat buffer (in chunks) and
    Optimizer.step over the per-layer arrays, for several steps and both dtypes."""
    import bpgpu.engines.numpy.step as numpy_step

    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(4)
        w_shapes, b_shapes = [(5, 4), (3, 5)], [(5,), (3,)]
        layout = Layout(w_shapes, b_shapes)
        params = [rng.normal(size=s).astype(dtype) for s in w_shapes + b_shapes]
        P = np.zeros(layout.size, dtype)
        views = layout.views(P)
        for v, p in zip(views, params):
            v[...] = p
        flat_opt, list_opt = OPTIMIZERS[opt](), OPTIMIZERS[opt]()
        state = {name: np.zeros(layout.size, dtype) for name in flat_opt.state_names}
        scratch = np.empty(7, dtype)  # small chunks: the update is split across layer boundaries
        weights, biases = [p.copy() for p in params[:2]], [p.copy() for p in params[2:]]
        for _ in range(4):
            grads = [rng.normal(size=s).astype(dtype) for s in w_shapes + b_shapes]
            G = np.zeros(layout.size, dtype)
            for v, g in zip(layout.views(G), grads):
                v[...] = g
            flat_opt.begin_step()
            for a, b in numpy_step._ranges(0, layout.weights_end, 7):
                flat_opt.decay_flat(np, P[a:b], G[a:b], scratch[:b - a])
            for a, b in numpy_step._ranges(0, layout.size, 7):
                flat_opt.update_flat(np, P[a:b], G[a:b], tuple(s[a:b] for s in state.values()), scratch[:b - a])
            weights, biases = list_opt.step(weights, biases, grads[:2], grads[2:])
        for got, want in zip(views, weights + biases):
            np.testing.assert_array_equal(got, want)
        assert flat_opt.steps == list_opt.steps == 4


def test_the_engine_adopts_parameters_and_state_as_views_of_flat_buffers():
    net, x, y = _case("relu", "softmax", "cross_entropy", "float32")
    opt = bpgpu.Adam(0.01)
    engine = make_engine(net, opt, StepConfig(batch_size=4))
    assert all(w.base is engine.P for w in net.weights + net.biases)
    assert all(s.base is engine.S[name] for name in ("m", "v") for s in opt.state[name])
    assert net.weights[-1].ctypes.data < net.biases[0].ctypes.data  # all weights first, then the biases


def test_a_step_allocates_nothing_gradient_sized():
    """Only NumPy's fixed-size iteration buffer (getbufsize() elements, for broadcasting the bias) and
    small Python objects are allocated inside a step; nothing that grows with the layers."""
    net = bpgpu.MLP([128, 256, 192, 64], hidden="relu", dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    x = net.as_features(rng.normal(size=(200, 128)))
    y = net.as_targets(rng.integers(0, 64, 200), 200)
    for opt in (bpgpu.SGD(0.1, momentum=0.9, weight_decay=1e-3), bpgpu.Adam(1e-3)):
        engine = make_engine(net, opt, StepConfig(batch_size=32))
        idx = np.arange(200)
        engine.start_epoch()
        buffers = [engine.P, engine.G, *engine.S.values()]
        engine.step(x, y, idx[:32])  # warm-up (caches of views)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for start in range(32, 192, 32):
            engine.step(x, y, idx[start:start + 32])
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        bound = np.getbufsize() * 8 + 8192
        assert peak < bound < min(w.nbytes for w in net.weights), (peak, bound)
        assert all(a is b for a, b in zip(buffers, [engine.P, engine.G, *engine.S.values()]))
        assert all(w.base is engine.P for w in net.weights)


# -- other backends run the generic engine -------------------------------------------------------------

@pytest.mark.parametrize("spec", [("array_api_strict", "device1"), ("array_api_strict", "device2"), ("torch", "cpu")],
                         ids=["strict-device1", "strict-device2", "torch"])
@pytest.mark.parametrize("hidden,output,cost", [("sigmoid", "sigmoid", "quadratic"), ("relu", "softmax", "cross_entropy"),
                                                ("tanh", "identity", "quadratic")])
def test_generic_engine_on_other_libraries_equals_the_numpy_engine(spec, hidden, output, cost):
    from conftest import make_backend_kwargs

    net, x, y = _case(hidden, output, cost, "float64", m=10)
    other = bpgpu.MLP(SIZES, hidden=hidden, output=output, cost=cost, dtype="float64", seed=0, **make_backend_kwargs(spec))
    assert type(other.engine()) is GenericEngine
    kw = dict(epochs=2, batch_size=4, optimizer=None, seed=3, progress=False)
    h1 = net.fit(x, y, **{**kw, "optimizer": bpgpu.SGD(0.1, momentum=0.9, nesterov=True)})
    h2 = other.fit(to_host(x), to_host(y), **{**kw, "optimizer": bpgpu.SGD(0.1, momentum=0.9, nesterov=True)})
    for a, b in zip(_host(net), _host(other)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h1.cost, h2.cost, rtol=1e-10)


def test_generic_engine_update_is_all_layers_or_none(monkeypatch):
    """An allocation failure in the middle of the update leaves parameters and state at the step boundary."""
    strict = pytest.importorskip("array_api_strict")
    net = bpgpu.MLP([4, 5, 3], xp=strict, device=strict.Device("device1"), dtype="float64", seed=0)
    opt = bpgpu.SGD(0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x, y = net.as_features(rng.normal(size=(8, 4))), net.as_targets(rng.integers(0, 3, 8), 8)
    engine = make_engine(net, opt, StepConfig(batch_size=8))
    idx = strict.asarray(np.arange(8), device=strict.Device("device1"))
    engine.step(x, y, idx)
    before = engine.snapshot()
    calls = []
    real = type(opt)._update

    def failing(self, i, p, g, inplace):
        calls.append(i)
        if len(calls) == 3:
            raise MemoryError("out of memory (simulated)")
        return real(self, i, p, g, inplace)

    monkeypatch.setattr(type(opt), "_update", failing)
    with pytest.raises(MemoryError):
        engine.step(x, y, idx)
    after = engine.snapshot()
    for a, b in zip(before.weights + before.biases + before.state["velocity"],
                    after.weights + after.biases + after.state["velocity"]):
        np.testing.assert_array_equal(a, b)
    assert after.steps == before.steps


# -- sample weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("generic", [False, True], ids=["numpy", "generic"])
@pytest.mark.parametrize("hidden,output,cost", [("sigmoid", "sigmoid", "quadratic"), ("relu", "softmax", "cross_entropy"),
                                                ("tanh", "sigmoid", "cross_entropy"), ("identity", "softmax", "quadratic"),
                                                ("relu", "identity", "quadratic")])
def test_integer_sample_weights_equal_repeated_rows(hidden, output, cost, generic):
    net, x, y = _case(hidden, output, cost, "float64", m=8)
    w = np.array([1, 0, 3, 2, 1, 1, 0, 2], dtype=np.float64)
    rows = np.repeat(np.arange(8), w.astype(int))
    engine = make_engine(net, generic=generic)
    got = engine.gradients(x, y, w)
    want = engine.gradients(x[rows], y[rows])
    _assert_close(got, want, "float64")
    # training on one batch: the weighted run and the repeated-rows run end with the same weights
    a, b = net.copy(), net.copy()
    a.fit(x, y, epochs=3, batch_size=8, shuffle=False, progress=False, optimizer=bpgpu.SGD(0.2, momentum=0.5), sample_weight=w)
    b.fit(x[rows], y[rows], epochs=3, batch_size=len(rows), shuffle=False, progress=False,
          optimizer=bpgpu.SGD(0.2, momentum=0.5))
    for p, q in zip(_host(a), _host(b)):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)


def test_sample_weighted_gradients_match_finite_differences():
    net, x, y = _case("tanh", "softmax", "cross_entropy", "float64", m=6)
    w = np.array([0.5, 2.0, 0.0, 1.5, 3.0, 0.25])
    cost, grad_w, grad_b = net.backprop(x, y, sample_weight=w)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for layer, grads, params in ((0, grad_w, net.weights), (2, grad_w, net.weights), (1, grad_b, net.biases)):
        p = params[layer]
        for flat in rng.choice(p.size, 4, replace=False):
            i = np.unravel_index(flat, p.shape)
            old = p[i]
            p[i] = old + eps
            plus = net.backprop(x, y, sample_weight=w)[0]
            p[i] = old - eps
            minus = net.backprop(x, y, sample_weight=w)[0]
            p[i] = old
            assert abs((plus - minus) / (2 * eps) - grads[layer][i]) < 1e-7 * max(1.0, abs(grads[layer][i]))
    per_row = [net.cost(x[i:i + 1], y[i:i + 1]) for i in range(6)]
    assert cost == pytest.approx(float(np.dot(w, per_row) / w.sum()), rel=1e-12)


def test_sample_weight_history_is_the_weighted_mean_and_bad_weights_are_refused():
    net, x, y = _case("sigmoid", "softmax", "cross_entropy", "float64", m=8)
    w = np.array([1.0, 2.0, 0.5, 0.5, 1.0, 3.0, 1.0, 1.0])
    probe = net.copy()
    h = probe.fit(x, y, epochs=1, batch_size=8, shuffle=False, progress=False, optimizer=bpgpu.SGD(1e-12), sample_weight=w)
    per_row = np.array([net.cost(x[i:i + 1], y[i:i + 1]) for i in range(8)])
    assert h.cost[0] == pytest.approx(float(np.dot(w, per_row) / w.sum()), rel=1e-9)
    for bad, match in ((np.ones(7), "one weight per row"), (-w, "negative"), (w * np.nan, "NaN"),
                       (np.zeros(8), "all zeros")):
        with pytest.raises((bpgpu.errors.DataError, bpgpu.errors.ShapeError), match=match):
            net.copy().fit(x, y, epochs=1, batch_size=4, progress=False, sample_weight=bad)


# -- data parallelism: one all-reduce call on one flat buffer per step ---------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_data_parallel_step_is_one_allreduce_of_one_flat_buffer(weighted):
    net, x, y = _case("relu", "softmax", "cross_entropy", "float64", m=22)
    w = np.linspace(0.5, 2.0, 22) if weighted else None
    single = net.copy()
    single.fit(x, y, epochs=2, batch_size=8, seed=1, progress=False, sample_weight=w)
    size = 3
    shared = thread_ranks(size, record_calls=True)

    def rank_run(rank):
        mine = net.copy()
        mine.fit(x, y, epochs=2, batch_size=8, seed=1, progress=False, sample_weight=w,
                 comm=ThreadComm(rank, shared))
        return _host(mine)

    with ThreadPoolExecutor(size) as pool:
        results = list(pool.map(rank_run, range(size)))
    for params in results:
        for a, b in zip(params, _host(single)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    n_params = sum(a.size for a in _host(net))
    for calls in shared["calls"]:
        assert len(calls) == 2 * 3  # 2 epochs × 3 batches: one call per step
        assert all(len(c) == 1 and len(c[0]) == 1 and c[0][0] >= n_params + 1 for c in calls)


def test_a_later_fit_reuses_the_networks_buffers_and_equals_a_fresh_network():
    net, x, y = _case("relu", "softmax", "cross_entropy", "float64", m=12)
    twin = net.copy()
    net.fit(x, y, epochs=1, batch_size=4, seed=0, progress=False)
    first = net.weights[0].base
    net.fit(x, y, epochs=1, batch_size=4, seed=1, progress=False)
    assert net.weights[0].base is first  # same flat buffer, no new allocation
    twin.fit(x, y, epochs=1, batch_size=4, seed=0, progress=False)
    assert twin.weights[0].base is not first  # a copy owns its own buffers
    twin.set_parameters(*twin.get_parameters())  # (set_parameters rebinds: the next fit copies them in)
    twin.fit(x, y, epochs=1, batch_size=4, seed=1, progress=False)
    for a, b in zip(_host(net), _host(twin)):
        np.testing.assert_array_equal(a, b)


def test_switching_optimizers_keeps_each_optimizers_own_state():
    net, x, y = _case("tanh", "sigmoid", "quadratic", "float64", m=12)
    first, second = bpgpu.SGD(0.1, momentum=0.9), bpgpu.SGD(0.05, momentum=0.5)
    net.fit(x, y, epochs=1, batch_size=4, optimizer=first, seed=0, progress=False)
    kept = [v.copy() for v in first.state["velocity"]]
    net.fit(x, y, epochs=1, batch_size=4, optimizer=second, seed=0, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(first.state["velocity"], kept))
    assert not all(np.array_equal(a, b) for a, b in zip(second.state["velocity"], kept))
    # and the first optimizer continues from its own velocities, as a fresh copy of the run would
    ref_net, ref_opt = net.copy(), bpgpu.SGD(0.1, momentum=0.9)
    ref_opt.state, ref_opt.steps = {"velocity": [v.copy() for v in kept]}, first.steps
    net.fit(x, y, epochs=1, batch_size=4, optimizer=first, seed=2, progress=False)
    ref_net.fit(x, y, epochs=1, batch_size=4, optimizer=ref_opt, seed=2, progress=False)
    for a, b in zip(_host(net), _host(ref_net)):
        np.testing.assert_array_equal(a, b)
