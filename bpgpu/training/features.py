"""fit's options for the training features of issue 11 — gradient clipping, dropout, class weights —
checked once, in fit's terms, and turned into the step engine's :class:`~bpgpu.engines.StepConfig`
fields (the engines implement them; see :mod:`bpgpu.math.clipping`, :mod:`bpgpu.math.dropout`,
:mod:`bpgpu.training.class_weights`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bpgpu.backend.dropout import check_rate
from bpgpu.errors import ConfigError
from bpgpu.validation import check_positive


@dataclass
class Features:
    class_weight: Any = None          # {class: weight} or "balanced"
    clip_norm: float | None = None    # largest global gradient norm (torch's clip_grad_norm_)
    clip_value: float | None = None   # largest |gradient entry| (torch's clip_grad_value_)
    dropout: float = 0.0              # probability of dropping a hidden unit in training

    def checked(self, net: Any) -> "Features":
        """The same options validated for ``net`` (ConfigError / TypeError naming fit's argument)."""
        if self.dropout and len(net.sizes) < 3 and check_rate(self.dropout, "dropout"):
            raise ConfigError(f"dropout applies to hidden layers, and this network ({net.sizes}) has none; "
                              "leave dropout=0 or add a hidden layer.")
        return Features(
            self.class_weight,
            None if self.clip_norm is None else check_positive(self.clip_norm, "clip_norm"),
            None if self.clip_value is None else check_positive(self.clip_value, "clip_value"),
            check_rate(self.dropout, "dropout"),
        )

    def step_config(self) -> dict[str, Any]:
        """The StepConfig fields these options set."""
        return {"clip_norm": self.clip_norm, "clip_value": self.clip_value, "dropout": self.dropout}
