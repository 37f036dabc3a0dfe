"""Dropout masks, drawn on the host (the standard has no RNG) from a generator keyed by the run's seed,
the epoch and the batch — so one seed reproduces a run, a replayed or resumed epoch draws the same
masks, and every data-parallel rank draws the same full-batch masks and takes its own rows.

Inverted dropout with rate p: unit j of row i is kept with probability 1 − p, and its scale is
r_ij = 1/(1 − p) when kept, 0 when dropped (so E[r] = 1 and inference needs no rescaling).
"""

from __future__ import annotations

import numbers

import numpy as np

from bpgpu.errors import ConfigError


def check_rate(p: object, name: str = "dropout") -> float:
    """``p`` as a float in [0, 1) (ConfigError naming ``name`` otherwise)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ConfigError(
            f"{name} is the probability of dropping a hidden unit: a number in [0, 1), e.g. 0.2; got {p!r}."
        )
    return float(p)


def epoch_key(rng: np.random.Generator | None, seed: int | None, epoch: int) -> int:
    """The key of an epoch's masks: drawn from the shuffling generator (after the epoch's permutation,
    so checkpoints carry it), or from (seed, epoch) when fit does not shuffle."""
    if rng is not None:
        return int(rng.integers(0, 2**63 - 1))
    return int(np.random.SeedSequence([0 if seed is None else int(seed), int(epoch)]).generate_state(2, np.uint64)[0] >> 1)


def scales(key: int, batch: int, rows: int, widths: list[int], p: float) -> list[np.ndarray]:
    """r^l for each hidden layer of width ``widths[l]``: (rows, width) float64 arrays of 0 and 1/(1−p):
    unit kept where u ≥ p, u ~ U[0, 1) in float32 (2^-24 steps: ample for a rate) drawn by
    ``numpy.random.default_rng([key, batch])`` in layer order."""
    rng = np.random.default_rng([int(key), int(batch)])
    keep = 1.0 / (1.0 - p)
    return [np.multiply(rng.random((rows, n), dtype=np.float32) >= p, keep) for n in widths]
