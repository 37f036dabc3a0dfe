"""Schedules of issue 11 against their oracles: torch's LR schedulers (LambdaLR, SequentialLR of
LinearLR + CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau) and scikit-learn's own SGD learning-rate
rules ('invscaling', 'adaptive'), read off a real MLPClassifier fit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bpgpu import schedules
from bpgpu.errors import ConfigError
from bpgpu.training.history import History


def _torch_lrs(torch, make_scheduler, lr, epochs):
    """The lr torch's optimizer uses in each of ``epochs`` epochs (scheduler stepped once per epoch)."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    sched = make_scheduler(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter
        for _ in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return np.array(out)


def _ours(schedule, epochs):
    return np.array([schedule(e) for e in range(epochs)])


def _rel(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b)))


# -- invscaling ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("power_t,n", [(0.5, 1), (0.25, 1), (0.5, 150), (1.0, 7)])
def test_invscaling_equals_torch_lambda_lr(power_t, n):
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    expected = _torch_lrs(torch, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e * n + 1) ** power_t),
                          0.3, 30)
    assert _rel(_ours(schedules.invscaling(0.3, power_t, n), 30), expected) < 1e-14


def _sklearn_epoch_lrs(monkeypatch, **params):
    """Fit scikit-learn's MLPClassifier with one batch per epoch and record the η of each epoch."""
    pytest.importorskip("sklearn", reason="scikit-learn is the oracle: pip install scikit-learn")
    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    seen = []
    original = SGDOptimizer.update_params

    def spy(self, params_, grads):
        seen.append(self.learning_rate)
        return original(self, params_, grads)

    monkeypatch.setattr(SGDOptimizer, "update_params", spy)
    x, y = load_iris(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    train = len(x) - (round(params.get("validation_fraction", 0) * len(x)) if params.get("early_stopping") else 0)
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", batch_size=train, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    assert len(seen) == clf.n_iter_  # one update per epoch
    return clf, np.array(seen), len(x)


def test_invscaling_equals_scikit_learn(monkeypatch):
    clf, lrs, n = _sklearn_epoch_lrs(monkeypatch, learning_rate="invscaling", learning_rate_init=0.2, power_t=0.4,
                                     max_iter=25, momentum=0.0)
    ours = _ours(schedules.invscaling(0.2, 0.4, samples_per_epoch=n), len(lrs))
    assert _rel(ours, lrs) < 1e-14


# -- cosine with linear warm-up ------------------------------------------------------------------------

@pytest.mark.parametrize("epochs,warmup,min_lr", [(20, 0, 0.0), (20, 5, 0.0), (31, 3, 1e-3), (8, 7, 0.01)])
def test_warmup_cosine_equals_torch_linear_then_cosine(epochs, warmup, min_lr):
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    lrs = torch.optim.lr_scheduler

    def make(opt):
        cosine = lrs.CosineAnnealingLR(opt, T_max=epochs - warmup, eta_min=min_lr)
        if warmup == 0:
            return cosine
        linear = lrs.LinearLR(opt, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup)
        return lrs.SequentialLR(opt, [linear, cosine], milestones=[warmup])

    expected = _torch_lrs(torch, make, 0.1, epochs)
    ours = _ours(schedules.warmup_cosine(0.1, epochs, warmup, min_lr), epochs)
    assert _rel(ours, expected) < 1e-12  # torch's CosineAnnealingLR is a recursion: rounding only
    assert ours[warmup] == pytest.approx(0.1) and all(np.diff(ours[warmup:]) < 0)
    assert schedules.warmup_cosine(0.1, epochs, warmup, min_lr)(epochs + 5) == ours[-1]  # stays after the end


# -- one-cycle ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("epochs,pct,anneal,three,div,final", [
    (20, 0.3, "cos", False, 25.0, 1e4), (37, 0.25, "linear", False, 10.0, 100.0), (30, 0.3, "cos", True, 25.0, 1e4),
    (41, 0.2, "linear", True, 5.0, 1e3), (5, 0.5, "cos", False, 25.0, 1e4),
])
def test_one_cycle_equals_torch(epochs, pct, anneal, three, div, final):
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    expected = _torch_lrs(torch, lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.5, total_steps=epochs, pct_start=pct, anneal_strategy=anneal, three_phase=three,
        div_factor=div, final_div_factor=final, cycle_momentum=False), 0.5, epochs)
    ours = _ours(schedules.one_cycle(0.5, epochs, pct, div, final, anneal, three), epochs)
    assert _rel(ours, expected) < 1e-14


def test_one_cycle_zero_length_phase_and_end():
    s = schedules.one_cycle(1.0, 10, pct_start=0.1)  # phase 1 ends at step 0: torch divides by zero here
    assert s(0) == 1.0 and s(9) == pytest.approx(1.0 / 25 / 1e4) and s(50) == s(9)
    assert all(np.diff(_ours(s, 10)) < 0)


