"""What every step engine shares: its configuration, the per-epoch statistics it hands back, and
the bookkeeping around a step (this rank's rows of a batch, the per-row scales of BP1, host
snapshots of the training state).

An engine runs one mini-batch step: forward, BP1–BP4, the batch cost, the per-layer gradient norms,
the all-reduce across ranks and the optimizer update; ``fit`` calls it once per batch
(:mod:`bpgpu.training.loop`). See ENGINE.md in the repository's notes and ``bpgpu/engines/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.distributed.comm import LocalComm, shard_bounds


@dataclass
class StepConfig:
    """How ``fit`` wants each step run. Extensible: later options (clipping, dropout, …) add fields
    with defaults that keep today's step unchanged."""

    batch_size: int
    record_grad_norms: bool = True
    comm: Any = None                  # a bpgpu.distributed communicator; None = one process
    clip_norm: float | None = None    # g ← g·min(1, c/(‖g‖+1e-6)), ‖g‖ over every gradient (bpgpu.math.clipping)
    clip_value: float | None = None   # g ← clip(g, −c, c), after the norm clip
    dropout: float = 0.0              # inverted dropout on the hidden layers (bpgpu.math.dropout)

    def features(self) -> frozenset[str]:
        """The optional step features this configuration asks for (an engine lacking one is not used)."""
        asked = {"clip_norm": self.clip_norm is not None, "clip_value": self.clip_value is not None,
                 "dropout": bool(self.dropout)}
        return frozenset(name for name, on in asked.items() if on)


@dataclass
class EpochStats:
    """What one epoch's steps add up to, read from the device once (:meth:`Engine.end_epoch`).

    ``cost_sum``: Σ over batches of (batch mean cost × batch weight), the batch weight being its row
    count (or Σ w_i with sample weights), so ``cost_sum / weight_sum`` is the epoch's mean cost;
    ``grad_norm_sums``: Σ over batches of ‖∂C/∂W^l‖_F per layer ([] when not recorded)."""

    cost_sum: float
    weight_sum: float
    batches: int
    finite: bool
    grad_norm_sums: list[float] = field(default_factory=list)

    @property
    def cost(self) -> float:
        return self.cost_sum / self.weight_sum if self.weight_sum else 0.0

    @property
    def grad_norms(self) -> list[float]:
        return [v / self.batches for v in self.grad_norm_sums] if self.batches else []


