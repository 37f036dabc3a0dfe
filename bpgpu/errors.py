"""bpgpu's exceptions. Each subclasses the built-in a caller would catch anyway."""

from __future__ import annotations


class BpgpuError(Exception):
    """Base class of every error bpgpu raises on purpose."""


class ConfigError(BpgpuError, ValueError):
    """An unknown or inconsistent setting (activation, cost, device name, sizes...)."""


class ShapeError(BpgpuError, ValueError):
    """An input whose shape does not fit the network."""


class DataError(BpgpuError, ValueError):
    """Input data that cannot be used: NaN/inf, labels out of range, wrong dtype, empty."""


class DeviceError(BpgpuError, RuntimeError):
    """A device that was asked for is not usable (CuPy missing, no driver, no GPU, compile failure)."""


class DeviceMismatchError(BpgpuError, ValueError):
    """An array that lives on another device or in another array library than the network."""


class DivergenceError(BpgpuError, FloatingPointError):
    """Training produced a NaN or infinite cost; the weights from before the bad step are kept."""


class ModelFileError(BpgpuError, ValueError):
    """A model or checkpoint file that is truncated, corrupted, of an unknown version or unsafe."""


class OutOfMemoryError(BpgpuError, MemoryError):
    """The device ran out of memory during training; the message names the batch size and layer sizes
    and suggests a smaller batch. The network stays usable (a failure in the forward/backward pass
    leaves the weights from before that step)."""


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` was stopped by SIGINT (Ctrl-C) or SIGTERM and left the network and optimizer at a step
    boundary (no half-applied update). Deliberately a ``KeyboardInterrupt``, not a ``BpgpuError``: an
    ``except Exception`` must not swallow a Ctrl-C. Attributes: ``signal`` ("SIGINT"/"SIGTERM"),
    ``epoch`` and ``batch`` (1-based: the last completed step), ``checkpoint`` (the path written on the
    way out, or None). ``bpgpu train`` catches it, saves what ``--save`` asked for and exits 128+signal."""

    def __init__(self, message: str, signal: str = "SIGINT", epoch: int | None = None, batch: int | None = None,
                 checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.signal, self.epoch, self.batch, self.checkpoint = signal, epoch, batch, checkpoint
