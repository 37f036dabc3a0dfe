"""Learning-rate schedules: callables ``epoch -> η`` (epochs count from 0).

Each is a small class with ``config()`` so a checkpoint can rebuild it; any other callable
``epoch -> float`` works too (but then a resumed run needs the optimizer passed again).

    constant(η0):                 η(e) = η0
    step(η0, every, gamma):       η(e) = η0 · gamma^⌊e / every⌋
    exponential(η0, gamma):       η(e) = η0 · gamma^e
    invscaling(η0, power_t, n):   η(e) = η0 / (e·n + 1)^power_t          (scikit-learn's 'invscaling',
                                  t = samples seen = e·n; n = 1: torch LambdaLR(1/(e+1)^p))
    warmup_cosine(η0, epochs, warmup, min_lr):
                                  e < W: η0 (e+1)/(W+1)                   (torch LinearLR, start 1/(W+1))
                                  e ≥ W: min + (η0 − min)(1 + cos(π (e−W)/(epochs−W)))/2
                                                                          (torch CosineAnnealingLR)
    one_cycle(max_lr, epochs, …): torch's OneCycleLR per epoch (cos or linear, two or three phases)
    plateau(η0, patience, factor, tol, monitor):
                                  scikit-learn's 'adaptive' / torch's ReduceLROnPlateau: η × factor
                                  after more than ``patience`` epochs without an improvement by ``tol``.

The plateau schedule reads the epochs' costs: ``fit`` calls ``schedule.observe(history)`` before
each epoch, and ``η(e)`` is a pure function of the first e entries of the monitored column, so a
checkpoint (which stores the history) resumes it exactly.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from bpgpu.errors import ConfigError
from bpgpu.validation import check_int, check_positive

Schedule = Callable[[int], float]


def _positive(name: str, value: float) -> float:
    return check_positive(value, name)  # TypeError for non-numbers, ConfigError unless finite and > 0


class Constant:
    """η(e) = η0."""

    def __init__(self, lr: float) -> None:
        self.lr = _positive("lr", lr)

    def __call__(self, epoch: int) -> float:
        return self.lr

    def config(self) -> dict[str, Any]:
        return {"kind": "constant", "lr": self.lr}

    def __repr__(self) -> str:
        return f"constant({self.lr})"


class StepDecay:
    """η(e) = η0 · gamma^⌊e / every⌋: multiply by ``gamma`` every ``every`` epochs."""

    def __init__(self, lr: float, every: int, gamma: float = 0.1) -> None:
        self.lr = _positive("lr", lr)
        if int(every) != every or every < 1:
            raise ConfigError(f"every must be a positive whole number of epochs; got {every!r}.")
        self.every = int(every)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** (epoch // self.every)

    def config(self) -> dict[str, Any]:
        return {"kind": "step", "lr": self.lr, "every": self.every, "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"step({self.lr}, every={self.every}, gamma={self.gamma})"


class ExponentialDecay:
    """η(e) = η0 · gamma^e."""

    def __init__(self, lr: float, gamma: float) -> None:
        self.lr = _positive("lr", lr)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma**epoch

    def config(self) -> dict[str, Any]:
        return {"kind": "exponential", "lr": self.lr, "gamma": self.gamma}

    def __repr__(self) -> str:
        return f"exponential({self.lr}, gamma={self.gamma})"


class InvScaling:
    """η(e) = η0 / (e·n + 1)^power_t with n = ``samples_per_epoch``.

    scikit-learn's ``learning_rate='invscaling'``: its SGD sets η = η0 / (t + 1)^power_t at the end
    of every epoch, t = samples seen so far (``t_``), so epoch e (from 0) runs with t = e·n. Pass
    ``samples_per_epoch=n_samples`` for scikit-learn's numbers; the default 1 counts epochs.
    """

    def __init__(self, lr: float, power_t: float = 0.5, samples_per_epoch: int = 1) -> None:
        self.lr = _positive("lr", lr)
        self.power_t = check_positive(power_t, "power_t", allow_zero=True)
        self.samples_per_epoch = check_int(samples_per_epoch, "samples_per_epoch", 1)

    def __call__(self, epoch: int) -> float:
        return self.lr / (epoch * self.samples_per_epoch + 1) ** self.power_t

    def config(self) -> dict[str, Any]:
        return {"kind": "invscaling", "lr": self.lr, "power_t": self.power_t, "samples_per_epoch": self.samples_per_epoch}

    def __repr__(self) -> str:
        return f"invscaling({self.lr}, power_t={self.power_t}, samples_per_epoch={self.samples_per_epoch})"


class WarmupCosine:
    """Linear warm-up over ``warmup`` epochs, then a cosine from η0 down towards ``min_lr``:

        e < W:        η(e) = η0 (e + 1) / (W + 1)
        W ≤ e < E:    η(e) = min_lr + (η0 − min_lr) (1 + cos(π (e − W) / (E − W))) / 2

    (torch: ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W), CosineAnnealingLR(T_max=E−W,
    eta_min=min_lr)], milestones=[W])``). After the last epoch E − 1, η stays at its last value.
    """

    def __init__(self, lr: float, epochs: int, warmup: int = 0, min_lr: float = 0.0) -> None:
        self.lr = _positive("lr", lr)
        self.epochs = check_int(epochs, "epochs", 1)
        self.warmup = check_int(warmup, "warmup", 0)
        if self.warmup >= self.epochs:
            raise ConfigError(f"warmup must be fewer epochs than epochs={self.epochs}; got warmup={warmup!r}.")
        self.min_lr = check_positive(min_lr, "min_lr", allow_zero=True)
        if self.min_lr >= self.lr:
            raise ConfigError(f"min_lr must be below lr={self.lr}; got min_lr={min_lr!r}.")

    def __call__(self, epoch: int) -> float:
        e = min(epoch, self.epochs - 1)
        if e < self.warmup:
            return self.lr * (e + 1) / (self.warmup + 1)
        phase = (e - self.warmup) / (self.epochs - self.warmup)
        return self.min_lr + (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * phase)) / 2.0

    def config(self) -> dict[str, Any]:
        return {"kind": "warmup_cosine", "lr": self.lr, "epochs": self.epochs, "warmup": self.warmup, "min_lr": self.min_lr}

    def __repr__(self) -> str:
        return f"warmup_cosine({self.lr}, epochs={self.epochs}, warmup={self.warmup}, min_lr={self.min_lr})"


class OneCycle:
    """Smith's one-cycle policy, per epoch, as ``torch.optim.lr_scheduler.OneCycleLR`` (momentum is
    not cycled): from max_lr/div_factor up to ``max_lr`` over the first ``pct_start`` of the epochs,
    then down to max_lr/(div_factor·final_div_factor) (``three_phase``: back to the start value first,
    then down). Each phase anneals by ``anneal`` ("cos": end + (start − end)(1 + cos(π p))/2,
    "linear": start + (end − start) p), p the fraction of the phase done. Phase k ends at step
    pct_start·E − 1 (2·pct_start·E − 2), the last at E − 1; a phase of zero length gives its end value
    (torch divides by zero there). After epoch E − 1, η stays at the final value.
    """

    def __init__(
        self, max_lr: float, epochs: int, pct_start: float = 0.3, div_factor: float = 25.0,
        final_div_factor: float = 1e4, anneal: str = "cos", three_phase: bool = False,
    ) -> None:
        self.max_lr = _positive("max_lr", max_lr)
        self.epochs = check_int(epochs, "epochs", 1)
        self.pct_start = check_positive(pct_start, "pct_start", allow_zero=True)
        if not 0.0 <= self.pct_start <= 1.0:
            raise ConfigError(f"pct_start must be a fraction in [0, 1]; got {pct_start!r}.")
        self.div_factor = _positive("div_factor", div_factor)
        self.final_div_factor = _positive("final_div_factor", final_div_factor)
        if anneal not in ("cos", "linear"):
            raise ConfigError(f"anneal must be 'cos' or 'linear'; got {anneal!r}.")
        self.anneal = anneal
        self.three_phase = bool(three_phase)
        start = self.max_lr / self.div_factor
        end = start / self.final_div_factor
        steps = self.pct_start * self.epochs
        if self.three_phase:
            self._phases = [(steps - 1, start, self.max_lr), (2 * steps - 2, self.max_lr, start), (self.epochs - 1, start, end)]
        else:
            self._phases = [(steps - 1, start, self.max_lr), (self.epochs - 1, self.max_lr, end)]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def __call__(self, epoch: int) -> float:
        e = min(epoch, self.epochs - 1)
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(self._phases):
            if e <= end_step or i == len(self._phases) - 1:
                if end_step == start_step:
                    return end
                return self._anneal(start, end, (e - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover - the last phase always matches

    def config(self) -> dict[str, Any]:
        return {"kind": "one_cycle", "max_lr": self.max_lr, "epochs": self.epochs, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor, "anneal": self.anneal,
                "three_phase": self.three_phase}

    def __repr__(self) -> str:
        return f"one_cycle({self.max_lr}, epochs={self.epochs}, pct_start={self.pct_start}, anneal={self.anneal!r})"


_MODES = {"cost": "min", "val_cost": "min", "val_accuracy": "max"}


class ReduceOnPlateau:
    """η × ``factor`` after more than ``patience`` epochs without an improvement by ``tol`` in
    ``monitor`` ("cost", "val_cost" — lower is better — or "val_accuracy"), scikit-learn's rule
    (``learning_rate='adaptive'``, ``n_iter_no_change`` = patience, ÷5 = factor 0.2):

        after each epoch with value v:  bad ← bad + 1 if v > best − tol else 0   ("min"; for "max":
                                        v < best + tol);  best ← min(best, v)
        if bad > patience:              stop if η ≤ stop_lr, else η ← factor · η;  bad ← 0

    (torch's ``ReduceLROnPlateau(mode, factor, patience, threshold=tol, threshold_mode='abs')`` differs
    in one point: it lowers ``best`` only on an improvement by more than tol.) ``fit`` feeds the
    epochs' values through :meth:`observe`; η(e) depends on the first e of them only.
    ``should_stop()`` is True once a reduction was due with η ≤ ``stop_lr`` (scikit-learn stops
    there: "Learning rate too small"); ``fit`` then ends the run. ``stop_lr=0`` never stops.
    """

    def __init__(
        self, lr: float, patience: int = 10, factor: float = 0.2, tol: float = 1e-4, monitor: str = "cost",
        stop_lr: float = 1e-6,
    ) -> None:
        self.lr = _positive("lr", lr)
        self.patience = check_int(patience, "patience", 0)
        self.factor = _positive("factor", factor)
        if self.factor >= 1.0:
            raise ConfigError(f"factor must be in (0, 1) (scikit-learn's 'adaptive' divides by 5: 0.2); got {factor!r}.")
        self.tol = check_positive(tol, "tol", allow_zero=True)
        if monitor not in _MODES:
            raise ConfigError(f"monitor={monitor!r} is not recorded by fit; choose one of {', '.join(_MODES)}.")
        self.monitor = monitor
        self.stop_lr = check_positive(stop_lr, "stop_lr", allow_zero=True)
        self.values: list[float] = []

    def observe(self, history: Any) -> None:
        """Take the monitored column of ``history`` (a :class:`History`, or a mapping of columns)."""
        values = list(history[self.monitor])
        if any(v is None for v in values):
            raise ConfigError(
                f"the plateau schedule monitors {self.monitor!r}, which fit did not record (no validation_data?); "
                "give validation_data or monitor='cost'."
            )
        self.values = [float(v) for v in values]

    def _replay(self, epochs: int) -> tuple[float, bool]:
        """(η for epoch ``epochs``, whether a stop was due) from the first ``epochs`` values."""
        lr, bad, stop = self.lr, 0, False
        sign = 1.0 if _MODES[self.monitor] == "min" else -1.0  # compare sign·v, lower is better
        best = math.inf
        for v in self.values[:epochs]:
            v = sign * v
            bad = bad + 1 if v > best - self.tol else 0
            best = min(best, v)
            if bad > self.patience:
                if lr <= self.stop_lr:
                    stop = True
                    break
                lr, bad = lr * self.factor, 0
        return lr, stop

    def __call__(self, epoch: int) -> float:
        if epoch > len(self.values):
            raise ConfigError(
                f"the plateau schedule needs the {self.monitor!r} of epochs 1..{epoch} to give η for epoch "
                f"{epoch + 1} but has seen {len(self.values)}; call schedule.observe(history) after each epoch "
                "(fit does)."
            )
        return self._replay(epoch)[0]

    def should_stop(self) -> bool:
        return self._replay(len(self.values))[1]

    def config(self) -> dict[str, Any]:
        return {"kind": "plateau", "lr": self.lr, "patience": self.patience, "factor": self.factor, "tol": self.tol,
                "monitor": self.monitor, "stop_lr": self.stop_lr}

    def __repr__(self) -> str:
        return f"plateau({self.lr}, patience={self.patience}, factor={self.factor}, tol={self.tol}, monitor={self.monitor!r})"


def constant(lr: float) -> Constant:
    return Constant(lr)


def step(lr: float, every: int, gamma: float = 0.1) -> StepDecay:
    return StepDecay(lr, every, gamma)


def exponential(lr: float, gamma: float) -> ExponentialDecay:
    return ExponentialDecay(lr, gamma)


def invscaling(lr: float, power_t: float = 0.5, samples_per_epoch: int = 1) -> InvScaling:
    return InvScaling(lr, power_t, samples_per_epoch)


def warmup_cosine(lr: float, epochs: int, warmup: int = 0, min_lr: float = 0.0) -> WarmupCosine:
    return WarmupCosine(lr, epochs, warmup, min_lr)


def one_cycle(
    max_lr: float, epochs: int, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4,
    anneal: str = "cos", three_phase: bool = False,
) -> OneCycle:
    return OneCycle(max_lr, epochs, pct_start, div_factor, final_div_factor, anneal, three_phase)


def plateau(
    lr: float, patience: int = 10, factor: float = 0.2, tol: float = 1e-4, monitor: str = "cost", stop_lr: float = 1e-6,
) -> ReduceOnPlateau:
    return ReduceOnPlateau(lr, patience, factor, tol, monitor, stop_lr)


_KINDS = {"constant": Constant, "step": StepDecay, "exponential": ExponentialDecay, "invscaling": InvScaling,
          "warmup_cosine": WarmupCosine, "one_cycle": OneCycle, "plateau": ReduceOnPlateau}


def as_schedule(lr: float | Schedule) -> Schedule:
    """A number becomes :class:`Constant`; a callable is used as it is."""
    if callable(lr):
        return lr
    return Constant(lr)


def from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from its ``config()`` (checkpoints)."""
    args = dict(config)
    kind = args.pop("kind", None)
    if kind not in _KINDS:
        raise ConfigError(f"unknown schedule kind {kind!r}; expected one of {', '.join(_KINDS)}.")
    try:
        return _KINDS[kind](**args)
    except TypeError as exc:  # a setting the class does not take: a damaged or foreign file
        raise ConfigError(f"the {kind!r} schedule's saved settings {sorted(args)} do not fit: {exc}") from None


def schedule_config(schedule: Schedule) -> dict[str, Any] | None:
    """``schedule.config()`` for the built-in schedules, None for an arbitrary callable."""
    config = getattr(schedule, "config", None)
    return config() if callable(config) else None


def observe(schedule: Schedule, history: Any) -> bool:
    """Give a history-reading schedule (:class:`ReduceOnPlateau`) the epochs so far; True when it asks
    training to stop. ``fit`` calls this after every epoch and once before the first (resume)."""
    feed = getattr(schedule, "observe", None)
    if not callable(feed):
        return False
    feed(history)
    return bool(schedule.should_stop())  # type: ignore[attr-defined]
