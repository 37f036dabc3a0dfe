"""Reliability, data parallelism across real processes: only rank 0 reads the checkpoint and
broadcasts it (the other ranks have no copy), and the resumed run is the uninterrupted one."""

from __future__ import annotations

import json

import pytest

from mpi_helpers import run_script, skip_reason

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


@pytest.mark.parametrize("np_", [2, 3])
def test_a_resume_reads_the_checkpoint_on_rank_0_only(tmp_path, np_):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    proc = run_script(np_, "resume_rank0.py", tmp_path, timeout=90)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["size"] == np_ and out["ranks_identical"], out
    assert out["max_abs_diff"] < 1e-12, out  # data-parallel sums differ from one process only by rounding
    assert out["others_wrote"] == [], out
