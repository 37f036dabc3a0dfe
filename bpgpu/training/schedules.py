"""Learning-rate schedules: callables ``epoch -> η`` (epochs count from 0).

Each is a small class with ``config()`` so a checkpoint can rebuild it; any other callable
``epoch -> float`` works too (but then a resumed run needs the optimizer passed again).

    constant(η0):                 η(e) = η0
    step(η0, every, gamma):       η(e) = η0 · gamma^⌊e / every⌋
    exponential(η0, gamma):       η(e) = η0 · gamma^e
"""

from __future__ import annotations

from typing import Any, Callable

from bpgpu.errors import ConfigError
from bpgpu.validation import check_positive

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


def constant(lr: float) -> Constant:
    return Constant(lr)


def step(lr: float, every: int, gamma: float = 0.1) -> StepDecay:
    return StepDecay(lr, every, gamma)


def exponential(lr: float, gamma: float) -> ExponentialDecay:
    return ExponentialDecay(lr, gamma)


_KINDS = {"constant": Constant, "step": StepDecay, "exponential": ExponentialDecay}


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
    return _KINDS[kind](**args)


def schedule_config(schedule: Schedule) -> dict[str, Any] | None:
    """``schedule.config()`` for the built-in schedules, None for an arbitrary callable."""
    config = getattr(schedule, "config", None)
    return config() if callable(config) else None
