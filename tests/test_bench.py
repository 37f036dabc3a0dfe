"""The benchmark code runs on tiny sizes for every contender and writes well-formed output.
No timing is asserted anywhere."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest

import bpgpu
from bpgpu.bench import BenchConfig, run_suite, suite
from bpgpu.bench.report import markdown, results_table, write_all
from bpgpu.bench.runners import BpgpuRunner, ReferenceRunner, Runner
from bpgpu.bench.runners.reference import reference_step
from bpgpu.bench.workloads import WORKLOADS, Workload, make_data
from bpgpu.cli.main import main

TINY = {
    "W1": Workload("W1", (12, 6, 4), "sigmoid", "sigmoid", "quadratic", 4, 40, lr=0.5),
    "W2": Workload("W2", (12, 8, 6, 4), "relu", "softmax", "cross_entropy", 5, 40, lr=0.1),
}
CONTENDERS = {"numpy reference", "bpgpu numpy", "torch cpu", "scikit-learn", "GEMM floor",
              "bpgpu cupy", "torch cuda", "GEMM floor (cuBLAS)"}


def _tiny_config(**kw) -> BenchConfig:
    base = dict(workloads=list(TINY), dtypes=["float32"], devices=["cpu", "gpu"], steps=3, repeats=2,
                workload_table=dict(TINY), sweep_grid=([8, 16], [1, 4], float("inf")), memory="inline")
    return BenchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def record():
    return run_suite(_tiny_config(), log=lambda msg: None)


def test_every_contender_is_reported(record):
    for wl in TINY:
        rows = {r["contender"]: r for r in record["results"] if r["workload"] == wl}
        assert set(rows) == CONTENDERS
        for name in ("numpy reference", "bpgpu numpy", "GEMM floor"):
            assert rows[name]["status"] == "ok"
        for row in rows.values():
            assert row["status"] in ("ok", "skipped")
            if row["status"] == "skipped":
                assert row["reason"]
            else:
                assert row["epoch_s"] > 0 and row["samples_per_s"] > 0 and len(row["times_s"]) == 2
                assert row["ratio_to_gemm_floor"] > 0
        assert rows["numpy reference"]["ratio_to_reference"] == pytest.approx(1.0)
        assert rows["numpy reference"]["scaled"] is True  # 3 of 8 batches timed


def test_peers_present_here_are_run(record):
    rows = {r["contender"]: r for r in record["results"] if r["workload"] == "W2"}
    if importlib.util.find_spec("torch"):
        assert rows["torch cpu"]["status"] == "ok"
    if importlib.util.find_spec("sklearn"):
        assert rows["scikit-learn"]["status"] == "ok"


def test_machine_info_and_sweep(record):
    m = record["machine"]
    assert m["cpu"] and m["usable_cores"] >= 1 and isinstance(m["blas"], list)
    assert "status" in m["gpu"]
    points = [p for p in record["sweep"]["points"] if p.get("device") == "cpu"]
    assert {(p["width"], p["batch"]) for p in points} == {(8, 1), (8, 4), (16, 1), (16, 4)}
    if m["gpu"]["status"] != "usable":
        assert record["sweep"]["crossover_status"].startswith("unmeasured")


def test_writes_json_markdown_and_png(record, tmp_path):
    pytest.importorskip("matplotlib")
    paths = write_all(record, tmp_path)
    data = json.loads(pathlib.Path(paths["json"]).read_text())
    assert data["results"] and data["machine"]["cpu"]
    md = pathlib.Path(paths["md"]).read_text()
    assert "| workload | dtype | contender |" in md and "bpgpu numpy" in md and "Width × batch sweep" in md
    assert pathlib.Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "quick-" in paths["json"]


def test_missing_peers_are_skipped_not_a_crash(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "sklearn") else real(name, *a))
    rec = run_suite(_tiny_config(workloads=["W1"], devices=["cpu"], sweep=False), log=lambda m: None)
    rows = {r["contender"]: r for r in rec["results"]}
    assert rows["torch cpu"]["status"] == "skipped" and "torch" in rows["torch cpu"]["reason"]
    assert rows["scikit-learn"]["status"] == "skipped"
    assert rows["bpgpu numpy"]["status"] == "ok"
    assert "skipped" in results_table(rec)


def test_a_failing_contender_is_skipped(monkeypatch):
    def boom(self, *a):
        raise RuntimeError("broken install")

    monkeypatch.setattr(ReferenceRunner, "setup", boom)
    rec = run_suite(_tiny_config(workloads=["W1"], devices=["cpu"], sweep=False), log=lambda m: None)
    rows = {r["contender"]: r for r in rec["results"]}
    assert rows["numpy reference"]["status"] == "skipped" and "broken install" in rows["numpy reference"]["reason"]
    assert rows["bpgpu numpy"]["status"] == "ok" and rows["bpgpu numpy"]["ratio_to_reference"] is None
    markdown(rec)


def test_memory_probe_in_a_fresh_process():
    from bpgpu.bench.memory_probe import measure_in_subprocess

    big = Workload("M", (256, 512, 10), "relu", "softmax", "cross_entropy", 64, 128)
    out = measure_in_subprocess(BpgpuRunner("cpu"), big, "float64", 1, timeout=120)
    assert "memory_error" not in out, out
    assert out["host_peak_mb"] is None or out["host_peak_mb"] >= 0
    assert out["device_peak_mb"] is None
    bad = measure_in_subprocess(BpgpuRunner("cpu"), Workload("X", (0,), "relu", "softmax", "cross_entropy", 1, 1),
                                "float64", 1, timeout=120)
    assert bad["host_peak_mb"] is None and "memory_error" in bad


def test_reference_step_matches_bpgpu():
    """The hand-written reference does the same step as bpgpu: identical parameters after one update."""
    for wl in TINY.values():
        x, labels, onehot = make_data(wl, wl.batch, "float64")
        ref = ReferenceRunner()
        ref.setup(wl, "float64", x, labels, onehot)
        cost = reference_step(x, onehot, ref.state["w"], ref.state["b"], wl)
        ours = BpgpuRunner("cpu")
        ours.setup(wl, "float64", x, labels, onehot)
        net = ours.state["net"]
        assert float(cost) == pytest.approx(net.cost(x, onehot), rel=1e-12)
        ours.run(1)
        for a, b in zip(ref.state["w"] + ref.state["b"], net.weights + net.biases):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_workloads_match_the_issue():
    assert WORKLOADS["W1"].sizes == (784, 30, 10) and WORKLOADS["W1"].batch == 10 and WORKLOADS["W1"].samples == 50_000
    assert WORKLOADS["W2"].sizes == (784, 256, 256, 10) and WORKLOADS["W2"].batch == 128
    assert WORKLOADS["W3"].sizes == (1024, 4096, 4096, 1024, 10) and WORKLOADS["W3"].samples == 16_384
    assert WORKLOADS["W3"].steps == 32
    x, labels, onehot = make_data(TINY["W1"], 6, "float32", seed=3)
    assert x.dtype == np.float32 and x.shape == (6, 12) and np.all(onehot.sum(1) == 1)
    np.testing.assert_array_equal(x, make_data(TINY["W1"], 6, "float32", seed=3)[0])


def test_runner_interface_defaults():
    r = Runner()
    assert r.skip_reason(TINY["W1"], "float32") is None and r.device_peak_bytes() is None


def test_cli_bench_quick_on_tiny_sizes(monkeypatch, tmp_path, capsys):
    for name, wl in TINY.items():
        monkeypatch.setitem(WORKLOADS, name, wl)
    monkeypatch.delitem(WORKLOADS, "W3")
    monkeypatch.setattr(suite, "PLAN", {n: {"quick": (2, 1, 2), "full": (None, 1, 2)} for n in TINY})
    monkeypatch.setattr(suite, "sweep_grid", lambda full, gpu: ([8], [2], float("inf")))
    assert main(["bench", "--device", "cpu", "--workload", "W1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| W1 | float32 | bpgpu numpy |" in out and "wrote json" in out
    assert len(list(tmp_path.glob("quick-*.json"))) == 1


def test_cli_bench_rejects_unknown_workload_and_dtype(capsys):
    assert main(["bench", "--workload", "W9"]) == 1
    assert "W9" in capsys.readouterr().err
    assert main(["bench", "--dtype", "float16"]) == 1
    assert "float16" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0"]) == 1
    assert "--repeats" in capsys.readouterr().err
    assert main(["bench", "--threads", "-2"]) == 1
    assert "--threads" in capsys.readouterr().err


def test_bench_is_a_registered_subcommand():
    from bpgpu.cli.main import SUBCOMMANDS

    assert "bench" in SUBCOMMANDS
    assert bpgpu.__version__


class _FakeGpu(BpgpuRunner):
    """bpgpu on NumPy posing as the GPU contender: exercises the GPU reporting paths without a GPU."""

    def __init__(self, device: str = "gpu") -> None:
        super().__init__("cpu")
        self.device, self.name = "gpu", "bpgpu cupy"

    def skip_reason(self, workload, dtype):
        return None

    def import_library(self) -> None:
        pass

    def setup(self, *args) -> None:
        self.device = "cpu"
        try:
            super().setup(*args)
        finally:
            self.device = "gpu"

    def reset_peak(self) -> None:
        pass

    def device_peak_bytes(self):
        return 1 << 20


def test_gpu_rows_speedup_and_crossover_without_a_gpu(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from bpgpu.bench import runners

    real = runners.contenders
    monkeypatch.setattr(suite, "contenders", lambda d: real("cpu") if d == "cpu" else [_FakeGpu()])
    monkeypatch.setattr(suite, "BpgpuRunner", lambda d: _FakeGpu() if d == "gpu" else BpgpuRunner(d))
    rec = run_suite(_tiny_config(workloads=["W2"]), log=lambda m: None)
    gpu = next(r for r in rec["results"] if r["device"] == "gpu")
    assert gpu["status"] == "ok" and gpu["speedup_over_cpu"] > 0
    assert rec["sweep"]["crossover_status"] == "measured"
    assert set(rec["sweep"]["crossover_width_by_batch"]) == {"1", "4"}
    paths = write_all(rec, tmp_path)
    assert "faster than bpgpu on the CPU" in pathlib.Path(paths["md"]).read_text()
    assert pathlib.Path(paths["png"]).stat().st_size > 0
