"""Flatten a list of same-dtype arrays into one buffer (one collective instead of one per layer) and
split it back. Array API only: works for NumPy, CuPy, torch and array-api-strict alike."""

from __future__ import annotations

import math
from typing import Any, Sequence

import array_api_compat


def can_pack(arrays: Sequence[Any]) -> bool:
    """True when every array shares one namespace and dtype (gradients of one network do)."""
    if not arrays:
        return False
    try:
        array_api_compat.array_namespace(*arrays)
    except TypeError:  # arrays of different libraries
        return False
    return all(a.dtype == arrays[0].dtype for a in arrays)


def pack(arrays: Sequence[Any]) -> Any:
    """One contiguous 1-D array holding every array's elements in order (always a new array)."""
    xp = array_api_compat.array_namespace(*arrays)
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def unpack(flat: Any, like: Sequence[Any]) -> list[Any]:
    """Split ``flat`` back into arrays shaped like ``like``."""
    xp = array_api_compat.array_namespace(flat)
    out, start = [], 0
    for a in like:
        n = math.prod(a.shape)
        out.append(xp.reshape(flat[start:start + n], tuple(a.shape)))
        start += n
    return out
