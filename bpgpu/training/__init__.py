"""Training: optimizers, learning-rate schedules, the ``fit`` loop, early stopping and inference.
Array API only: nothing here imports numpy, cupy or torch (host work lives in ``bpgpu.backend``)."""

from bpgpu.training import schedules
from bpgpu.training.early_stopping import EarlyStopping
from bpgpu.training.evaluate import evaluate, predict, predict_proba
from bpgpu.training.history import History
from bpgpu.training.loop import fit
from bpgpu.training.optimizers import SGD, Adam, AdamW, Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "EarlyStopping", "History", "fit", "evaluate", "predict", "predict_proba", "schedules"]
