"""``fit``: mini-batch training by backpropagation (array API only; no numpy/cupy/torch import).

Per epoch e: η = optimizer's schedule(e); a permutation is drawn on the host
(``numpy.random.default_rng(seed)``, in :mod:`bpgpu.backend.random`) and moved to the device once;
each batch is ``xp.take(x, idx, axis=0)`` of data that was moved to the device once, before the
first epoch. The cost, the per-layer ‖∂C/∂W^l‖ and a finiteness probe accumulate on the device and
are read once per epoch (plus every few batches while a progress bar is shown).

Data parallelism (:mod:`bpgpu.distributed`): each batch's m rows are split by ``shard_bounds``; the
rank back-propagates its m_r rows, scales cost and gradients by m_r/m and ``comm.allreduce_sum`` adds
them up, so every rank applies exactly the full-batch mean gradient. Parameters are broadcast from
rank 0 first; only rank 0 shows progress and writes checkpoints. With ``LocalComm`` (one process)
none of this does any work.

Divergence: the epoch's cost sum and the sum of all parameters are checked once per epoch (no
per-batch sync). When either is NaN/inf the epoch is replayed from copies taken at its start (same
permutation), now checking every batch, to find the first bad step; the parameters and optimizer
state from just before it are kept and :class:`~bpgpu.errors.DivergenceError` names epoch and batch.
"""

from __future__ import annotations

import time
from typing import Any

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.floaterrors import quiet_float_errors
from bpgpu.backend.random import fresh_seed, permutation, rng_state, shuffle_rng
from bpgpu.distributed.comm import LocalComm, shard_bounds
from bpgpu.errors import ConfigError, DivergenceError
from bpgpu.guards import raise_if_out_of_memory
from bpgpu.io import checkpoint as ckpt
from bpgpu.math import backprop as bp
from bpgpu.training.early_stopping import as_early_stopping, copy_arrays
from bpgpu.training.evaluate import evaluate_arrays
from bpgpu.training.history import History
from bpgpu.training.optimizers import OPTIMIZERS, SGD, Optimizer
from bpgpu.training.optimizers import make as make_optimizer
from bpgpu.training.progress import Progress
from bpgpu.training.resume import resume_from
from bpgpu.training.schedules import observe as observe_schedule
from bpgpu.validation import check_int


def default_optimizer() -> Optimizer:
    """SGD with η = 0.1 and momentum 0.9 (what ``fit`` uses when no optimizer is given)."""
    return SGD(0.1, momentum=0.9)


def _positive_int(name: str, value: Any) -> int:
    return check_int(value, name, 1)  # TypeError for non-integers, ConfigError below 1


# -- one step ----------------------------------------------------------------------------------------

def _step(net: Any, optimizer: Optimizer, x: Any, y: Any, idx: Any, comm: Any) -> tuple[Any, list[Any]]:
    """Back-propagate the batch ``idx`` (this rank's shard of it), combine across ranks, update the
    parameters; returns the batch's mean cost (0-d, on the device) and the weight gradients."""
    xp = net.xp
    m = idx.shape[0]
    if comm.size > 1:
        start, stop = shard_bounds(m, comm.rank, comm.size)
        idx = idx[start:stop]
    m_r = idx.shape[0]
    if m_r:
        xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
        cost, grad_w, grad_b = bp.backprop(net.weights, net.biases, net.hidden, net.objective, xb, yb)
    else:  # more ranks than rows in this batch: contribute nothing
        cost = xp.zeros((), dtype=net.dtype, device=net.device)
        grad_w = [xp.zeros(w.shape, dtype=w.dtype, device=w.device) for w in net.weights]
        grad_b = [xp.zeros(b.shape, dtype=b.dtype, device=b.device) for b in net.biases]
    if comm.size > 1:
        scale = m_r / m  # Σ_r (m_r/m) · mean_r = the full-batch mean
        n = len(grad_w)
        total = comm.allreduce_sum([xp.reshape(cost * scale, (1,))] + [g * scale for g in grad_w + grad_b])
        cost, grad_w, grad_b = total[0][0], list(total[1:1 + n]), list(total[1 + n:])
    new_w, new_b = optimizer.step(net.weights, net.biases, grad_w, grad_b)
    net.weights[:], net.biases[:] = new_w, new_b
    return cost, grad_w


def _frobenius(xp: Any, g: Any) -> Any:
    """‖g‖ = √(vec(g)·vec(g)): one dot product, no g ⊙ g temporary (about 3× cheaper on small layers)."""
    flat = xp.reshape(g, (-1,))
    return xp.sqrt(xp.vecdot(flat, flat))


def _finite_probe(net: Any) -> Any:
    """Σ of every parameter (0-d): NaN/inf exactly when some parameter is (barring overflow)."""
    xp = net.xp
    total = xp.zeros((), dtype=net.dtype, device=net.device)
    for a in net.weights + net.biases:
        total = total + xp.sum(a)
    return total


