"""Initial weights, drawn on the host with ``numpy.random.default_rng(seed)`` in float64.

The standard has no RNG; drawing on the host and moving the arrays makes one seed give the same
starting weights on every backend (to the precision of the chosen dtype).
"""

from __future__ import annotations

import numpy as np

from bpgpu.errors import ConfigError

INITS = ("nielsen", "glorot", "he")
DEFAULT_INIT = {"sigmoid": "nielsen", "tanh": "glorot", "identity": "glorot", "relu": "he"}


def default_init(hidden: str) -> str:
    """He for ReLU, Glorot for tanh/identity, Nielsen's N(0, 1/√n_in) for sigmoid."""
    return DEFAULT_INIT[hidden]


def initial_parameters(
    sizes: list[int], init: str, seed: int | np.random.Generator | None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Host float64 (weights, biases): W^l shaped (n_l, n_{l−1}), b^l shaped (n_l,), drawn from
    ``numpy.random.default_rng(seed)``.

    nielsen: W ~ N(0, 1/n_in), b ~ N(0, 1)      (Nielsen, network2 "default_weight_initializer")
    glorot:  W ~ U(±√(6/(n_in+n_out))), b = 0   (Glorot & Bengio 2010)
    he:      W ~ N(0, 2/n_in), b = 0            (He et al. 2015)
    """
    if init not in INITS:
        raise ConfigError(f"init={init!r} is not an initialiser bpgpu knows; valid: {', '.join(INITS)}.")
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        if init == "nielsen":
            w = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
            b = rng.standard_normal(n_out)
        elif init == "glorot":
            r = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-r, r, (n_out, n_in))
            b = np.zeros(n_out)
        else:
            w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
            b = np.zeros(n_out)
        weights.append(w)
        biases.append(b)
    return weights, biases


# -- shuffling: host-side permutations whose position can be saved and restored (checkpoints) ------

def shuffle_rng(seed: int | None) -> np.random.Generator:
    """The host generator ``fit`` shuffles with: ``numpy.random.default_rng(seed)`` (PCG64); a bad
    ``seed`` is a ConfigError naming fit's ``seed``."""
    from bpgpu.validation import check_seed

    return np.random.default_rng(check_seed(seed, "seed"))


def fresh_seed() -> int:
    """A random seed below 2**52 (exact in a float64, so a communicator can share it as a scalar)."""
    return int(np.random.default_rng().integers(0, 2**52))


def permutation(rng: np.random.Generator | None, m: int) -> np.ndarray:
    """Host int64 indices 0…m−1, shuffled by ``rng`` (in order when ``rng`` is None)."""
    if rng is None:
        return np.arange(m, dtype=np.int64)
    return rng.permutation(m).astype(np.int64)


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's position as a JSON-serialisable dict (Python ints are arbitrary precision)."""
    return rng.bit_generator.state


# The bit generators a saved state may name, by a fixed table: a name read from a file never selects
# code by lookup (``getattr(numpy.random, name)`` would let a checkpoint call ``numpy.random.seed``).
# fit only ever draws with default_rng (PCG64), so that is the one entry.
BIT_GENERATORS = {"PCG64": np.random.PCG64}


def rng_from_state(state: dict) -> np.random.Generator:
    """A generator that continues exactly where the one ``state`` was taken from stood.

    ``state`` comes from a file: its ``bit_generator`` must be one of :data:`BIT_GENERATORS` and the
    state must be accepted by that generator (ConfigError otherwise, never a raw OverflowError)."""
    if not isinstance(state, dict):
        raise ConfigError(f"the saved RNG state must be a JSON object; got {state!r:.80}.")
    name = state.get("bit_generator", "PCG64")
    if not isinstance(name, str) or name not in BIT_GENERATORS:
        raise ConfigError(
            f"the saved RNG state names the bit generator {name!r:.40}, which bpgpu does not restore; "
            f"allowed: {', '.join(BIT_GENERATORS)}."
        )
    gen = BIT_GENERATORS[name]()
    try:
        gen.state = state
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise ConfigError(f"the saved {name} RNG state is not valid ({type(exc).__name__}: {exc}).") from None
    return np.random.Generator(gen)
