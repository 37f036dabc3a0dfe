"""``bpgpu check-gpu`` without a card: the no-GPU error, and the whole reporting path (targets, files,
summary) with the GPU parts stood in for — the bench's GPU contender is bpgpu on NumPy posing as
"bpgpu cupy" (as in test_bench.py), the probe and pytest run are canned, parity runs for real against
the CPU."""

from __future__ import annotations

import json
import sys

import pytest

from bpgpu.bench import BenchConfig, run_suite, suite
from bpgpu.bench.runners import BpgpuRunner
from bpgpu.bench.workloads import Workload
from bpgpu.cli import check_gpu
from bpgpu.cli.main import main
from helpers import stand_in_gpu_runner

TINY = {
    "W1": Workload("W1", (12, 6, 4), "sigmoid", "sigmoid", "quadratic", 4, 40, lr=0.5),
    "W2": Workload("W2", (12, 8, 6, 4), "relu", "softmax", "cross_entropy", 5, 40, lr=0.1),
    "W3": Workload("W3", (12, 16, 16, 4), "relu", "softmax", "cross_entropy", 8, 40, lr=0.1),
}
CARD = {"name": "NVIDIA Stand-In 80GB", "index": 0, "memory_gib": 79.6, "compute_capability": "9.0",
        "cupy": "14.2.0", "cuda_runtime": 12090, "cuda_driver": 12080}


@pytest.fixture(autouse=True)
def _fresh(fresh_cuda_status):
    """The probe runs afresh."""


