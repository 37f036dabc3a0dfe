"""``fit``: mini-batch training by backpropagation, as Nielsen's ``SGD`` reads — epochs, then
mini-batches, then one step (array API only; no numpy/cupy/torch import)::

    for epoch in epochs:
        shuffle the rows (a permutation drawn on the host, moved to the device once)
        for batch in mini-batches:
            engine.step(x, y, batch)        # forward, BP1–BP4, cost, norms, all-reduce, update
        record the epoch (one device→host read), validate, early-stop, checkpoint

The step is a step engine's (:mod:`bpgpu.engines`: NumPy and CuPy fast engines, the generic
array-API reference for every other library); this module only orders steps and keeps the record.

Data parallelism (:mod:`bpgpu.distributed`): every rank holds the data; the engine takes the rank's
rows of each batch (``shard_bounds``), scales them by the *whole* batch's 1/m (or w_i/Σw) and one
``comm.allreduce_sum`` adds the ranks' costs and gradients, so every rank applies the full-batch
mean gradient. Parameters are broadcast from rank 0 first; only rank 0 shows progress and writes
checkpoints.

Divergence: an engine that checks each step (NumPy) refuses a step whose cost or gradient is NaN/inf
before applying it; for the others the epoch's sums are checked once per epoch and the epoch is
replayed from a host snapshot taken at its start (device memory is not doubled), checking every
batch, to find the first bad step. Either way the parameters from before that step are kept and
:class:`~bpgpu.errors.DivergenceError` names epoch and batch.

Interrupts: SIGINT (Ctrl-C) and SIGTERM during ``fit`` are deferred to the next step boundary; fit
then writes a resumable checkpoint (when ``checkpoint=`` is set; it records the position inside the
epoch, so resuming gives the same weights as a run never interrupted) and raises
:class:`~bpgpu.errors.TrainingInterrupted` naming the epoch and batch. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.dropout import epoch_key
from bpgpu.backend.floaterrors import quiet_float_errors
from bpgpu.backend.random import fresh_seed, permutation, rng_state, shuffle_rng
from bpgpu.distributed.comm import LocalComm
from bpgpu.engines import StepConfig, StepDiverged, make_engine
from bpgpu.errors import ConfigError, DataError, DivergenceError, ShapeError, TrainingInterrupted
from bpgpu.guards import raise_if_out_of_memory
from bpgpu.io import checkpoint as ckpt
from bpgpu.training.class_weights import class_row_weights
from bpgpu.training.early_stopping import as_early_stopping
from bpgpu.training.evaluate import evaluate_arrays
from bpgpu.training.features import Features
from bpgpu.training.history import History
from bpgpu.training.optimizers import OPTIMIZERS, SGD, Optimizer
from bpgpu.training.optimizers import make as make_optimizer
from bpgpu.training.progress import Progress
from bpgpu.training.resume import check_checkpoint_path, checkpoint_path, data_fingerprint, resume_from
from bpgpu.training.schedules import observe as observe_schedule
from bpgpu.validation import check_int, on_backend


def default_optimizer() -> Optimizer:
    """SGD with η = 0.1 and momentum 0.9 (what ``fit`` uses when no optimizer is given)."""
    return SGD(0.1, momentum=0.9)


# -- the loop ---------------------------------------------------------------------------------------

def fit(
    net: Any, x: Any, y: Any, epochs: int, batch_size: int = 32, optimizer: Optimizer | None = None,
    validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
    progress: bool = True, early_stopping: Any = None, checkpoint: Any = None, checkpoint_every: int = 1,
    resume: Any = None, record_grad_norms: bool = True, comm: Any = None, sample_weight: Any = None,
    class_weight: Any = None, clip_norm: float | None = None, clip_value: float | None = None, dropout: float = 0.0,
) -> History:
    """Train ``net`` on (``x``, ``y``) for ``epochs`` epochs of mini-batches; returns a :class:`History`.

    ``optimizer``: :class:`~bpgpu.SGD` / :class:`~bpgpu.Adam` or a name (default SGD η=0.1, momentum
    0.9). ``seed`` fixes the shuffling (the initial weights come from ``MLP(seed=...)``).
    ``early_stopping``: a patience (int) or :class:`EarlyStopping`; the best epoch's parameters are
    restored at the end. ``checkpoint``: a path (may contain ``{epoch}``) written every
    ``checkpoint_every`` epochs, after the last, and when fit is interrupted; ``resume``: such a file
    (or :class:`~bpgpu.Resume`) to continue from (same data, batch_size and shuffle; ``epochs`` = the
    total). ``comm``: a communicator of :mod:`bpgpu.distributed` for data-parallel training.
    ``sample_weight``: one weight ≥ 0 per row of ``x``; each batch's cost is then the weighted mean
    Σ w_i C_i / Σ w_i (BP1 scales row i by w_i/Σw instead of 1/m); integer weights train exactly
    like repeated rows within a batch. ``class_weight``: {class: weight} or "balanced" (n / (k·n_c)),
    multiplied into the rows' sample weights. ``clip_norm`` / ``clip_value``: clip every step's
    gradient by global norm, then by value (torch's clip_grad_norm_ / clip_grad_value_; the history's
    grad_norms are before clipping). ``dropout``: the probability of dropping each hidden unit in
    training (inverted dropout; masks from ``seed``; evaluate/predict never drop).
    """
    with net.backend.activate():
        run = _Run(net, x, y, epochs, batch_size, optimizer, validation_data, shuffle, seed, progress,
                   early_stopping, checkpoint, checkpoint_every, resume, record_grad_norms, comm, sample_weight,
                   Features(class_weight, clip_norm, clip_value, dropout))
        return run.train()


@dataclass
class _Position:
    """Where an interrupted epoch stood: the batches done and the engine's sums over them."""

    epoch: int          # 0-based epoch in progress
    batches: int        # its batches already taken
    stats: Any          # EpochStats of those batches


