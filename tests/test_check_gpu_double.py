"""``bpgpu check-gpu`` end to end on the CuPy test double: only pytest's subprocess is stood in for;
the probe, parity, the bench's GPU rows (bpgpu's CuPy engine, the cuBLAS GEMM floor) on tiny
workloads, the TF32 pass and the mixed-precision rows all run."""

from __future__ import annotations

import json

import pytest

from bpgpu.bench import BenchConfig
from bpgpu.cli import check_gpu
from bpgpu.cli.main import main
from test_check_gpu import TINY

pytestmark = pytest.mark.gpu


def test_check_gpu_runs_on_the_double(cupy_double, monkeypatch, tmp_path, capsys):
    from bpgpu.bench import report, suite
    from bpgpu.bench.runners import BpgpuRunner, GemmFloorRunner

    monkeypatch.setattr(check_gpu, "gpu_tests", lambda: {"status": "not run", "reason": "stood in for"})
    # bpgpu and the GEMM floor on each device (the peers' rows are test_bench.py's; the plot, test_check_gpu.py's)
    monkeypatch.setattr(suite, "contenders", lambda d: [BpgpuRunner(d)] + ([GemmFloorRunner(d)] if d == "gpu" else []))
    monkeypatch.setattr(report, "plot", lambda record, path: path.write_bytes(b"png"))

    def tiny_config(tf32_on, quick_sweep=False):
        cfg = check_gpu.__dict__["_real_suite_config"](tf32_on)
        return BenchConfig(workloads=[w for w in cfg.workloads if w != "W1"] or ["W2"], dtypes=["float32"],
                           devices=cfg.devices, steps=2, repeats=2, workload_table=dict(TINY), sweep=cfg.sweep,
                           sweep_grid=([16], [1, 4], float("inf")), memory="off")

    monkeypatch.setattr(check_gpu, "suite_config", tiny_config)
    monkeypatch.setattr(check_gpu, "mixed_rows", lambda device, log: check_gpu.__dict__["_real_mixed_rows"](
        device, log, workloads=("W2",), steps={"W2": 2}, table=TINY))
    assert main(["check-gpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "check-gpu.json").read_text())
    keys = {t["key"]: t for t in result["targets"]}
    assert keys["parity_float64"]["met"] and keys["parity_float32"]["met"]
    assert keys["w3_gemm"]["measured"] is not None  # bpgpu cupy vs the cuBLAS GEMM floor, both on the double
    assert keys["w3_torch"]["measured"] is None  # no torch CUDA here
    assert "mixed precision: W2 mixed16" in out and "TF32 on: W3" in out


check_gpu._real_suite_config = check_gpu.suite_config
check_gpu._real_mixed_rows = check_gpu.mixed_rows
