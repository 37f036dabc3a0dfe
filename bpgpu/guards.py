"""Turning device out-of-memory failures into :class:`~bpgpu.errors.OutOfMemoryError`.

The training loop wraps its steps once (no per-batch cost) and calls :func:`raise_if_out_of_memory`
in its ``except`` clause::

    try:
        for batch in ...: step(...)
    except Exception as exc:
        raise_if_out_of_memory(exc, net, batch_size)
        raise

CuPy's ``cupy.cuda.memory.OutOfMemoryError`` subclasses ``MemoryError``; torch's
``torch.OutOfMemoryError`` is a ``RuntimeError`` whose message says "out of memory". The backprop step
computes every gradient before any parameter is touched, so an allocation failure there (where the
batch's activations take nearly all the memory) leaves the weights as they were before the step and
the network usable with a smaller batch.
"""

from __future__ import annotations

from typing import Any

from bpgpu.errors import OutOfMemoryError


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a host or device allocation failure (NumPy, CuPy, torch, CUDA runtime)."""
    if isinstance(exc, MemoryError):  # NumPy, cupy.cuda.memory.OutOfMemoryError
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (a RuntimeError)
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "cudaerrormemoryallocation" in text)


def out_of_memory_error(exc: BaseException, sizes: list[int], batch_size: int, device: str) -> OutOfMemoryError:
    """The bpgpu error for ``exc``: names the batch size, the layer sizes and the device, suggests a fix."""
    smaller = max(1, int(batch_size) // 2)
    return OutOfMemoryError(
        f"{device} ran out of memory training sizes={list(sizes)} with batch_size={batch_size} "
        f"({type(exc).__name__}: {str(exc)[:200]}). Try a smaller batch (e.g. batch_size={smaller}), "
        "smaller layers, or dtype='float32'. The network stays usable."
    )


def raise_if_out_of_memory(exc: BaseException, net: Any, batch_size: int) -> None:
    """Raise :class:`OutOfMemoryError` (chained to ``exc``) if ``exc`` is an allocation failure."""
    if isinstance(exc, OutOfMemoryError):
        raise exc
    if is_out_of_memory(exc):
        raise out_of_memory_error(exc, net.sizes, batch_size, net.backend.label) from exc
