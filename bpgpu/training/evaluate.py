"""Inference in batches: ``evaluate`` (cost, accuracy), ``predict`` (labels) and ``predict_proba``.

Rows are fed ``batch_size`` at a time (through the network's step engine, ``net.engine().outputs``)
so a huge input never materialises all activations at once; sums stay on the device and are read
once at the end. Array API only.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from bpgpu.validation import check_int

EVAL_BATCH = 4096


def _check_batch(batch_size: int) -> int:
    return check_int(batch_size, "batch_size", 1)  # TypeError for non-integers, ConfigError below 1


def _outputs(net: Any, x: Any, batch_size: int) -> Any:
    """A^L for device rows ``x``, computed ``batch_size`` rows at a time."""
    xp, engine = net.xp, net.engine()
    parts = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:min(start + batch_size, x.shape[0]), :]
        parts.append(engine.outputs(xb)[1])
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def labels_from_outputs(output: str, a: Any) -> Any:
    """Class labels from A^L: argmax over several softmax or sigmoid units (Nielsen's ``evaluate``),
    a ≥ 0.5 for a single sigmoid unit; identity outputs are returned unchanged (regression)."""
    xp = array_namespace(a)
    if output == "identity":
        return a
    if a.shape[1] == 1:
        return xp.astype(a[:, 0] >= 0.5, xp.int64)
    return xp.argmax(a, axis=1)


def _correct(output: str, a: Any, y: Any) -> Any:
    """Number of correctly classified rows (a 0-d device array) or None for regression."""
    xp = array_namespace(a)
    if output == "identity":
        return None
    if a.shape[1] == 1:
        hit = (a[:, 0] >= 0.5) == (y[:, 0] >= 0.5)
    else:
        hit = xp.argmax(a, axis=1) == xp.argmax(y, axis=1)
    return xp.sum(xp.astype(hit, xp.int64))


def evaluate_arrays(net: Any, x: Any, y: Any, batch_size: int = EVAL_BATCH) -> dict[str, Any]:
    """``evaluate`` on rows already validated and on the device (``net.as_features`` / ``as_targets``)."""
    batch_size = _check_batch(batch_size)
    xp, engine = net.xp, net.engine()
    m = x.shape[0]
    total = xp.zeros((), dtype=net.dtype, device=net.device)
    correct = None
    for start in range(0, m, batch_size):
        stop = min(start + batch_size, m)
        xb, yb = x[start:stop, :], y[start:stop, :]
        z, a = engine.outputs(xb)
        total = total + xp.sum(net.objective.per_example(z, a, yb))
        hits = _correct(net.output, a, yb)
        if hits is not None:
            correct = hits if correct is None else correct + hits
    return {
        "cost": float(total) / m,
        "accuracy": None if correct is None else int(correct) / m,
        "n": int(m),
    }


def evaluate(net: Any, x: Any, y: Any, batch_size: int = EVAL_BATCH) -> dict[str, Any]:
    """``{"cost": mean cost, "accuracy": fraction correct (None for an identity output), "n": rows}``.

    Accuracy: argmax(A^L) = argmax(Y) for several output units (softmax, or sigmoid as in Nielsen's
    network.py); A^L ≥ 0.5 ⇔ Y ≥ 0.5 for a single sigmoid unit.
    """
    x = net.as_features(x)
    return evaluate_arrays(net, x, net.as_targets(y, x.shape[0]), batch_size)


def predict_proba(net: Any, x: Any, batch_size: int = EVAL_BATCH) -> Any:
    """The output activations A^L (class probabilities for softmax / sigmoid), on the device."""
    return _outputs(net, net.as_features(x), _check_batch(batch_size))


def predict(net: Any, x: Any, batch_size: int = EVAL_BATCH) -> Any:
    """Class labels (argmax over several units, threshold 0.5 for one sigmoid unit) or the raw outputs of an
    identity (regression) output, as a device array."""
    return labels_from_outputs(net.output, predict_proba(net, x, batch_size))