class StepDiverged(FloatingPointError):
    """Raised by an engine that checks every step (``checks_each_step``) *before* applying an update
    whose batch cost or gradient is NaN/inf: the parameters stay those from before the step."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class Snapshot:
    """Host copies of the training state at a step boundary (parameters, optimizer state, step count)."""

    weights: list[Any]
    biases: list[Any]
    state: dict[str, list[Any]]
    steps: int


class Engine:
    """The interface (see the module docstring); subclasses implement the five methods below.

    ``checks_each_step``: True when :meth:`step` refuses to apply a non-finite update (raising
    :class:`StepDiverged`), so ``fit`` needs no epoch-start snapshot; False when divergence is only
    seen in :meth:`end_epoch` (no per-step host read), and ``fit`` replays the epoch from a host
    snapshot to find the batch.
    """

    name = "base"
    checks_each_step = False
    supports: frozenset[str] = frozenset()  # the StepConfig.features() this engine implements

    def __init__(self, net: Any, optimizer: Any = None, config: StepConfig | None = None) -> None:
        self.net = net
        self.optimizer = optimizer
        self.config = config if config is not None else StepConfig(batch_size=1)
        self.comm = self.config.comm if self.config.comm is not None else LocalComm()
        self.xp = net.xp
        self.layers = len(net.weights)
        self.dropout_key = 0  # fit sets it per epoch (bpgpu.backend.dropout.epoch_key)

    # -- the interface ---------------------------------------------------------------------------------
    def start_epoch(self) -> None:  # pragma: no cover - interface
        """Zero the epoch's accumulators (on the device)."""
        raise NotImplementedError

    def step(self, x: Any, y: Any, idx: Any, sample_weight: Any = None) -> None:  # pragma: no cover
        """One mini-batch: rows ``idx`` of the device arrays ``x``, ``y`` (and ``sample_weight``)."""
        raise NotImplementedError

    def end_epoch(self) -> EpochStats:  # pragma: no cover - interface
        """The epoch's statistics so far (one device→host read; the sums are not reset)."""
        raise NotImplementedError

    def load_epoch(self, stats: EpochStats) -> None:  # pragma: no cover - interface
        """Continue an epoch whose first ``stats.batches`` batches gave ``stats`` (a resumed interrupt)."""
        raise NotImplementedError

    def gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, list[Any], list[Any]]:  # pragma: no cover
        """(mean cost, ∂C/∂W^l, ∂C/∂b^l) of the rows x, y; no update; new arrays the caller may keep."""
        raise NotImplementedError

    def outputs(self, x: Any) -> tuple[Any, Any]:  # pragma: no cover - interface
        """(Z^L, A^L) of the rows ``x``: inference."""
        raise NotImplementedError

    # -- shared bookkeeping ----------------------------------------------------------------------------
    def cost(self, x: Any, y: Any) -> Any:
        """The mean cost of the rows x, y (0-d, on the device)."""
        z, a = self.outputs(x)
        return self.net.objective.value(z, a, y)

    def shard(self, idx: Any) -> tuple[Any, int, int]:
        """This rank's rows of the batch ``idx``: (rows, lo, hi) with rows = idx[lo:hi]."""
        m = idx.shape[0]
        if self.comm.size == 1:
            return idx, 0, m
        lo, hi = shard_bounds(m, self.comm.rank, self.comm.size)
        return idx[lo:hi], lo, hi

    def running_cost(self) -> float:  # pragma: no cover - interface
        """The epoch's mean cost so far (a device→host read: for the progress bar only)."""
        raise NotImplementedError

    def last_step_finite(self) -> bool:  # pragma: no cover - interface
        """True when the last step's batch cost and the parameters are finite (a host read)."""
        raise NotImplementedError

    def update_through_step(self) -> None:
        """An optimizer without ``update_flat``: its generic step builds new arrays, which are copied
        into the buffers only once all exist (all layers or none). Flat-buffer engines (NumPy, CuPy) share
        it; they keep their parameter/gradient views in ``W``, ``B``, ``GW``, ``GB``."""
        opt = self.optimizer
        views = {name: list(values) for name, values in opt.state.items()}
        steps = getattr(opt, "steps", 0)
        try:
            new_w, new_b = opt.step(self.W, self.B, self.GW, self.GB, inplace=False)
        except BaseException:
            opt.state, opt.steps = views, steps
            raise
        new_state = opt.state
        for dst, src in zip(self.W + self.B, list(new_w) + list(new_b)):
            dst[...] = src
        for name, dst_list in views.items():
            for dst, src in zip(dst_list, new_state[name]):
                if dst is not src:
                    dst[...] = src
        opt.state = views
        self.net.weights[:], self.net.biases[:] = self.W, self.B

    def snapshot(self) -> Snapshot:
        """Host copies of the parameters and optimizer state (device memory is not doubled)."""
        net, opt = self.net, self.optimizer
        copy = lambda arrays: [to_host(a).copy() for a in arrays]  # noqa: E731 - to_host may return a view
        state = {name: copy(values) for name, values in opt.state.items()} if opt is not None else {}
        return Snapshot(copy(net.weights), copy(net.biases), state, int(getattr(opt, "steps", 0)))

    def restore(self, snap: Snapshot) -> None:
        """Put a :meth:`snapshot` back (as fresh device arrays; the snapshot stays intact)."""
        net, opt, backend = self.net, self.optimizer, self.net.backend
        net.weights[:] = [to_backend(a, backend, net.dtype, copy=True) for a in snap.weights]
        net.biases[:] = [to_backend(a, backend, net.dtype, copy=True) for a in snap.biases]
        if opt is not None:
            opt.state = {name: [to_backend(a, backend, net.dtype, copy=True) for a in values]
                         for name, values in snap.state.items()}
            opt.steps = snap.steps
