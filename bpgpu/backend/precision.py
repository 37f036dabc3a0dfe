"""How float32 matrix products are computed: TF32 as an explicit opt-in, reported as CuPy really does it,
and the names of the training precisions (``float32``/``float64``, ``mixed16``, ``mixedbf16``).

TF32 (tensor-float-32: float32 range, a 10-bit mantissa, ~1e-3 relative error per product) makes
float32 GEMMs several times faster on Ampere and newer cards, at the cost of bpgpu's float32 parity
with the CPU (1e-5 of the largest gradient entry). bpgpu therefore keeps it OFF unless asked:
``MLP(tf32=True)`` or ``BPGPU_TF32=1``.

How CuPy decides (cupy/_core/_routines_linalg.pyx, CuPy 14): one process-wide compute type per dtype,
``COMPUTE_TYPE_TBD`` until the first float32 GEMM, which fixes it to ``COMPUTE_TYPE_TF32`` if the
environment variable ``CUPY_TF32`` is > 0 *at that moment* and to ``COMPUTE_TYPE_DEFAULT`` otherwise;
``cupy._core.set_compute_type`` changes it (TF32 only on compute capability ≥ 8.0, else a warning and
DEFAULT). ``tensordot_core_v11`` maps TF32 to cuBLAS ``CUBLAS_COMPUTE_32F_FAST_TF32`` and DEFAULT to
``CUBLAS_COMPUTE_32F``. So ``CUPY_TF32`` alone says little: what counts is the compute type read back
from CuPy, which is what :func:`tf32_report` gives (``bpgpu info``, every bench report).

bpgpu sets the float32 compute type for the duration of its own work (:func:`tf32_scope`, entered by a
network's operations) and restores the previous one after, so other CuPy code in the process keeps
its own choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any, Iterator

from bpgpu.errors import ConfigError

TF32_ENV = "BPGPU_TF32"
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no", "")
log = logging.getLogger("bpgpu")

# cupy/_core/_routines_linalg.pxd (cpdef enum) and the cuBLAS compute type each maps to for float32
# outputs in tensordot_core_v11.
COMPUTE_TYPES = {0: "COMPUTE_TYPE_TBD", 1: "COMPUTE_TYPE_DEFAULT", 2: "COMPUTE_TYPE_PEDANTIC",
                 3: "COMPUTE_TYPE_FP16", 4: "COMPUTE_TYPE_FP32", 5: "COMPUTE_TYPE_FP64",
                 6: "COMPUTE_TYPE_BF16", 7: "COMPUTE_TYPE_TF32"}
COMPUTE_DEFAULT, COMPUTE_TF32 = 1, 7
CUBLAS_FLOAT32 = {1: "CUBLAS_COMPUTE_32F", 2: "CUBLAS_COMPUTE_32F_PEDANTIC", 7: "CUBLAS_COMPUTE_32F_FAST_TF32"}

# Training precisions: the dtype of the math, the dtype of the master weights.
PRECISIONS = {
    "float32": ("float32", "float32"),
    "float64": ("float64", "float64"),
    "mixed16": ("float16", "float32"),    # float16 compute, float32 masters, dynamic loss scaling
    "mixedbf16": ("bfloat16", "float32"),  # bfloat16 compute (range of float32: scaling rarely acts)
}


def tf32_requested(tf32: Any = None) -> bool:
    """Whether TF32 is asked for: an explicit ``tf32=`` (True/False) wins, then ``BPGPU_TF32``, else off."""
    if tf32 is not None:
        if not isinstance(tf32, bool):
            raise ConfigError(f"tf32 must be True, False or None (use {TF32_ENV}); got {tf32!r}.")
        return tf32
    value = os.environ.get(TF32_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{TF32_ENV}={os.environ[TF32_ENV]!r} is not understood; use 1 (TF32 on) or 0 (off, the default).")


def check_precision(precision: Any, name: str = "precision") -> str:
    """``precision`` as one of :data:`PRECISIONS` (case-insensitive); the error lists them."""
    if not isinstance(precision, str) or precision.lower() not in PRECISIONS:
        raise ConfigError(f"{name}={precision!r} is not a precision bpgpu knows; valid: {', '.join(PRECISIONS)}.")
    return precision.lower()


def _cupy_core() -> Any:
    import cupy

    return cupy._core  # get_compute_type / set_compute_type, public in cupy._core since CuPy 8


def cupy_compute_type() -> int:
    """CuPy's float32 compute type now (deciding it from ``CUPY_TF32``, as the first GEMM would, if
    still undecided)."""
    import numpy

    return int(_cupy_core().get_compute_type(numpy.float32))


def _set_cupy_compute_type(value: int) -> int:
    """Set CuPy's float32 compute type; returns what CuPy actually took (DEFAULT on a pre-Ampere card)."""
    import numpy

    core = _cupy_core()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        core.set_compute_type(numpy.float32, value)
    for w in caught:
        log.warning("TF32 was asked for, but %s: float32 products run in full float32", w.message)
    return int(core.get_compute_type(numpy.float32))


