"""One mini-batch step in scikit-learn's form (``BaseMultilayerPerceptron._backprop`` + its optimizers),
run by the network's step engine (:mod:`bpgpu.engines`: NumPy's flat buffers, CuPy's kernels, or the
generic array-API reference).

With sample weights s_i (S = Σ_batch s_i) scikit-learn minimises, per batch,

    C = Σ_i s_i C_i / S + (α / 2S) Σ_l ‖W^l‖²,

which is the engine's weighted step (BP1 rows scaled by s_i / S; without weights s_i = 1, S = m: the
batch mean) with weight decay α/S on the weights, set before each step. scikit-learn's Adam adds ε to
√v̂ · √(1 − β2^t) where bpgpu's (torch's) adds it to √v̂, so ε is set to ε / √(1 − β2^t) for step t:
the same update, bit for bit in exact arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

from bpgpu.engines import StepConfig, StepDiverged, make_engine


class Stepper:
    """Applies scikit-learn's per-batch update to a :class:`~bpgpu.sklearn._model.Model`."""

    def __init__(self, model: Any, settings: Any, batch_size: int) -> None:
        self.model = model
        self.alpha, self.beta_2, self.epsilon = settings.alpha, settings.beta_2, settings.epsilon
        self.adam = settings.solver == "adam"
        self.engine = make_engine(model.net, model.optimizer, StepConfig(batch_size=batch_size, record_grad_norms=False))

    def start_epoch(self) -> None:
        self.engine.start_epoch()

    def step(self, data: Any, rows: Any, total: float) -> None:
        """One update on rows ``rows`` of the training data (weights, if any, summing to ``total``)."""
        opt = self.model.optimizer
        opt.weight_decay = self.alpha / total          # ∂/∂W of (α/2S)‖W‖²
        if self.adam:
            t = getattr(opt, "steps", 0) + 1
            opt.eps = self.epsilon / math.sqrt(1.0 - self.beta_2**t)
        try:
            self.engine.step(data.x_train, data.y_train, rows, data.sw_train)
        except StepDiverged as exc:
            raise FloatingPointError(exc.what) from None

    def end_epoch(self) -> Any:
        """The engine's :class:`~bpgpu.engines.EpochStats` (one device→host read)."""
        return self.engine.end_epoch()