# -- ReduceLROnPlateau / scikit-learn's 'adaptive' ------------------------------------------------------

def _history(values, column="cost"):
    return {column: list(values)}


def _torch_plateau(torch, values, lr, patience, factor, tol, mode="min"):
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=factor, patience=patience,
                                                       threshold=tol, threshold_mode="abs", min_lr=0.0, eps=0.0)
    out = [opt.param_groups[0]["lr"]]
    for v in values:
        opt.step()
        sched.step(v)
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


@pytest.mark.parametrize("seed,patience,mode", [(0, 2, "min"), (1, 0, "min"), (2, 3, "max"), (3, 1, "max")])
def test_plateau_equals_torch_reduce_lr_on_plateau(seed, patience, mode):
    """Sequences where every value either beats the best by more than tol or is worse than the best:
    there torch's and scikit-learn's rules agree."""
    torch = pytest.importorskip("torch", reason="torch is the oracle: pip install torch==2.13.0")
    rng = np.random.default_rng(seed)
    tol, values, best = 1e-3, [], math.inf
    sign = 1.0 if mode == "min" else -1.0
    for _ in range(80):
        v = best - rng.uniform(2e-3, 0.1) if (best == math.inf or rng.random() < 0.35) else best + rng.uniform(0, 0.2)
        v = 1.0 if v == math.inf or v == -math.inf else v
        best = min(best, v)
        values.append(sign * v)
    monitor = "cost" if mode == "min" else "val_accuracy"
    expected = _torch_plateau(torch, values, 0.1, patience, 0.2, tol, mode)
    s = schedules.plateau(0.1, patience=patience, tol=tol, monitor=monitor, stop_lr=0.0)
    s.observe(_history(values, monitor))
    ours = _ours(s, len(values) + 1)
    assert len(set(expected)) > 3  # several reductions happened
    assert _rel(ours, expected) < 1e-14


def test_plateau_follows_scikit_learn_where_torch_differs():
    """A value better than the best by less than tol: scikit-learn lowers the best (torch does not)."""
    s = schedules.plateau(1.0, patience=1, tol=0.1, stop_lr=0.0)
    s.observe(_history([1.0, 0.95, 0.9, 0.85]))  # each 0.05 better: never an improvement by tol
    assert [s(e) for e in range(5)] == [1.0, 1.0, 1.0, 0.2, 0.2]
    s.observe(_history([1.0, 0.95, 0.96, 0.899]))  # 0.899 < best(0.95) − tol counts, under torch's best 1.0 too
    assert [s(e) for e in range(5)] == [1.0, 1.0, 1.0, 0.2, 0.2]


@pytest.mark.parametrize("lr0,tol,patience", [(0.5, 1e-2, 1), (1e-5, 1e-1, 1), (0.1, 5e-3, 2)])
def test_plateau_equals_scikit_learn_adaptive(monkeypatch, lr0, tol, patience):
    """scikit-learn's loss_curve_ fed to the plateau schedule gives scikit-learn's η in every epoch, and
    the run stops where scikit-learn's does ("Learning rate too small")."""
    clf, lrs, _ = _sklearn_epoch_lrs(monkeypatch, learning_rate="adaptive", learning_rate_init=lr0, tol=tol,
                                     n_iter_no_change=patience, max_iter=60, momentum=0.9)
    s = schedules.plateau(lr0, patience=patience, tol=tol)
    s.observe(_history(clf.loss_curve_))
    ours = _ours(s, len(lrs))
    assert len(set(lrs)) > 1  # scikit-learn did reduce η
    assert _rel(ours, lrs) < 1e-14
    assert s.should_stop() == (clf.n_iter_ < 60)
    for k in range(1, len(lrs)):  # never asks to stop before scikit-learn's last epoch
        s.observe(_history(clf.loss_curve_[:k]))
        assert not s.should_stop()


def test_plateau_monitors_validation_score_like_scikit_learn_early_stopping(monkeypatch):
    clf, lrs, _ = _sklearn_epoch_lrs(monkeypatch, learning_rate="adaptive", learning_rate_init=0.05, tol=1e-2,
                                     n_iter_no_change=1, max_iter=60, early_stopping=True, validation_fraction=0.2)
    s = schedules.plateau(0.05, patience=1, tol=1e-2, monitor="val_accuracy")
    s.observe(_history(clf.validation_scores_, "val_accuracy"))
    assert _rel(_ours(s, len(lrs)), lrs) < 1e-14


def test_plateau_needs_the_history_it_reads():
    s = schedules.plateau(0.1)
    assert s(0) == 0.1  # nothing to read yet
    with pytest.raises(ConfigError, match="observe"):
        s(3)
    h = History()
    h.append(epoch=1, cost=0.5, val_cost=None)
    with pytest.raises(ConfigError, match="validation_data"):
        schedules.plateau(0.1, monitor="val_cost").observe(h)
    s.observe(h)
    assert s(1) == 0.1


