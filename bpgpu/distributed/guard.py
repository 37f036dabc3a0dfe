"""A rank that raises must stop every rank: the others would otherwise wait forever in the next
collective (and a plain interpreter exit can block in ``MPI_Finalize``). Two tools:

* :func:`abort_on_error` — a context manager: any exception (or a non-zero ``SystemExit``) inside it
  prints ``rank r/n: <traceback>`` to stderr and calls ``comm.abort(1)``, which makes the launcher
  (mpirun) end every rank with a non-zero exit status. With one process it simply re-raises.
* :func:`install_excepthook` — the same for uncaught exceptions anywhere in a script
  (``MPIComm`` and ``NCCLComm`` install it when there is more than one rank).
"""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Iterator

_installed_for: list[Any] = []


def flush_std_streams() -> None:
    """Flush stdout and stderr before an abort, ignoring streams that are already closed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream must not stop the abort
            pass


def report_and_abort(comm: Any, exc: BaseException, code: int = 1) -> None:
    """Print the traceback of ``exc`` prefixed with the rank, flush, and abort every rank."""
    from bpgpu.errors import BpgpuError

    header = f"bpgpu: rank {comm.rank} of {comm.size} raised {type(exc).__name__}; aborting all ranks\n"
    if isinstance(exc, BpgpuError):  # an error bpgpu raised on purpose: its message says it all
        lines = [f"{type(exc).__name__}: {exc}\n"]
    else:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    try:
        sys.stdout.flush()
        sys.stderr.write(header + "".join(f"[rank {comm.rank}] {line}" for line in "".join(lines).splitlines(True)))
        sys.stderr.flush()
    finally:
        comm.abort(code)


@contextmanager
def abort_on_error(comm: Any) -> Iterator[None]:
    """Run the body; if it raises on any rank of a multi-rank ``comm``, abort every rank."""
    try:
        yield
    except SystemExit as exc:
        if comm.size > 1 and exc.code not in (None, 0):
            report_and_abort(comm, exc, exc.code if isinstance(exc.code, int) else 1)
        raise
    except BaseException as exc:
        if comm.size > 1:
            report_and_abort(comm, exc)
        raise


def install_excepthook(comm: Any) -> None:
    """Make an uncaught exception on this rank abort every rank (idempotent)."""
    if comm.size <= 1 or any(c is comm for c in _installed_for):
        return
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        try:
            report_and_abort(comm, exc)
        except BaseException:  # abort failed (already finalized?): fall back to the default report
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    _installed_for.append(comm)