def test_without_a_gpu_it_exits_non_zero_with_the_device_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["check-gpu", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bpgpu check-gpu: error: no usable GPU to check (cuda:0)" in err
    assert "CuPy is not installed" in err and 'pip install ".[cuda' in err and "--device cpu" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_bad_device_is_a_flag_error(capsys):
    assert main(["check-gpu", "--device", "cpu"]) == 1
    assert "--device 'cpu' is not a GPU" in capsys.readouterr().err


def _stand_ins(monkeypatch, tests_status="passed", w3_gemm=1.10, w3_torch=1.30, w2_speedup=2.0):
    monkeypatch.setattr(suite, "contenders", lambda d: [BpgpuRunner("cpu")] if d == "cpu" else [stand_in_gpu_runner()])
    monkeypatch.setattr(suite, "BpgpuRunner", lambda d: stand_in_gpu_runner() if d == "gpu" else BpgpuRunner(d))
    seen = []

    def bench(cfg, log):
        seen.append(cfg)
        tiny = BenchConfig(workloads=list(cfg.workloads), dtypes=cfg.dtypes, devices=cfg.devices, steps=2, repeats=2,
                           workload_table=dict(TINY), sweep=cfg.sweep, sweep_grid=([16, 256], [1, 4], float("inf")),
                           memory="off")
        record = run_suite(tiny, log=log)
        for r in record["results"]:  # the GPU ratios a card would give (the stand-in has no cuBLAS/torch rows)
            if r["status"] == "ok" and r["contender"] == "bpgpu cupy":
                r.update({"W3": {"ratio_to_gemm_floor": w3_gemm, "ratio_to_torch": w3_torch},
                          "W2": {"speedup_over_cpu": w2_speedup}}.get(r["workload"], {}))
        return record

    monkeypatch.setattr(check_gpu, "probe", lambda index: dict(CARD, index=index))
    monkeypatch.setattr(check_gpu, "gpu_tests", lambda: {"status": tests_status, "tests": 12, "passed": 11,
                                                          "failures": int(tests_status == "failed"), "errors": 0,
                                                          "skipped": 0 if tests_status == "failed" else 1})
    monkeypatch.setattr(check_gpu, "parity", lambda device: check_gpu.__dict__["_real_parity"]("cpu"))
    monkeypatch.setattr(check_gpu, "bench", bench)
    monkeypatch.setattr(check_gpu, "mixed_rows", lambda device, log: check_gpu.__dict__["_real_mixed"](
        "cpu", log, workloads=("W2",), steps={"W2": 3}, table=TINY))
    return seen


check_gpu._real_parity = check_gpu.parity
check_gpu._real_mixed = check_gpu.mixed_rows


def test_the_report_path_writes_files_and_a_one_screen_summary(monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    seen = _stand_ins(monkeypatch)
    out = tmp_path / "results" / "card"
    assert main(["check-gpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summary = text[text.index("card: NVIDIA Stand-In"):]
    assert len(summary.splitlines()) <= 30  # one screen
    assert "GPU tests (pytest -m gpu, TF32 off): passed: 11 passed, 0 failed" in summary
    assert "W3 fit step ÷ cuBLAS GEMM floor" in summary and "1.1  ≤ 1.15  met" in summary
    assert "W3 fit step ÷ PyTorch CUDA eager" in summary and "1.3  ≤ 1  MISSED" in summary
    assert "W2 GPU speedup over the CPU" in summary and "2  > 1  met" in summary
    assert "gradient parity float64" in summary and "gradient parity float32" in summary
    assert "crossover (GPU faster than CPU from batch): W1 (width 16)" in summary
    assert "TF32 on: W3 fit epoch" in summary
    assert "mixed precision: W2 float32" in summary and "mixed precision: W2 mixed16" in summary
    assert "ms/step" in summary.split("W2 mixed16")[1].splitlines()[0]
    assert "W2 mixedbf16: skipped (ConfigError: precision='mixedbf16' needs bfloat16" in summary
    print(summary)
    # the float32 pass covered W1-W3 on cpu+gpu with the sweep; the TF32 pass only the GPU rows
    assert seen[0].devices == ["cpu", "gpu"] and seen[0].workloads == ["W1", "W2", "W3"] and seen[0].sweep
    assert seen[1].devices == ["gpu"] and not seen[1].sweep
    result = json.loads((out / "check-gpu.json").read_text())
    assert result["card"]["name"] == CARD["name"] and result["tests"]["status"] == "passed"
    assert {t["key"] for t in result["targets"]} == {"w3_gemm", "w3_torch", "w2_speedup", "parity_float64", "parity_float32"}
    assert all(t["met"] for t in result["targets"] if t["key"].startswith("parity"))  # CPU vs CPU: exact
    assert result["tf32_state"]["bpgpu"] == "on"
    assert "| W3 fit step ÷ PyTorch CUDA eager | 1.3 | ≤ 1 | **no** |" in (out / "check-gpu.md").read_text()
    for sub in ("float32", "tf32"):
        assert len(list((out / sub).glob("quick-*.json"))) == 1 and len(list((out / sub).glob("quick-*.md"))) == 1
    assert len(list((out / "float32").glob("*.png"))) == 1


def test_failed_gpu_tests_make_the_exit_status_2(monkeypatch, tmp_path, capsys):
    _stand_ins(monkeypatch, tests_status="failed")
    monkeypatch.setattr(check_gpu, "mixed_rows", lambda device, log: [])
    monkeypatch.setattr(check_gpu, "bench", lambda cfg, log: None)  # (the bench path is tested above)
    assert main(["check-gpu", "--out", str(tmp_path), "--skip-tests"]) == 0  # tests skipped: not a failure
    assert "GPU tests: not run (--skip-tests)" in capsys.readouterr().out
    assert main(["check-gpu", "--out", str(tmp_path)]) == 2


def test_crossover_per_workload_from_the_sweep():
    pts = [{"device": d, "width": w, "batch": b, "status": "ok", "samples_per_s": s}
           for d, w, b, s in [("cpu", 64, 1, 10), ("gpu", 64, 1, 5), ("cpu", 64, 16, 100), ("gpu", 64, 16, 150),
                              ("cpu", 4096, 1, 1), ("gpu", 4096, 1, 3), ("cpu", 256, 1, 9), ("gpu", 256, 1, 1)]]
    got = check_gpu.crossovers({"points": pts})
    assert got["W1"] == {"sweep_width": 64, "batch": 16, "batches_compared": [1, 16]}
    assert got["W2"]["batch"] is None and got["W3"]["batch"] == 1


def test_junit_counts():
    xml = ('<testsuites><testsuite tests="5" failures="1" errors="0" skipped="2"/>'
           '<testsuite tests="3" failures="0" errors="1" skipped="0"/></testsuites>')
    assert check_gpu.junit_counts(xml) == {"tests": 8, "failures": 1, "errors": 1, "skipped": 2, "passed": 4}


def test_tf32_block_sets_and_restores_the_variables(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "1")
    monkeypatch.delenv("BPGPU_TF32", raising=False)
    with check_gpu.tf32(False, 0):
        import os

        assert os.environ["CUPY_TF32"] == "0" and os.environ["BPGPU_TF32"] == "0"
    assert os.environ["CUPY_TF32"] == "1" and "BPGPU_TF32" not in os.environ


@pytest.mark.gpu
def test_parity_and_mixed_rows_on_the_gpu(gpu_cupy):
    """The real GPU steps of check-gpu (not stood in for) on the CuPy test double / a card."""
    got = check_gpu.parity("cuda:0")
    assert got["float64"]["met"] and got["float32"]["met"], got
    rows = check_gpu.mixed_rows("cuda:0", lambda m: None, workloads=("W2",), steps={"W2": 2}, table=TINY)
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped"], rows  # no bfloat16 on CuPy
    assert rows[1]["last_cost"] == pytest.approx(rows[0]["last_cost"], rel=1e-2)