# -- configs and bad settings --------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [
    schedules.invscaling(0.1, 0.3, 10), schedules.warmup_cosine(0.1, 12, 2, 1e-4),
    schedules.one_cycle(0.2, 15, 0.2, anneal="linear", three_phase=True), schedules.plateau(0.1, 3, 0.5, 1e-3, "val_cost"),
])
def test_config_round_trip(schedule):
    again = schedules.from_config(schedule.config())
    assert type(again) is type(schedule) and again.config() == schedule.config()
    if isinstance(schedule, schedules.ReduceOnPlateau):
        values = _history([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5], "val_cost")
        schedule.observe(values)
        again.observe(values)
    assert [again(e) for e in range(11)] == [schedule(e) for e in range(11)]


@pytest.mark.parametrize("make,match", [
    (lambda: schedules.warmup_cosine(0.1, 10, warmup=10), "warmup"),
    (lambda: schedules.warmup_cosine(0.1, 10, min_lr=0.2), "min_lr"),
    (lambda: schedules.warmup_cosine(0.1, 0), "epochs"),
    (lambda: schedules.one_cycle(0.1, 10, pct_start=1.5), "pct_start"),
    (lambda: schedules.one_cycle(0.1, 10, anneal="exp"), "anneal"),
    (lambda: schedules.plateau(0.1, factor=1.5), "factor"),
    (lambda: schedules.plateau(0.1, monitor="loss"), "monitor"),
    (lambda: schedules.plateau(0.1, patience=-1), "patience"),
    (lambda: schedules.invscaling(0.1, power_t=-1), "power_t"),
    (lambda: schedules.invscaling(0.1, samples_per_epoch=0), "samples_per_epoch"),
    (lambda: schedules.from_config({"kind": "plateau", "lr": 0.1, "bogus": 1}), "bogus"),
])
def test_bad_settings_name_the_argument(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


# -- the schedules inside fit --------------------------------------------------------------------------

def _sklearn_adaptive_lrs(costs, lr, patience, tol):
    """scikit-learn's _update_no_improvement_count + SGDOptimizer.trigger_stopping, transcribed."""
    out, best, count = [lr], math.inf, 0
    for c in costs[:-1]:
        count = count + 1 if c > best - tol else 0
        best = min(best, c)
        if count > patience:
            lr, count = lr / 5.0, 0
        out.append(lr)
    return out


def _fit_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def test_fit_feeds_the_plateau_schedule_and_resumes_it(tmp_path):
    import bpgpu

    x, y = _fit_data()
    kw = dict(batch_size=32, seed=1, progress=False)

    def opt():
        return bpgpu.SGD(schedule=schedules.plateau(0.5, patience=1, tol=0.1, stop_lr=0.0), momentum=0.9)

    whole = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=0)
    h = whole.fit(x, y, epochs=14, optimizer=opt(), **kw)
    assert h.lr == pytest.approx(_sklearn_adaptive_lrs(h.cost, 0.5, 1, 0.1), rel=1e-15)
    assert len(set(h.lr)) >= 3  # the wiring reduced η more than once
    first = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=0)
    first.fit(x, y, epochs=6, optimizer=opt(), checkpoint=tmp_path / "ck.npz", **kw)
    resumed = bpgpu.MLP([4, 6, 3], hidden="tanh", dtype="float64", seed=0)
    h2 = resumed.fit(x, y, epochs=14, optimizer=None, resume=tmp_path / "ck.npz", **kw)
    assert h2.lr == h.lr and h2.cost == h.cost
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_plateau_too_small_a_rate_ends_fit_like_scikit_learn():
    import bpgpu

    x, y = _fit_data()
    net = bpgpu.MLP([4, 6, 3], dtype="float64", seed=0)
    sched = schedules.plateau(1e-6, patience=2, tol=10.0)  # never an improvement by 10; η already at stop_lr
    h = net.fit(x, y, epochs=30, optimizer=bpgpu.SGD(schedule=sched), batch_size=40, seed=0, progress=False)
    assert len(h) == 4 and h.stopped_epoch == 4  # epoch 1 sets the best; bad count 3 > patience 2 after epoch 4


def test_fit_uses_each_schedule_per_epoch():
    import bpgpu

    x, y = _fit_data()
    for sched in (schedules.warmup_cosine(0.2, 8, 3), schedules.one_cycle(0.3, 8), schedules.invscaling(0.2, 0.5, 120)):
        h = bpgpu.MLP([4, 5, 3], dtype="float64", seed=0).fit(x, y, epochs=8, optimizer=bpgpu.Adam(schedule=sched),
                                                                batch_size=60, seed=0, progress=False)
        assert h.lr == [sched(e) for e in range(8)]