def _snapshot(net: Any, optimizer: Optimizer) -> tuple:
    state = {name: copy_arrays(values) for name, values in optimizer.state.items()}
    return copy_arrays(net.weights), copy_arrays(net.biases), state, getattr(optimizer, "steps", 0)


def _restore(net: Any, optimizer: Optimizer, snap: tuple) -> None:
    """Put a snapshot back as fresh copies (the optimizer may update in place; the snapshot stays intact)."""
    weights, biases, state, steps = snap
    net.weights[:], net.biases[:] = copy_arrays(weights), copy_arrays(biases)
    optimizer.state = {name: copy_arrays(values) for name, values in state.items()}
    optimizer.steps = steps


def _locate_divergence(net, optimizer, x, y, idx, batch_size, comm, epoch, start_snap) -> DivergenceError:
    """Replay the epoch from ``start_snap`` checking every batch; leave the parameters from just
    before the first non-finite step and return the error to raise."""
    xp = net.xp
    _restore(net, optimizer, start_snap)
    m = idx.shape[0]
    n_batches = -(-m // batch_size)
    for b, start in enumerate(range(0, m, batch_size)):
        before = _snapshot(net, optimizer)  # copies: the step may update in place
        cost, _ = _step(net, optimizer, x, y, idx[start:min(start + batch_size, m)], comm)
        cost_ok, params_ok = bool(xp.isfinite(cost)), bool(xp.isfinite(_finite_probe(net)))
        if not (cost_ok and params_ok):
            _restore(net, optimizer, before)
            what = f"the batch cost became {float(cost)}" if not cost_ok else "the update made a parameter NaN/inf"
            exc = DivergenceError(
                f"training diverged in epoch {epoch + 1}, batch {b + 1} of {n_batches}: {what} (η = {optimizer.lr:g}). "
                "The parameters from before that step are kept. Lower the learning rate, use a smaller "
                "initialisation, or clip/scale the inputs."
            )
            exc.epoch, exc.batch = epoch + 1, b + 1
            return exc
    _restore(net, optimizer, start_snap)
    exc = DivergenceError(
        f"training diverged in epoch {epoch + 1} (the epoch's cost or parameters became NaN/inf), but a "
        "replay of the epoch did not reproduce it (non-deterministic device?); the parameters from the "
        f"start of epoch {epoch + 1} are kept. Lower the learning rate (η = {optimizer.lr:g})."
    )
    exc.epoch, exc.batch = epoch + 1, None
    return exc


# -- the loop ---------------------------------------------------------------------------------------

def fit(
    net: Any, x: Any, y: Any, epochs: int, batch_size: int = 32, optimizer: Optimizer | None = None,
    validation_data: tuple[Any, Any] | None = None, shuffle: bool = True, seed: int | None = None,
    progress: bool = True, early_stopping: Any = None, checkpoint: Any = None, checkpoint_every: int = 1,
    resume: Any = None, record_grad_norms: bool = True, comm: Any = None,
) -> History:
    """Train ``net`` on (``x``, ``y``) for ``epochs`` epochs of mini-batches; returns a :class:`History`.

    ``optimizer``: :class:`~bpgpu.SGD` / :class:`~bpgpu.Adam` (default SGD η=0.1, momentum 0.9).
    ``seed`` fixes the shuffling (the initial weights come from ``MLP(seed=...)``).
    ``early_stopping``: a patience (int) or :class:`EarlyStopping`; the best epoch's parameters are
    restored at the end. ``checkpoint``: a path (may contain ``{epoch}``) written every
    ``checkpoint_every`` epochs and after the last; ``resume``: such a file to continue from (give the
    same data, batch_size and shuffle, and ``epochs`` = the total). ``comm``: a communicator of
    :mod:`bpgpu.distributed` for data-parallel training (default: one process).
    """
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    checkpoint_every = _positive_int("checkpoint_every", checkpoint_every)
    comm = LocalComm() if comm is None else comm
    root = comm.rank == 0
    x = net.as_features(x)
    y = net.as_targets(y, x.shape[0])
    m = x.shape[0]
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("validation_data must be a pair (x_val, y_val).")
        xv = net.as_features(validation_data[0], "validation_data[0]")
        val = (xv, net.as_targets(validation_data[1], xv.shape[0], "validation_data[1]"))
    es = as_early_stopping(early_stopping)
    if es is not None:
        es.resolve_monitor(val is not None)

    if resume is not None:
        optimizer, rng, first_epoch, history = resume_from(net, resume, optimizer, es, batch_size)
        if shuffle and rng is None:
            raise ConfigError(f"checkpoint {str(resume)!r} was written with shuffle=False; resume with shuffle=False.")
        if not shuffle:
            rng = None
    else:
        optimizer = default_optimizer() if optimizer is None else optimizer
        if isinstance(optimizer, str):  # a name, with its default settings
            optimizer = make_optimizer(optimizer)
        if shuffle and seed is None:
            seed = fresh_seed()
            if comm.size > 1:  # every rank must draw the same permutations
                seed = int(comm.allreduce_scalar(float(seed) if root else 0.0))
        rng = shuffle_rng(seed) if shuffle else None
        first_epoch, history = 0, History()
        if comm.size > 1:
            net.weights[:] = comm.broadcast(net.weights, root=0)
            net.biases[:] = comm.broadcast(net.biases, root=0)
    if es is not None and resume is None:
        es.reset()  # an EarlyStopping object reused from an earlier fit starts afresh
    # The network owns its parameters from here on: in-place updates must not write into arrays the
    # caller still holds (set_parameters / torch.asarray may alias host data). O(parameters), once.
    net.weights[:], net.biases[:] = copy_arrays(net.weights), copy_arrays(net.biases)
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"optimizer must be bpgpu.SGD(...), bpgpu.Adam(...) or a name ({', '.join(OPTIMIZERS)}); got {optimizer!r}."
        )
    optimizer.ensure_state(net.weights + net.biases)

    n_batches = -(-m // batch_size)
    bar = Progress(progress and root, epochs, first_epoch, n_batches)
    try:
        with quiet_float_errors(net.backend):  # NaN/inf are caught below and raised as DivergenceError
            _epochs(net, optimizer, x, y, val, m, batch_size, epochs, first_epoch, rng, es, history, bar, comm,
                    record_grad_norms, checkpoint, checkpoint_every, shuffle, root)
    except Exception as exc:  # once around all epochs: no per-batch cost
        raise_if_out_of_memory(exc, net, batch_size)  # device OOM -> bpgpu.OutOfMemoryError (batch, sizes)
        raise
    finally:
        bar.close()
    if es is not None and es.restore_best and es.best_params is not None and es.best_epoch != len(history):
        net.weights[:], net.biases[:] = list(es.best_params[0]), list(es.best_params[1])
    return history


def _epochs(net, optimizer, x, y, val, m, batch_size, epochs, first_epoch, rng, es, history, bar, comm,
            record_grad_norms, checkpoint, checkpoint_every, shuffle, root) -> None:
    """The epochs of :func:`fit` (its arguments already checked and on the device)."""
    xp = net.xp
    layers = len(net.weights)
    n_batches = -(-m // batch_size)
    observe_schedule(optimizer.schedule, history)  # a plateau schedule reads the (resumed) history
    for epoch in range(first_epoch, epochs):
        lr = optimizer.set_epoch(epoch)
        bar.start_epoch(epoch)
        t0 = time.perf_counter()
        idx = to_backend(permutation(rng, m), net.backend, xp.int64)
        start_snap = _snapshot(net, optimizer)
        cost_sum = xp.zeros((), dtype=net.dtype, device=net.device)
        norm_sums = [xp.zeros((), dtype=net.dtype, device=net.device) for _ in range(layers)]
        for b, start in enumerate(range(0, m, batch_size)):
            batch = idx[start:min(start + batch_size, m)]
            cost, grad_w = _step(net, optimizer, x, y, batch, comm)
            cost_sum = cost_sum + cost * batch.shape[0]
            if record_grad_norms:
                norm_sums = [s + _frobenius(xp, g) for s, g in zip(norm_sums, grad_w)]
            seen = min(start + batch_size, m)
            bar.batch(b, seen, float(cost_sum) / seen if bar.wants_cost(b) else None)
        host = to_host(xp.stack([cost_sum, _finite_probe(net)] + norm_sums)).tolist()
        if not all(v == v and abs(v) != float("inf") for v in host[:2]):
            raise _locate_divergence(net, optimizer, x, y, idx, batch_size, comm, epoch, start_snap)
        row: dict[str, Any] = {"epoch": epoch + 1, "cost": host[0] / m, "lr": lr, "val_cost": None, "val_accuracy": None,
                               "grad_norms": [v / n_batches for v in host[2:]] if record_grad_norms else []}
        if val is not None:
            result = evaluate_arrays(net, *val)
            row["val_cost"], row["val_accuracy"] = result["cost"], result["accuracy"]
        row["seconds"] = time.perf_counter() - t0
        history.append(**row)
        bar.end_epoch(row, m)
        stop = es.update(epoch + 1, row, net.weights, net.biases) if es is not None else False
        stop = observe_schedule(optimizer.schedule, history) or stop  # plateau: η too small to go on
        if stop:
            history.stopped_epoch = epoch + 1
        last = stop or epoch + 1 == epochs
        if es is not None:
            history.best_epoch = es.best_epoch
        if checkpoint is not None and root and ((epoch + 1) % checkpoint_every == 0 or last):
            path = str(checkpoint).format(epoch=epoch + 1) if "{epoch" in str(checkpoint) else checkpoint
            ckpt.save(path, net, epoch + 1, optimizer, rng_state(rng) if rng is not None else None,
                      history.to_dict(), es, {"batch_size": batch_size, "shuffle": bool(shuffle), "epochs": epochs})
        if stop:
            break
