"""bpgpu: multilayer perceptrons trained by backpropagation, written once against the Python array
API standard, on NumPy (CPU), CuPy (NVIDIA GPU) or any array-API library."""

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.backend.device import Backend, default_device, resolve
from bpgpu.errors import (
    BpgpuError,
    ConfigError,
    DataError,
    DeviceError,
    DeviceMismatchError,
    DivergenceError,
    ModelFileError,
    OutOfMemoryError,
    ShapeError,
    TrainingInterrupted,
)
from bpgpu.gradcheck import gradcheck
from bpgpu.network import MLP
from bpgpu.training import SGD, Adam, AdamW, EarlyStopping, History, fit, schedules
from bpgpu.io import load
from bpgpu.training.resume import Resume
from bpgpu import datasets
from bpgpu.plot import plot_history

__version__ = "0.1.0"

__all__ = [
    "MLP", "gradcheck", "default_device", "resolve", "Backend", "to_host", "to_backend",
    "BpgpuError", "ConfigError", "DataError", "DeviceError", "DeviceMismatchError",
    "DivergenceError", "ModelFileError", "OutOfMemoryError", "ShapeError", "TrainingInterrupted", "__version__",
    "SGD", "Adam", "AdamW", "EarlyStopping", "History", "fit", "schedules", "load", "datasets", "plot_history", "Resume",
]
