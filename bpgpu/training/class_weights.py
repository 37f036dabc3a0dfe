"""``class_weight`` in ``fit``: a weight per class becomes a weight per row (times ``sample_weight``),
so BP1 scales row i by w_{c(i)}/Σw exactly as sample weights do (array API only).

    class_weight = {c: w_c}   rows of class c weigh w_c (classes not named weigh 1)
    class_weight = "balanced" w_c = n / (k · n_c), scikit-learn's rule (compute_class_weight)

The class of a row is its label: the index of the 1 in a softmax output's one-hot target row, the
0/1 target of a single sigmoid unit.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from bpgpu.backend.arrays import to_host
from bpgpu.errors import ConfigError, DataError


def row_classes(net: Any, y: Any) -> tuple[Any, int]:
    """(class index of every row (int64, on the device), number of classes) of targets ``y`` (m, n_L)."""
    xp, n_out = net.xp, net.sizes[-1]
    if net.output == "softmax" and n_out > 1:
        return xp.argmax(y, axis=1), n_out
    if net.output == "sigmoid" and n_out == 1:
        return xp.astype(y[:, 0] > 0.5, xp.int64), 2
    raise ConfigError(
        f"class_weight needs class labels: a softmax output or a single sigmoid unit; this network's output is "
        f"{n_out} {net.output} unit(s). Give per-row weights with sample_weight= instead."
    )


def class_row_weights(net: Any, class_weight: Any, y: Any, sample_weight: Any = None) -> Any:
    """Per-row weights w_{c(i)} (× sample_weight_i) on the device, for targets ``y`` already checked."""
    if class_weight is None:
        return sample_weight
    xp = net.xp
    classes, k = row_classes(net, y)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ConfigError(f"class_weight must be a dict {{class: weight}} or 'balanced'; got {class_weight!r}.")
        counts = to_host(xp.sum(xp.astype(classes[:, None] == xp.arange(k, device=net.device)[None, :], xp.int64), axis=0))
        counts = [int(c) for c in counts.tolist()]
        m = sum(counts)
        table = [m / (k * c) if c else 0.0 for c in counts]
    elif isinstance(class_weight, dict):
        table = [1.0] * k
        for c, w in class_weight.items():
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < k:
                raise ConfigError(
                    f"class_weight names class {c!r}, which this network does not have: its classes are the labels "
                    f"0…{k - 1}{' (0/1 for one sigmoid unit)' if k == 2 and net.sizes[-1] == 1 else ''}."
                )
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                raise ConfigError(f"class_weight[{c}] must be a finite number ≥ 0; got {w!r}.")
            table[int(c)] = float(w)
    else:
        raise ConfigError(f"class_weight must be a dict {{class: weight}} or 'balanced'; got {type(class_weight).__name__}.")
    weights = xp.take(xp.asarray(table, dtype=net.dtype, device=net.device), classes, axis=0)
    weights = weights if sample_weight is None else weights * sample_weight
    if not bool(xp.any(weights > 0)):  # one read, once per fit
        raise DataError("class_weight (with sample_weight) gives every row weight 0: nothing would be trained on; "
                        "give some class a weight > 0.")
    return weights