def _has_compute_type_api() -> bool:
    """CuPy's ``_core.get_compute_type``/``set_compute_type`` are there (not in the CuPy test double)."""
    import sys

    core = getattr(sys.modules.get("cupy"), "_core", None)
    return hasattr(core, "get_compute_type") and hasattr(core, "set_compute_type")


@contextlib.contextmanager
def tf32_scope(backend: Any, enabled: bool) -> Iterator[None]:
    """CuPy's float32 GEMMs in TF32 (``enabled``) or full float32 for the block, then as they were.
    A no-op for backends other than CuPy (NumPy, torch on the CPU, array-api-strict have no TF32)."""
    if getattr(backend, "name", None) != "cupy" or not _has_compute_type_api():
        yield
        return
    before = cupy_compute_type()
    wanted = COMPUTE_TF32 if enabled else COMPUTE_DEFAULT
    if before != wanted:
        _set_cupy_compute_type(wanted)
    try:
        yield
    finally:
        if before != wanted:
            _set_cupy_compute_type(before)


@contextlib.contextmanager
def cupy_device_scope(backend: Any) -> Iterator[None]:
    """``Backend.activate()`` for CuPy: the backend's GPU as the current device and its TF32 choice
    (``backend.tf32``) as CuPy's float32 compute type, both restored on exit."""
    import cupy

    with cupy.cuda.Device(backend.device.id), tf32_scope(backend, backend.tf32):
        yield


def tf32_report(gpu_usable: bool, requested: bool | None = None) -> dict[str, Any]:
    """What ``bpgpu info`` and the bench reports print about TF32: what bpgpu will use (``requested``,
    default from ``BPGPU_TF32``), CuPy's own process-wide float32 compute type read back from CuPy and
    the cuBLAS compute type it maps to, and torch's setting when torch sees a GPU."""
    try:
        bpgpu_tf32 = tf32_requested(requested)
        rep: dict[str, Any] = {"bpgpu": "on" if bpgpu_tf32 else "off",
                               "bpgpu_source": ("tf32=" if requested is not None else
                                                f"{TF32_ENV}={os.environ[TF32_ENV]!r}" if os.environ.get(TF32_ENV)
                                                else "default (off)")}
    except ConfigError as exc:
        rep = {"bpgpu": f"error: {exc}"}
        bpgpu_tf32 = False
    rep["CUPY_TF32"] = os.environ.get("CUPY_TF32", "unset")
    if gpu_usable:
        try:
            ct = cupy_compute_type()
            rep["cupy_float32_compute_type"] = COMPUTE_TYPES.get(ct, str(ct))
            rep["cublas_float32_compute_type"] = CUBLAS_FLOAT32.get(ct, "CUBLAS_COMPUTE_32F")
            rep["bpgpu_cublas_float32_compute_type"] = CUBLAS_FLOAT32[COMPUTE_TF32 if bpgpu_tf32 else COMPUTE_DEFAULT]
        except Exception as exc:  # a CuPy without the API: say so rather than guess from the variable
            rep["cupy_float32_compute_type"] = f"unknown ({type(exc).__name__}: {exc})"
    else:
        rep["cupy_float32_compute_type"] = "no usable GPU"
    torch_rep = _torch_tf32()
    if torch_rep:
        rep["torch_float32_matmul"] = torch_rep
    return rep


def _torch_tf32() -> str | None:
    """torch's float32 matmul precision where torch is imported and sees a GPU (the bench's peer)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return f"{torch.get_float32_matmul_precision()} (allow_tf32={torch.backends.cuda.matmul.allow_tf32})"


def tf32_summary(report: dict[str, Any]) -> str:
    """One line of :func:`tf32_report` for a table cell or ``bpgpu info``."""
    text = f"bpgpu {report['bpgpu']}" + (f" ({report['bpgpu_source']})" if report.get("bpgpu_source") else "")
    ct = report.get("cupy_float32_compute_type")
    if ct and ct != "no usable GPU":
        text += f"; CuPy now {ct} = {report.get('cublas_float32_compute_type', '?')}"
    text += f"; CUPY_TF32={report['CUPY_TF32']}"
    return text


def network_precision(precision: Any, dtype_name: str, backend: Any) -> str:
    """What ``MLP(precision=...)`` stores: the dtype's name for plain training (None, or the dtype
    itself), or a mixed precision checked against the masters' dtype and the backend (ConfigError)."""
    if precision is None:
        return dtype_name
    precision = check_precision(precision)
    if precision in ("float32", "float64"):
        if precision != dtype_name:
            raise ConfigError(f"precision={precision!r} contradicts dtype={dtype_name!r}; give one of them "
                              f"(precision='mixed16' trains float32 masters with float16 math).")
        return precision
    if dtype_name != "float32":
        raise ConfigError(f"precision={precision!r} keeps float32 master weights; the network has dtype="
                          f"{dtype_name!r}: use dtype='float32'.")
    from bpgpu.engines.mixed import compute_dtype

    compute_dtype(backend, precision)  # the backend has the compute dtype, or a ConfigError says which do
    return precision
