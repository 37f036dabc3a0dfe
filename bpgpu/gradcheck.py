"""``gradcheck``: backprop's gradients against central finite differences, computed in float64."""

from __future__ import annotations

from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend, to_host
from bpgpu.math import backprop as bp
from bpgpu.validation import check_int, check_positive, check_seed


def _relu_kink_distance(net: Any, x: Any) -> float:
    """Smallest |z| over the hidden ReLU layers (inf when the hidden activation has no kink)."""
    if net.hidden.name != "relu" or len(net.weights) < 2:
        return float("inf")
    xp, a, smallest = net.xp, x, float("inf")
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        z = a @ w.T + b
        smallest = min(smallest, float(xp.min(xp.abs(z))))
        a = net.hidden.forward(z)
    return smallest


def gradcheck(  # noqa: PLR0913 - the public signature
    net: Any, x: Any, y: Any, eps: float = 1e-6, max_entries: int = 24, directions: int = 4,
    seed: int = 0, verbose: bool = False, kink_margin: float = 1e-4, kink_retries: int = 10,
    floor: float = 1e-8,
) -> dict[str, float]:
    """Worst relative error |numeric − analytic| / max(|numeric|, |analytic|, floor) per parameter array.

    The gradients of a float64 copy of ``net`` (same backend, through its step engine) are compared
    with central differences of the reference cost (``bpgpu.math.backprop.cost_value``): each array gets up to ``max_entries``
    entries checked one by one (all of them when it is that small), then ``directions`` random unit
    directions over all parameters are checked at once (as Chainer's ``check_backward`` does), which
    covers large networks. ``floor`` is the gradient size below which errors count as absolute (the
    differences' rounding noise, about 1e-16·|C|/eps, swamps a relative comparison there). Inputs
    whose hidden ReLU pre-activations lie within ``kink_margin`` of 0,
    where the derivative does not exist, are re-drawn with a small jitter. Returns ``{"W1": err,
    "b1": err, …, "direction": err}``; ``verbose`` prints it.
    """
    with net.backend.activate():  # the network's device is the current one (CuPy)
        return _gradcheck(net, x, y, eps, max_entries, directions, seed, verbose, kink_margin, kink_retries, floor)


def _gradcheck(net: Any, x: Any, y: Any, eps: float, max_entries: int, directions: int, seed: int, verbose: bool,
               kink_margin: float, kink_retries: int, floor: float) -> dict[str, float]:
    eps, floor = check_positive(eps, "eps"), check_positive(floor, "floor")
    max_entries, directions = check_int(max_entries, "max_entries", 0), check_int(directions, "directions", 0)
    rng = np.random.default_rng(check_seed(seed))
    ref = net.copy(dtype="float64")
    x = ref.as_features(x)
    y = ref.as_targets(y, x.shape[0])
    host_x = np.array(to_host(x))
    for _ in range(kink_retries):
        if _relu_kink_distance(ref, x) > kink_margin:
            break
        host_x = host_x + rng.normal(0.0, 1e-2, host_x.shape)
        x = to_backend(host_x, ref.backend, ref.dtype)
    _, grad_w, grad_b = ref.engine().gradients(x, y)  # the network's step engine: what fit and backprop use
    params = ref.weights + ref.biases
    grads = [np.array(to_host(g)) for g in grad_w + grad_b]
    host = [np.array(to_host(p)) for p in params]
    n = len(ref.weights)
    names = [f"W{l + 1}" for l in range(n)] + [f"b{l + 1}" for l in range(n)]

    def cost_with(replaced: dict[int, np.ndarray]) -> float:
        arrays = [to_backend(replaced[i], ref.backend, ref.dtype) if i in replaced else p for i, p in enumerate(params)]
        return float(bp.cost_value(arrays[:n], arrays[n:], ref.hidden, ref.objective, x, y))  # the reference C

    def rel(numeric: float, analytic: float) -> float:
        return abs(numeric - analytic) / max(abs(numeric), abs(analytic), floor)

    report: dict[str, float] = {}
    for i, (name, p, g) in enumerate(zip(names, host, grads)):
        flat = np.arange(p.size)
        picks = flat if p.size <= max_entries else rng.choice(flat, max_entries, replace=False)
        worst = 0.0
        for k in picks:
            idx = np.unravel_index(k, p.shape)
            plus, minus = p.copy(), p.copy()
            plus[idx] += eps
            minus[idx] -= eps
            numeric = (cost_with({i: plus}) - cost_with({i: minus})) / (2 * eps)
            worst = max(worst, rel(numeric, float(g[idx])))
        report[name] = worst
    worst = 0.0
    for _ in range(directions):
        d = [rng.standard_normal(p.shape) for p in host]
        norm = np.sqrt(sum(float(np.sum(v * v)) for v in d))
        d = [v / norm for v in d]
        plus = {i: p + eps * v for i, (p, v) in enumerate(zip(host, d))}
        minus = {i: p - eps * v for i, (p, v) in enumerate(zip(host, d))}
        numeric = (cost_with(plus) - cost_with(minus)) / (2 * eps)
        analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, d))
        worst = max(worst, rel(numeric, analytic))
    if directions:
        report["direction"] = worst
    if verbose:
        print("gradcheck (float64, central differences, eps=%g) on %s" % (eps, ref.backend.label))
        for name, err in report.items():
            print(f"  {name:>9}: worst relative error {err:.2e}")
    return report
