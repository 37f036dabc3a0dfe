"""scikit-learn's stochastic training loop (``BaseMultilayerPerceptron._fit_stochastic``), on any backend.

Per epoch: the sample order is reshuffled as ``sklearn.utils.shuffle`` does it, with the estimator's
``RandomState``; batches of ``batch_size`` rows (``'auto'`` = min(200, n)) each take one step
(:mod:`bpgpu.sklearn._step`). The epoch's loss is scikit-learn's: Σ_b m_b (C_b + α‖W_b‖²/2S_b) / n, with
‖W_b‖² taken before batch b's update; both sums stay on the device and are read once per epoch.
Stopping: when the loss (or, with ``early_stopping``, the validation score) has not improved by ``tol``
for more than ``n_iter_no_change`` epochs, 'adaptive' SGD divides η by 5 (until η ≤ 1e-6) and every
other setting stops; 'invscaling' sets η = η0 / (t + 1)^power_t after each epoch, t = samples seen.
Reaching ``max_iter`` warns with :class:`~sklearn.exceptions.ConvergenceWarning`.

η's rules are those of :class:`bpgpu.schedules.InvScaling` (used here, with t_ as its step count: t_
carries over between warm-started fits and partial_fit calls) and :class:`bpgpu.schedules.ReduceOnPlateau`
(not used: scikit-learn's one no-improvement counter drives both stopping and η/5, and with
``early_stopping`` it watches R² or accuracy, scores the plateau schedule does not read).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import gen_batches

from bpgpu.backend.arrays import to_backend
from bpgpu.backend.floaterrors import quiet_float_errors
from bpgpu.sklearn._step import Stepper
from bpgpu.training.schedules import InvScaling, constant


def copy_parameters(net: Any) -> tuple[list[Any], list[Any]]:
    xp = net.xp
    return [xp.asarray(w, copy=True) for w in net.weights], [xp.asarray(b, copy=True) for b in net.biases]


def _squared_norm(xp: Any, weights: list[Any]) -> Any:
    """Σ_l ‖W^l‖² (0-d, on the device): one dot product per layer."""
    total = None
    for w in weights:
        flat = xp.reshape(w, (-1,))
        term = xp.vecdot(flat, flat)
        total = term if total is None else total + term
    return total


def _set_lr(model: Any, lr: float) -> None:
    """η for the next epoch; SGD's velocity v (bpgpu: p ← p − ηv) is rescaled by η_old/η_new so that
    scikit-learn's velocity u = −ηv, which carries the old η, continues unchanged."""
    opt = model.optimizer
    if lr != model.lr and "velocity" in opt.state:
        ratio = model.lr / lr
        for v in opt.state["velocity"]:  # in place: an engine may hold them as views of one buffer
            v *= ratio
    model.lr = lr
    opt.schedule = constant(lr)
    opt.set_epoch(0)