class _Run:
    """One call of :func:`fit`: the checked arguments, the engine, and the epochs (``train``)."""

    def __init__(self, net, x, y, epochs, batch_size, optimizer, validation_data, shuffle, seed, progress,
                 early_stopping, checkpoint, checkpoint_every, resume, record_grad_norms, comm, sample_weight,
                 features: Features) -> None:
        self.net = net
        self.features = features = features.checked(net)
        self.epochs = check_int(epochs, "epochs", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
        self.comm = comm = LocalComm() if comm is None else comm
        self.root = comm.rank == 0
        self.shuffle = bool(shuffle)
        self.progress = bool(progress)
        self.x = net.as_features(x)
        self.y = net.as_targets(y, self.x.shape[0])
        self.m = m = self.x.shape[0]
        self.sample_weight = class_row_weights(net, features.class_weight, self.y, sample_weights(net, sample_weight, m))
        self.val = _validation(net, validation_data)
        self.es = as_early_stopping(early_stopping)
        if self.es is not None:
            self.es.resolve_monitor(self.val is not None)
        self.checkpoint = checkpoint
        if checkpoint is not None and self.root:
            check_checkpoint_path(checkpoint, self.epochs)
        self.fingerprint = data_fingerprint(self.x, self.y) if (checkpoint is not None or resume is not None) else None
        self.position: _Position | None = None
        if resume is not None:
            optimizer, self.rng, self.first_epoch, self.history = resume_from(
                net, resume, _as_optimizer(optimizer) if optimizer is not None else None, self.es, self.batch_size,
                fingerprint=self.fingerprint, comm=comm, shuffle=self.shuffle)
            if not self.shuffle:
                self.rng = None
        else:
            optimizer = _as_optimizer(default_optimizer() if optimizer is None else optimizer)
            if (self.shuffle or features.dropout) and seed is None:
                seed = fresh_seed()
                if comm.size > 1:  # every rank must draw the same permutations
                    seed = int(comm.allreduce_scalar(float(seed) if self.root else 0.0))
            self.rng = shuffle_rng(seed) if self.shuffle else None
            self.first_epoch, self.history = 0, History()
            if comm.size > 1:
                net.weights[:] = comm.broadcast(net.weights, root=0)
                net.biases[:] = comm.broadcast(net.biases, root=0)
            if self.es is not None:
                self.es.reset()  # an EarlyStopping object reused from an earlier fit starts afresh
        self.optimizer = optimizer
        self.seed = seed  # dropout masks without shuffling are keyed by (seed, epoch)
        self.n_batches = -(-m // self.batch_size)
        self.engine = make_engine(net, optimizer, StepConfig(self.batch_size, bool(record_grad_norms), comm,
                                                             **features.step_config()))
        if resume is not None:
            self.position = self._saved_position()

    # -- the epochs ----------------------------------------------------------------------------------
    def train(self) -> History:
        net, history = self.net, self.history
        if history.stopped_epoch is not None:  # the saved run had stopped early: nothing left to train
            return history
        bar = Progress(self.root and self.progress, self.epochs, self.first_epoch, self.n_batches)
        observe_schedule(self.optimizer.schedule, history)  # a plateau schedule reads the (resumed) history
        try:
            with quiet_float_errors(net.backend), _DeferredSignals() as signals:
                self.signals = signals
                for epoch in range(self.first_epoch, self.epochs):
                    if self._epoch(epoch, bar):
                        break
        except (TrainingInterrupted, DivergenceError):
            raise
        except Exception as exc:  # once around all epochs: no per-batch cost
            raise_if_out_of_memory(exc, net, self.batch_size)  # device OOM -> bpgpu.OutOfMemoryError
            raise
        finally:
            bar.close()
        es = self.es
        if es is not None and es.restore_best and es.best_params is not None and es.best_epoch != len(history):
            net.weights[:], net.biases[:] = list(es.best_params[0]), list(es.best_params[1])
        return history

    def _epoch(self, epoch: int, bar: Progress) -> bool:
        """One epoch; True when training should stop (early stopping)."""
        net, engine, optimizer, xp = self.net, self.engine, self.optimizer, self.net.xp
        x, y, sw, bs, m = self.x, self.y, self.sample_weight, self.batch_size, self.m
        lr = optimizer.set_epoch(epoch)
        bar.start_epoch(epoch)
        t0 = time.perf_counter()
        self.epoch_rng = rng_state(self.rng) if self.rng is not None else None  # for a mid-epoch checkpoint
        idx = to_backend(permutation(self.rng, m), net.backend, xp.int64)
        if self.features.dropout:  # this epoch's masks: keyed from the shuffling RNG (checkpointed) or the seed
            engine.dropout_key = epoch_key(self.rng, self.seed, epoch)
        engine.start_epoch()
        first = 0
        if self.position is not None and self.position.epoch == epoch:  # resuming inside this epoch
            first = self.position.batches
            engine.load_epoch(self.position.stats)
        self.position = None
        start_snap = None if engine.checks_each_step else engine.snapshot()
        signals = self.signals
        b = first
        try:
            shown = bar.bar is not None
            for b in range(first, self.n_batches):
                engine.step(x, y, idx[b * bs:min(b * bs + bs, m)], sw)
                if signals.pending is not None:
                    self._interrupted(epoch, b + 1)
                if shown:
                    bar.batch(b, min(b * bs + bs, m), engine.running_cost() if bar.wants_cost(b) else None)
        except StepDiverged as exc:  # refused before it was applied: the parameters are from before batch b
            raise self._divergence(epoch, b + 1, exc.what) from None
        stats = engine.end_epoch()
        if not stats.finite:
            if start_snap is None:
                raise self._divergence(epoch, None, "an update made a parameter NaN/inf although every batch's "
                                       "cost and gradient were finite (η too large for this data)")
            raise self._replay(epoch, idx, start_snap)
        row: dict[str, Any] = {"epoch": epoch + 1, "cost": stats.cost, "lr": lr, "val_cost": None,
                               "val_accuracy": None, "grad_norms": stats.grad_norms}
        if self.val is not None:
            result = evaluate_arrays(net, *self.val)
            row["val_cost"], row["val_accuracy"] = result["cost"], result["accuracy"]
        row["seconds"] = time.perf_counter() - t0
        history = self.history
        history.append(**row)
        bar.end_epoch(row, m)
        es = self.es
        stop = es.update(epoch + 1, row, net.weights, net.biases) if es is not None else False
        stop = observe_schedule(self.optimizer.schedule, history) or stop  # plateau: η too small to go on
        if stop:
            history.stopped_epoch = epoch + 1
        if es is not None:
            history.best_epoch = es.best_epoch
        last = stop or epoch + 1 == self.epochs
        wrote = None
        if self.checkpoint is not None and ((epoch + 1) % self.checkpoint_every == 0 or last):
            wrote = self._save(epoch + 1)
        if signals.pending is not None:
            self._interrupted(epoch, self.n_batches, wrote)
        return stop

    # -- checkpoints and interrupts ------------------------------------------------------------------
    def _fit_record(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "shuffle": self.shuffle, "epochs": self.epochs, "data": self.fingerprint}

    def _save(self, epochs_done: int, rng: Any = None, label: int | None = None) -> str | None:
        """Write the checkpoint (rank 0) after ``epochs_done`` whole epochs; returns its path."""
        if not self.root:
            return None
        state = rng if rng is not None else (rng_state(self.rng) if self.rng is not None else None)
        path = checkpoint_path(self.checkpoint, label if label is not None else epochs_done)
        ckpt.save(path, self.net, epochs_done, self.optimizer, state, self.history.to_dict(), self.es, self._fit_record())
        return path

    def _interrupted(self, epoch: int, batches: int, wrote: str | None = None) -> None:
        """Stop at this step boundary: write a resumable checkpoint if asked, raise TrainingInterrupted."""
        name = signal.Signals(self.signals.pending).name
        inside = batches < self.n_batches
        path = wrote
        if self.checkpoint is not None and path is None:
            if inside:  # the epoch in progress: its position and partial sums travel in the history
                stats = self.engine.end_epoch()
                self.history.partial = {"epoch": epoch + 1, "batches": batches, "cost_sum": stats.cost_sum,
                                        "weight_sum": stats.weight_sum, "grad_norm_sums": stats.grad_norm_sums}
                try:
                    path = self._save(epoch, rng=self.epoch_rng, label=epoch + 1)
                finally:
                    self.history.partial = None
            else:
                path = self._save(epoch + 1)
        where = f"epoch {epoch + 1}, after batch {batches} of {self.n_batches}"
        saved = (f" A resumable checkpoint was written to {path!r}: fit(..., resume={path!r}) continues the same run."
                 if path else (" Pass checkpoint='ck.npz' to fit to be able to resume." if self.root else ""))
        raise TrainingInterrupted(
            f"training stopped by {name} in {where}, at a step boundary: the network and optimizer hold the "
            f"state after that step.{saved}", signal=name, epoch=epoch + 1, batch=batches, checkpoint=path)

    def _saved_position(self) -> _Position | None:
        """The mid-epoch position a checkpoint written by an interrupted fit records (None: an epoch boundary)."""
        partial = getattr(self.history, "partial", None)
        self.history.partial = None
        if partial is None:
            return None
        from bpgpu.engines.base import EpochStats

        try:
            epoch, batches = int(partial["epoch"]) - 1, int(partial["batches"])
            norms = [float(v) for v in partial["grad_norm_sums"]]
            stats = EpochStats(float(partial["cost_sum"]), float(partial["weight_sum"]), batches, True, norms)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the checkpoint's record of the interrupted epoch is damaged ({exc}).") from None
        if epoch != self.first_epoch or not 0 < batches < self.n_batches or not all(
                math.isfinite(v) for v in [stats.cost_sum, stats.weight_sum] + norms):
            raise ConfigError(
                f"the checkpoint's record of the interrupted epoch (epoch {epoch + 1}, batch {batches}) does not fit "
                f"this run ({self.first_epoch} epochs done, {self.n_batches} batches per epoch).")
        if norms and len(norms) != self.engine.layers:
            raise ConfigError(f"the checkpoint's interrupted epoch records {len(norms)} gradient norms; expected {self.engine.layers}.")
        return _Position(epoch, batches, stats)

    # -- divergence ----------------------------------------------------------------------------------
    def _divergence(self, epoch: int, batch: int | None, what: str) -> DivergenceError:
        where = f"epoch {epoch + 1}, batch {batch} of {self.n_batches}" if batch else f"epoch {epoch + 1}"
        kept = "The parameters from before that step are kept." if batch else "The parameters are NaN/inf."
        exc = DivergenceError(
            f"training diverged in {where}: {what} (η = {self.optimizer.lr:g}). {kept} Lower the learning rate, "
            "use a smaller initialisation, or scale the inputs (e.g. standardise each feature)."
        )
        exc.epoch, exc.batch = epoch + 1, batch
        return exc

    def _replay(self, epoch: int, idx: Any, start_snap: Any) -> DivergenceError:
        """Replay the epoch from ``start_snap`` checking every batch; leave the parameters from just
        before the first non-finite step and return the error to raise."""
        engine, bs, m = self.engine, self.batch_size, self.m
        engine.restore(start_snap)
        engine.start_epoch()
        for b in range(self.n_batches):
            before = engine.snapshot()
            engine.step(self.x, self.y, idx[b * bs:min(b * bs + bs, m)], self.sample_weight)
            if not engine.last_step_finite():
                engine.restore(before)
                cost = engine.running_cost()
                what = "the batch cost became NaN/inf" if not math.isfinite(cost) else "the update made a parameter NaN/inf"
                return self._divergence(epoch, b + 1, what)
        engine.restore(start_snap)
        device = self.net.backend
        cause = ("the epoch's sums overflowed although every step was finite"
                 if not device.is_gpu else "a replay of the epoch did not reproduce it (a non-deterministic device?)")
        exc = DivergenceError(
            f"training diverged in epoch {epoch + 1} (its cost sum or parameters became NaN/inf): {cause}. The "
            f"parameters from the start of epoch {epoch + 1} are kept. Scale the inputs (e.g. standardise each "
            f"feature) or lower the learning rate (η = {self.optimizer.lr:g})."
        )
        exc.epoch, exc.batch = epoch + 1, None
        return exc


# -- argument checks ----------------------------------------------------------------------------------

def _as_optimizer(optimizer: Any) -> Optimizer:
    if isinstance(optimizer, str):  # a name, with its default settings
        optimizer = make_optimizer(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"optimizer must be bpgpu.SGD(...), bpgpu.Adam(...) or a name ({', '.join(OPTIMIZERS)}); got {optimizer!r}."
        )
    return optimizer


def _validation(net: Any, validation_data: Any) -> tuple[Any, Any] | None:
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ConfigError("validation_data must be a pair (x_val, y_val).")
    xv = net.as_features(validation_data[0], "validation_data[0]")
    return xv, net.as_targets(validation_data[1], xv.shape[0], "validation_data[1]")


def sample_weights(net: Any, sample_weight: Any, m: int) -> Any:
    """``sample_weight`` as a length-m array of the network's dtype on its device: finite, ≥ 0, not all 0."""
    if sample_weight is None:
        return None
    w = on_backend(sample_weight, net.backend, "sample_weight", net.dtype)
    if tuple(w.shape) != (m,):
        raise ShapeError(f"sample_weight must hold one weight per row of x: shape ({m},); got shape {tuple(w.shape)}.")
    xp = net.xp
    counts = [xp.sum(xp.astype(~xp.isfinite(w), xp.int64)), xp.sum(xp.astype(w < 0, xp.int64)),
              xp.sum(xp.astype(w > 0, xp.int64))]
    bad, negative, positive = (int(v) for v in to_host(xp.stack(counts)).tolist())  # one read, once per fit
    if bad:
        raise DataError(f"sample_weight contains {bad} NaN or infinite value(s); give finite weights ≥ 0.")
    if negative:
        raise DataError(f"sample_weight contains {negative} negative value(s); weights must be ≥ 0.")
    if not positive:
        raise DataError("sample_weight is all zeros: no row would be trained on; give some weight > 0.")
    return w


class _DeferredSignals:
    """SIGINT and SIGTERM set ``pending`` instead of interrupting (main thread only; elsewhere Python
    delivers no signals anyway); ``fit`` acts on it at the next step boundary. A second SIGINT while one
    is pending raises KeyboardInterrupt at once (the user insists)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> "_DeferredSignals":
        self.pending: int | None = None
        self.saved: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self.saved[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - an embedded interpreter without signals
                    pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self.pending == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: fit stopped at once (the last step may be half-applied)")
        self.pending = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
