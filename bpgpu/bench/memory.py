"""Host peak memory: the kernel's resident-set high-water mark (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``), else the current RSS from psutil, else nothing."""

from __future__ import annotations

import os

_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Start a new RSS high-water mark; False where the platform cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process(os.getpid()).memory_info().rss)


def peak_rss_bytes() -> int | None:
    """The RSS high-water mark since the last ``reset_peak`` (or the current RSS where unknown)."""
    kib = _status_kib("VmHWM")
    return kib * 1024 if kib is not None else current_rss_bytes()
