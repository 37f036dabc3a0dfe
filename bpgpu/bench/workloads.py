"""The benchmark workloads (issue 4) and their synthetic, seeded host data (no downloads)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One MLP training setup: architecture, objective, batch size and epoch length."""

    name: str
    sizes: tuple[int, ...]
    hidden: str
    output: str
    cost: str
    batch: int
    samples: int  # one epoch
    lr: float = 0.1

    @property
    def steps(self) -> int:
        """Batches per epoch (the last partial batch is dropped: every contender sees full batches)."""
        return self.samples // self.batch

    def gemm_flops(self) -> float:
        """Floating-point operations of the matrix products of one training step."""
        m, total = self.batch, 0.0
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            products = 3 if l > 0 else 2  # forward, ∂W, and Δ·W (not needed for the first layer)
            total += products * 2.0 * m * n_in * n_out
        return total

    def label(self) -> str:
        sizes = ",".join(map(str, self.sizes))
        return f"[{sizes}] {self.hidden}/{self.output}+{self.cost} batch {self.batch}"


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", (784, 30, 10), "sigmoid", "sigmoid", "quadratic", 10, 50_000, lr=3.0),
    "W2": Workload("W2", (784, 256, 256, 10), "relu", "softmax", "cross_entropy", 128, 60_000, lr=0.05),
    "W3": Workload("W3", (1024, 4096, 4096, 1024, 10), "relu", "softmax", "cross_entropy", 512, 16_384, lr=0.01),
}


def sweep_workload(width: int, batch: int, steps: int) -> Workload:
    """A width × batch point of the CPU/GPU crossover sweep: [784, w, w, 10], ReLU, softmax + CE."""
    return Workload(f"sweep-w{width}-b{batch}", (784, width, width, 10), "relu", "softmax", "cross_entropy",
                    batch, batch * steps, lr=0.01)


def sweep_grid(full: bool, gpu: bool) -> tuple[list[int], list[int], float]:
    """Widths, batch sizes and a per-step GEMM-flop cap for the sweep.

    On a GPU the whole 64…8192 × 1…4096 grid is run; on the CPU it is subsampled and points whose step
    would exceed the flop cap (seconds per step on a few cores) are left out and reported as such."""
    if gpu:
        return [64, 128, 256, 512, 1024, 2048, 4096, 8192], [1, 4, 16, 64, 256, 1024, 4096], float("inf")
    if full:
        return [64, 256, 1024, 4096, 8192], [1, 16, 256, 4096], 1.2e11
    return [64, 1024], [16, 256], 2e9


def scaled(workload: Workload, samples: int) -> Workload:
    """The same workload measured on fewer samples (the epoch time is scaled up to ``workload.samples``)."""
    return replace(workload, samples=min(samples, workload.samples))


def make_data(workload: Workload, n: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` synthetic examples on the host: features U[0,1), integer labels and their one-hot rows."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, workload.sizes[0]), dtype=np.float32).astype(dtype, copy=False)
    labels = rng.integers(0, workload.sizes[-1], n)
    onehot = np.zeros((n, workload.sizes[-1]), dtype=dtype)
    onehot[np.arange(n), labels] = 1
    return x, labels, onehot
