"""Data parallelism across real processes: ``mpirun -np 2`` and ``-np 3`` (oversubscribed on small
machines) running the helper scripts in tests/mpi_scripts/. Every launch has a hard timeout, so a
hang fails instead of blocking CI. Skipped, with the reason, when mpirun or mpi4py is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import bpgpu
from mpi_helpers import mpi_env, run_mpi, run_script, skip_reason

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def _json(proc) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mpi_is_available_for_these_tests():
    """Not a skip in disguise: report loudly in the summary when the MPI tests cannot run."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("np_, m", [(2, 11), (3, 11), (3, 3)])
def test_allreduced_shard_gradients_equal_the_full_batch_gradient(np_, m):
    out = _json(run_script(np_, "grad_equality.py", m))
    assert out["size"] == np_
    assert out["max_abs_diff"] < 1e-12, out
    assert out["cost_diff"] < 1e-12, out
    assert out["identical_on_all_ranks"], out
    assert "staged through host memory" in out["describe"] or "CUDA-aware" in out["describe"]


@pytest.mark.parametrize("np_", [2, 3])
def test_broadcast_mixed_dtypes_and_non_numpy_arrays(np_):
    out = _json(run_script(np_, "collectives.py"))
    assert out == {"size": np_, "ok": True, "cuda_aware": out["cuda_aware"], "gpu_buffers": out["gpu_buffers"]}
    assert out["gpu_buffers"] == ("device" if out["cuda_aware"] else "host")


@pytest.mark.parametrize("bad_rank", [0, 2])
def test_a_rank_that_raises_stops_every_rank(bad_rank):
    proc = run_script(3, "crash.py", bad_rank, "uncaught", timeout=30)
    assert proc.returncode != 0
    assert f"deliberate failure on rank {bad_rank}" in proc.stderr
    assert f"rank {bad_rank} of 3 raised ValueError; aborting all ranks" in proc.stderr
    assert "finished (should not happen)" not in proc.stdout


def test_a_rank_whose_fit_raises_stops_every_rank():
    proc = run_script(3, "crash.py", 1, "fit", timeout=30)
    assert proc.returncode != 0
    assert "rank 1 of 3 raised DataError; aborting all ranks" in proc.stderr and "NaN" in proc.stderr
    assert "finished (should not happen)" not in proc.stdout


def test_a_non_zero_exit_inside_abort_on_error_stops_every_rank():
    proc = run_script(2, "crash.py", 1, "exit", timeout=30)
    assert proc.returncode != 0
    assert "rank 1 of 2 raised SystemExit" in proc.stderr
    assert "finished (should not happen)" not in proc.stdout


@pytest.mark.parametrize("np_", [2, 3])
def test_data_parallel_fit_ends_with_the_single_process_weights(np_, tmp_path):
    out = _json(run_script(np_, "train_equality.py", tmp_path))
    assert out["size"] == np_
    for name, case in out["cases"].items():
        assert case["moved"] > 1e-3, (name, case)  # training did change the weights
        assert case["max_abs_diff"] < 1e-12, (name, case)
        assert case["cost_diff"] < 1e-12, (name, case)
        assert case["ranks_identical"], (name, case)
    assert out["unseeded_ranks_identical"]
    # only rank 0 writes checkpoints (each rank was given its own path)
    assert out["checkpoints"] == ["adam-empty-shards-rank0.npz", "sgd-momentum-rank0.npz"]


def _train_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "bpgpu", "train", "--epochs", "2", "--no-progress", "--dtype", "float64", *extra]


def test_mpirun_bpgpu_train_matches_one_process(tmp_path):
    proc = run_mpi(2, _train_argv("--save", str(tmp_path / "two.npz")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "parallel:  mpi: 2 ranks" in proc.stdout
    assert proc.stdout.count("test accuracy:") == 1  # only rank 0 reports
    single = subprocess.run(_train_argv("--save", str(tmp_path / "one.npz")), capture_output=True, text=True,
                            timeout=120, env=mpi_env(), cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert "parallel:" not in single.stdout
    two, one = bpgpu.load(tmp_path / "two.npz"), bpgpu.load(tmp_path / "one.npz")
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(two.weights + two.biases, one.weights + one.biases))
    assert diff < 1e-12


def test_mpirun_bpgpu_train_failing_on_every_rank_exits_promptly(tmp_path):
    proc = run_mpi(2, _train_argv("--mnist", str(tmp_path / "missing")), timeout=30, cwd=tmp_path)
    assert proc.returncode != 0
    assert "aborting all ranks" in proc.stderr and "MNIST" in proc.stderr


def test_backend_mpi_without_mpirun_is_a_one_rank_world():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    code = ("import numpy as np, bpgpu.distributed as d\n"
            "c = d.init('mpi')\n"
            "print(c.size, c.rank, c.allreduce_sum([np.ones(2)])[0].tolist(), c.describe())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=mpi_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 0 [1.0, 1.0] mpi: 1 ranks")
