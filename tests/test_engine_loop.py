"""The loop around the engine: real SIGINTs stop fit at a step boundary (never a half-applied
update), an interrupted run resumes to the very weights of an uninterrupted one, the epoch's cost sum
cannot overflow a float32 network, and a failing update leaves the step undone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import bpgpu
from bpgpu.engines import StepConfig, make_engine

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

# The child trains 20 times; the parent sends one real SIGINT into each fit. After each interrupt the
# child replays the same steps on a fresh engine and compares parameters and velocities bit for bit:
# "ok" when the interrupted state is exactly the state after the reported step, "half" otherwise.
CHILD = r"""
import sys, numpy as np, bpgpu
from bpgpu.backend.random import permutation, shuffle_rng
from bpgpu.engines import StepConfig, make_engine
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 12)); y = (x[:, 0] > 0).astype(np.int64)
for trial in range(int(sys.argv[1])):
    net = bpgpu.MLP([12, 48, 32, 2], dtype="float64", seed=trial)
    opt = bpgpu.SGD(0.01, momentum=0.9)
    print("ready", flush=True)
    try:
        net.fit(x, y, 10**6, 4, optimizer=opt, seed=trial, progress=False)
        print("finished", flush=True)
        continue
    except bpgpu.TrainingInterrupted as exc:
        epoch, batch = exc.epoch, exc.batch
    ref = bpgpu.MLP([12, 48, 32, 2], dtype="float64", seed=trial)
    ref_opt = bpgpu.SGD(0.01, momentum=0.9)
    engine = make_engine(ref, ref_opt, StepConfig(batch_size=4))
    X, Y, order = ref.as_features(x), ref.as_targets(y, 2000), shuffle_rng(trial)
    for e in range(epoch):
        idx = permutation(order, 2000)
        for b in range(batch if e == epoch - 1 else 500):
            engine.step(X, Y, idx[4 * b: 4 * b + 4])
    same = all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases + opt.state["velocity"],
                                                    ref.weights + ref.biases + ref_opt.state["velocity"]))
    print("ok" if same and opt.steps == ref_opt.steps else "half", epoch, batch, flush=True)
"""


def test_twenty_real_sigints_never_leave_a_half_applied_update():
    trials = 20
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "BPGPU_DEVICE": "cpu"}
    delays = np.random.default_rng(1).uniform(0.05, 0.25, trials)
    results = []
    with subprocess.Popen([sys.executable, "-c", CHILD, str(trials)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            for delay in delays:
                line = proc.stdout.readline().strip()
                assert line == "ready", (line, proc.stderr.read() if not line else "")
                threading.Event().wait(delay)
                proc.send_signal(signal.SIGINT)
                results.append(proc.stdout.readline().split())
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        errors = proc.stderr.read()
    assert proc.returncode == 0, errors
    assert len(results) == trials
    half = [r for r in results if r[0] != "ok"]
    assert half == [], half  # every interrupted state is exactly the state after the step it names


def _data(m=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 6))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _host(net):
    w, b = net.get_parameters()
    return w + b


@pytest.mark.parametrize("opt", [lambda: bpgpu.SGD(0.05, momentum=0.9), lambda: bpgpu.Adam(0.01)], ids=["sgd-m", "adam"])
def test_an_interrupt_mid_epoch_writes_a_checkpoint_that_resumes_bit_identically(tmp_path, opt):
    x, y = _data()
    kw = dict(batch_size=2, seed=3, progress=False)
    whole = bpgpu.MLP([6, 16, 2], dtype="float64", seed=0)
    h_whole = whole.fit(x, y, 40, optimizer=opt(), **kw)

    net = bpgpu.MLP([6, 16, 2], dtype="float64", seed=0)
    timer = threading.Timer(0.15, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(bpgpu.TrainingInterrupted) as info:
        net.fit(x, y, 40, optimizer=opt(), checkpoint=tmp_path / "ck-{epoch}.npz", **kw)
    timer.join()
    err = info.value
    assert isinstance(err, KeyboardInterrupt) and err.signal == "SIGINT"
    assert f"epoch {err.epoch}, after batch {err.batch} of 150" in str(err) and err.checkpoint in str(err)
    assert err.checkpoint.endswith(f"ck-{err.epoch}.npz") and os.path.exists(err.checkpoint)
    resumed = bpgpu.MLP([6, 16, 2], dtype="float64", seed=9)
    h_resumed = resumed.fit(x, y, 40, optimizer=None, resume=err.checkpoint, **kw)
    for a, b in zip(_host(whole), _host(resumed)):
        np.testing.assert_array_equal(a, b)
    assert h_resumed.cost == h_whole.cost and h_resumed.grad_norms == h_whole.grad_norms
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put the handler back


def test_an_interrupt_without_a_checkpoint_says_how_to_get_one():
    x, y = _data()
    net = bpgpu.MLP([6, 16, 2], dtype="float64", seed=0)
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(bpgpu.TrainingInterrupted, match="SIGTERM.*checkpoint=") as info:
        net.fit(x, y, 10**4, batch_size=2, progress=False)
    timer.join()
    assert info.value.checkpoint is None and info.value.batch >= 1
    assert all(np.all(np.isfinite(a)) for a in _host(net))


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_the_epoch_cost_sum_cannot_overflow_float32(backend):
    """Every batch's cost is finite in float32 (~1e36) but their sum over the epoch is not: fit's
    float64 accumulators keep the history finite (it used to report a divergence)."""
    kw = {}
    if backend == "strict":
        strict = pytest.importorskip("array_api_strict")
        kw = dict(xp=strict, device=strict.Device("device1"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = np.full((400, 1), 1e18)
    net = bpgpu.MLP([3, 1], output="identity", dtype="float32", seed=0, **kw)
    history = net.fit(x, y, 1, batch_size=4, optimizer=bpgpu.SGD(1e-40), shuffle=False, progress=False)
    assert np.isfinite(history.cost[0]) and history.cost[0] == pytest.approx(0.5e36, rel=1e-3)


def test_a_failing_update_of_an_optimizer_without_a_flat_update_is_undone():
    """The NumPy engine runs an optimizer it has no flat update for through Optimizer.step on new
    arrays, copied in only once all exist: a failure half-way leaves parameters and state intact."""

    class Flaky(bpgpu.SGD):
        fail_at = None

        def _update(self, i, p, g, inplace):
            if i == self.fail_at:
                raise MemoryError("out of memory (simulated)")
            return super()._update(i, p, g, inplace)

    Flaky.update_flat = bpgpu.training.Optimizer.update_flat  # no flat update: the engine takes Optimizer.step
    x, y = _data(40)
    net = bpgpu.MLP([6, 5, 4, 2], dtype="float64", seed=0)
    opt = Flaky(0.1, momentum=0.9)
    engine = make_engine(net, opt, StepConfig(batch_size=8))
    X, Y = net.as_features(x), net.as_targets(y, 40)
    idx = np.arange(40)
    engine.step(X, Y, idx[:8])
    before = [a.copy() for a in net.weights + net.biases + opt.state["velocity"]]
    opt.fail_at = 4
    with pytest.raises(MemoryError):
        engine.step(X, Y, idx[8:16])
    after = net.weights + net.biases + opt.state["velocity"]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)) and opt.steps == 1
    assert all(w.base is engine.P for w in net.weights)
    opt.fail_at = None
    engine.step(X, Y, idx[8:16])  # and the engine goes on, its arrays still the network's
    assert opt.steps == 2 and not np.array_equal(before[0], net.weights[0])