class Run:
    """The bookkeeping of one ``fit`` / ``partial_fit`` call (mirrors the estimator's fitted attributes)."""

    def __init__(self, est: Any, settings: Any, model: Any, data: Any) -> None:
        self.est, self.settings, self.model, self.data = est, settings, model, data

    def epochs(self, incremental: bool) -> None:
        est, st, model, data = self.est, self.settings, self.model, self.data
        net = model.net
        xp = net.xp
        n = data.n_train
        batch_size = min(200, n) if st.batch_size == "auto" else int(np.clip(st.batch_size, 1, n))
        if st.batch_size != "auto" and st.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        slices = list(gen_batches(n, batch_size))
        sw = data.sw_train_host
        stepper = Stepper(model, st, batch_size)
        sample_idx = np.arange(n, dtype=np.int64)
        _set_lr(model, model.lr)
        est.n_iter_ = 0
        for _ in range(st.max_iter):
            if est.shuffle:  # sklearn.utils.shuffle(sample_idx, random_state=...), without its checks
                order = np.arange(n)
                est._random_state.shuffle(order)
                sample_idx = sample_idx[order]
            idx = to_backend(sample_idx, net.backend, xp.int64)
            stepper.start_epoch()
            l2_sum = xp.zeros((), dtype=net.dtype, device=net.device)  # Σ_b m_b ‖W_b‖² / S_b
            weighted_cost, before = 0.0, 0.0                              # Σ_b m_b C_b (sample weights)
            try:
                for sl in slices:
                    m_b = sl.stop - sl.start
                    total = float(m_b) if sw is None else float(np.sum(sw[sample_idx[sl]]))
                    if total <= 0.0:  # every weight in this batch is zero: nothing to learn from it
                        continue
                    if st.alpha:
                        l2_sum = l2_sum + _squared_norm(xp, net.weights) * (m_b / total)
                    stepper.step(data, idx[sl], total)
                    if sw is not None:  # the engine sums S_b C_b; scikit-learn's loss sums m_b C_b
                        now = stepper.end_epoch().cost_sum
                        weighted_cost, before = weighted_cost + (now - before) * m_b / total, now
                stats = stepper.end_epoch()
                cost = stats.cost_sum if sw is None else weighted_cost
                loss = (cost / data.cost_scale + 0.5 * st.alpha * float(l2_sum)) / n
                finite = stats.finite and math.isfinite(loss)
            except FloatingPointError:
                finite, loss = False, float("nan")
            if not finite:
                raise ValueError(
                    f"{type(est).__name__}: training diverged in epoch {est.n_iter_ + 1} (loss {loss}): the solver "
                    "produced non-finite parameter weights. Scale the inputs (StandardScaler) or lower "
                    f"learning_rate_init (now {st.learning_rate_init:g})."
                )
            est.n_iter_ += 1
            est.loss_ = loss
            est.t_ += n
            est.loss_curve_.append(loss)
            if est.verbose:
                print("Iteration %d, loss = %.8f" % (est.n_iter_, loss))
            self._update_no_improvement_count()
            if st.solver == "sgd" and st.learning_rate == "invscaling":  # η0 / (t_ + 1)^power_t
                _set_lr(model, InvScaling(st.learning_rate_init, st.power_t)(est.t_))
            if est._no_improvement_count > st.n_iter_no_change:
                if not self._trigger_lr_drop():
                    break
                est._no_improvement_count = 0
            if incremental:
                break
            if est.n_iter_ == st.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't "
                    "converged yet." % st.max_iter, ConvergenceWarning,
                )

    best: Any = None

    def _trigger_lr_drop(self) -> bool:
        """scikit-learn's ``trigger_stopping``: True to go on with η/5 ('adaptive' SGD), False to stop."""
        st, est, model = self.settings, self.est, self.model
        what = "Validation score" if est.early_stopping else "Training loss"
        msg = f"{what} did not improve more than tol={st.tol:f} for {st.n_iter_no_change} consecutive epochs."
        if st.solver != "sgd" or st.learning_rate != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return False
        if model.lr <= 1e-6:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return False
        _set_lr(model, model.lr / 5.0)
        if est.verbose:
            print(msg + " Setting learning rate to %f" % model.lr)
        return True

    def _update_no_improvement_count(self) -> None:
        est, st = self.est, self.settings
        if est.early_stopping:
            score = self.data.validation_score(est, self.model)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + st.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best = copy_parameters(self.model.net)
        else:
            if est.loss_curve_[-1] > est.best_loss_ - st.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]


def run_epochs(est: Any, settings: Any, model: Any, data: Any, incremental: bool) -> None:
    """The epochs of one fit / partial_fit; Ctrl-C ends them with scikit-learn's warning, keeping the model."""
    with model.net.backend.activate(), quiet_float_errors(model.net.backend):
        run = Run(est, settings, model, data)
        try:
            run.epochs(incremental)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if est.early_stopping and run.best is not None:  # the best validation score's parameters
            net = model.net
            net.weights[:], net.biases[:] = list(run.best[0]), list(run.best[1])
