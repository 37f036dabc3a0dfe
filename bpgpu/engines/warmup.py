"""The first-use cost, measured apart from training: on a GPU the first step compiles every kernel
the step launches (NVRTC, ~20 kernels; CuPy caches them on disk, so later runs skip it) and loads
cuBLAS; reported inside epoch 1's time it would make the first epoch look several seconds slow.

:func:`warm_up` runs one training step, one gradient and one inference pass of a *stand-in* network
that launches the same kernels as ``net`` — same depth, activations, cost, dtype, precision, device
and optimizer type, but two units a layer and two rows — through the same engine ``fit`` would use,
then waits for the device. ``net`` and ``optimizer`` are untouched: their parameters, state and step
count stay as they were. CuPy compiles a kernel per (source, dtype, dimensionality), not per size, so
the stand-in's step compiles what ``net``'s will use; cuBLAS picks its algorithms per shape at run
time (no compile). ``bpgpu train`` prints the time before epoch 1.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from bpgpu.backend.arrays import to_backend


def stand_in(net: Any) -> Any:
    """A two-units-a-layer network with ``net``'s activations, cost, dtype, precision and backend."""
    from bpgpu.network import MLP

    sizes = [2] * (len(net.sizes) - 1) + [1 if net.sizes[-1] == 1 else 2]
    small = MLP(sizes, hidden=net.hidden.name, output=net.output, cost=net.cost_name, dtype=net.dtype_name,
                device=net.backend, seed=0)
    if hasattr(net, "precision"):
        small.precision = net.precision
    return small


def warm_up(net: Any, optimizer: Any = None, batch_size: int = 2) -> float:
    """Seconds spent compiling and loading what ``net``'s training step needs (see the module
    docstring); nothing of ``net`` or ``optimizer`` changes."""
    from bpgpu.engines import StepConfig, make_engine
    from bpgpu.training.optimizers import SGD

    started = time.perf_counter()
    small = stand_in(net)
    opt = copy.copy(optimizer) if optimizer is not None else SGD(0.1)
    opt.state, opt.steps = {}, 0  # the copy gets its own (small) state; the original's is untouched
    rows = max(2, min(int(batch_size), 2))
    host_x = np.linspace(0.0, 1.0, rows * small.sizes[0]).reshape(rows, small.sizes[0])
    n_out = small.sizes[-1]
    labels = np.arange(rows) % max(n_out, 2)
    targets = {"softmax": labels, "identity": host_x[:, :n_out]}.get(
        small.output, labels if n_out == 1 else np.eye(n_out)[labels])  # sigmoid: 0/1 labels or rows
    with net.backend.activate():
        x = small.as_features(host_x)
        y = small.as_targets(targets, rows)
        engine = make_engine(small, opt, StepConfig(batch_size=rows, record_grad_norms=True))
        engine.start_epoch()
        engine.step(x, y, to_backend(np.arange(rows), small.backend))
        engine.end_epoch()
        engine.gradients(x, y)
        engine.outputs(x)
        net.backend.synchronize()
    return time.perf_counter() - started
