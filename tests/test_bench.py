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
from bpgpu.bench.runners import BpgpuRunner, RawStepRunner, ReferenceRunner, Runner
from bpgpu.bench.runners.reference import reference_step
from bpgpu.bench.workloads import WORKLOADS, Workload, make_data
from bpgpu.cli.main import main
from helpers import stand_in_gpu_runner

TINY = {
    "W1": Workload("W1", (12, 6, 4), "sigmoid", "sigmoid", "quadratic", 4, 40, lr=0.5),
    "W2": Workload("W2", (12, 8, 6, 4), "relu", "softmax", "cross_entropy", 5, 40, lr=0.1),
}
CONTENDERS = {"numpy reference", "bpgpu numpy", "torch cpu", "scikit-learn", "GEMM floor",
              "bpgpu raw step (diagnostic)", "bpgpu cupy", "torch cuda", "GEMM floor (cuBLAS)",
              "bpgpu cupy raw step (diagnostic)"}


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
    """The hand-written reference does the same step as bpgpu's fit and its raw step: identical
    parameters after one update of one batch (its row order does not change the mean gradient)."""
    for wl in TINY.values():
        x, labels, onehot = make_data(wl, wl.batch, "float64")
        ref = ReferenceRunner()
        ref.setup(wl, "float64", x, labels, onehot)
        cost = reference_step(x, onehot, ref.state["w"], ref.state["b"], wl)
        for runner in (BpgpuRunner("cpu"), RawStepRunner("cpu")):
            runner.setup(wl, "float64", x, labels, onehot)
            net = runner.state["net"]
            assert float(cost) == pytest.approx(net.cost(x, onehot), rel=1e-12)
            runner.run(1)
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


def test_gpu_rows_speedup_and_crossover_without_a_gpu(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from bpgpu.bench import runners

    real = runners.contenders
    monkeypatch.setattr(suite, "contenders", lambda d: real("cpu") if d == "cpu" else [stand_in_gpu_runner(1 << 20)])
    monkeypatch.setattr(suite, "BpgpuRunner", lambda d: stand_in_gpu_runner(1 << 20) if d == "gpu" else BpgpuRunner(d))
    rec = run_suite(_tiny_config(workloads=["W2"]), log=lambda m: None)
    gpu = next(r for r in rec["results"] if r["device"] == "gpu")
    assert gpu["status"] == "ok" and gpu["speedup_over_cpu"] > 0
    assert rec["sweep"]["crossover_status"] == "measured"
    assert set(rec["sweep"]["crossover_width_by_batch"]) == {"1", "4"}
    paths = write_all(rec, tmp_path)
    assert "faster than bpgpu on the CPU" in pathlib.Path(paths["md"]).read_text()
    assert pathlib.Path(paths["png"]).stat().st_size > 0


# -- the bpgpu row is fit; the peers do fit's job -------------------------------------------------------

def test_bpgpu_row_calls_fit_with_its_defaults(monkeypatch):
    """Every timed, warm-up and memory call of the "bpgpu numpy" row goes through MLP.fit, with fit's
    defaults (no shuffle/record_grad_norms override) and progress off; its history has cost and norms."""
    from bpgpu.network import MLP

    calls = []
    real = MLP.fit

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MLP, "fit", spy)
    rec = run_suite(_tiny_config(workloads=["W2"], devices=["cpu"], sweep=False, repeats=3), log=lambda m: None)
    row = next(r for r in rec["results"] if r["contender"] == "bpgpu numpy")
    assert row["status"] == "ok" and "MLP.fit" in row["describe"]["runs"]
    assert len(calls) == 1 + 3 + 1  # warm-up, 3 timed repeats, the inline memory pass (the raw row: none)
    for kw in calls:
        assert kw["epochs"] == 1 and kw["progress"] is False and kw["batch_size"] == TINY["W2"].batch
        assert not {"shuffle", "record_grad_norms", "seed"} & set(kw)  # fit's defaults stay on


def test_fit_runner_history_records_cost_and_gradient_norms():
    """What the timed fit call records: one epoch with its mean cost and one gradient norm per layer."""
    wl = TINY["W2"]
    x, labels, onehot = make_data(wl, 4 * wl.batch, "float64")
    r = BpgpuRunner("cpu")
    r.setup(wl, "float64", x, labels, onehot)
    before = [w.copy() for w in r.state["net"].weights]
    r.run(4)
    (history,) = r.state["histories"]
    row = history.last()
    assert len(history) == 1 and np.isfinite(row["cost"]) and row["cost"] > 0
    assert len(row["grad_norms"]) == len(wl.sizes) - 1 and all(g > 0 for g in row["grad_norms"])
    assert all(not np.array_equal(a, b) for a, b in zip(before, r.state["net"].weights))


def test_raw_step_diagnostic_drives_the_engine_in_order():
    wl = TINY["W2"]
    x, labels, onehot = make_data(wl, 4 * wl.batch, "float64")
    r = RawStepRunner("cpu")
    r.setup(wl, "float64", x, labels, onehot)
    r.run(3)
    assert r.state["stats"].batches == 3 and r.state["stats"].grad_norm_sums == []
    assert "diagnostic" in r.name and "diagnostic" in r.describe()["note"]


def test_reference_loop_shuffles_and_computes_every_batch_cost(monkeypatch):
    from bpgpu.bench.runners import reference

    wl = TINY["W1"]
    x, labels, onehot = make_data(wl, 4 * wl.batch, "float64")
    x[:, 0] = np.arange(x.shape[0])  # tag each row with its index
    seen, costs = [], []
    real = reference.reference_step

    def spy(xb, yb, w, b, wl_):
        seen.extend(xb[:, 0].astype(int).tolist())
        c = real(xb, yb, w, b, wl_)
        costs.append(float(c))
        return c

    monkeypatch.setattr(reference, "reference_step", spy)
    r = ReferenceRunner()
    r.setup(wl, "float64", x, labels, onehot)
    r.run(4)
    assert sorted(seen) == list(range(4 * wl.batch)) and seen != sorted(seen)  # every row once, shuffled
    assert len(costs) == 4 and r.state["costs"] == [pytest.approx(np.mean(costs), rel=1e-12)]
    first = list(seen)
    seen.clear()
    r.run(4)
    assert seen != first  # a fresh order each epoch


def test_torch_loop_shuffles_and_sums_the_loss():
    pytest.importorskip("torch")
    from bpgpu.bench.runners import TorchRunner

    wl = TINY["W2"]
    x, labels, onehot = make_data(wl, 4 * wl.batch, "float32")
    r = TorchRunner("cpu")
    r.setup(wl, "float32", x, labels, onehot)
    r.run(4)
    r.run(4)
    assert len(r.state["costs"]) == 2 and all(np.isfinite(r.state["costs"])) and r.state["costs"][0] > 0


# -- targets and the README table are computed from the numbers -----------------------------------------

def _row(wl, contender, epoch_s, ref=None, torch=None, gemm=None, mem=None, dtype="float32"):
    return {"workload": wl, "dtype": dtype, "contender": contender, "device": "cpu", "status": "ok",
            "epoch_s": epoch_s, "cpu_times_s": [epoch_s * 0.08, epoch_s * 0.08 * 1.5], "ratio_to_reference": ref, "ratio_to_torch": torch, "ratio_to_gemm_floor": gemm,
            "host_peak_mb": mem, "measured_steps": 8 if wl == "W3" else 100, "epoch_steps": 32 if wl == "W3" else 100}


def _synthetic(fit_vs_numpy=0.95, fit_vs_torch=0.9, w3_gemm=1.04, fit_mem=280.0, threads=None):
    rows = []
    for wl in ("W1", "W2", "W3"):
        rows += [_row(wl, "bpgpu numpy", 1.0, fit_vs_numpy, fit_vs_torch, w3_gemm if wl == "W3" else 2.0,
                      fit_mem if wl == "W3" else 5.0),
                 _row(wl, "numpy reference", 1.1, 1.0, 1.1, 1.2, 290.0 if wl == "W3" else 5.0),
                 _row(wl, "torch cpu", 1.2), _row(wl, "scikit-learn", 1.3), _row(wl, "GEMM floor", 0.5),
                 _row(wl, "bpgpu raw step (diagnostic)", 0.9, 0.85)]
    rows.append({"workload": "W1", "dtype": "float32", "contender": "bpgpu cupy", "device": "gpu",
                 "status": "skipped", "reason": "no GPU"})
    return {"results": rows, "started_unix": 1.8e9, "config": {"threads": threads},
            "threads": {"setting": threads or "library defaults", "blas": [threads or 2], "blas_kernel": ["Haswell"],
                        "torch": threads or 2},
            "machine": {"cpu": "Test CPU", "usable_cores": 2}}


def test_targets_follow_the_numbers():
    from bpgpu.bench import targets

    good = targets.evaluate(_synthetic())
    assert {(t["key"], t["workload"]) for t in good} == {
        ("vs_numpy", "W1"), ("vs_numpy", "W2"), ("vs_numpy", "W3"), ("vs_torch", "W1"), ("vs_torch", "W2"),
        ("vs_torch", "W3"), ("vs_gemm", "W3"), ("memory", "W3"), ("stretch_vs_numpy", "W1")}
    assert all(t["met"] for t in good if not t["stretch"])
    assert next(t for t in good if t["key"] == "memory")["measured"] == pytest.approx(280 / 290)
    assert targets.summary(good) == "8 of 8 targets met"
    assert next(t for t in good if t["stretch"])["met"] is False  # 0.95 > 0.90
    bad = targets.evaluate(_synthetic(fit_vs_numpy=1.01, w3_gemm=1.06, fit_mem=300.0))
    missed = {(t["key"], t["workload"]) for t in bad if t["met"] is False and not t["stretch"]}
    assert missed == {("vs_numpy", "W1"), ("vs_numpy", "W2"), ("vs_numpy", "W3"), ("vs_gemm", "W3"), ("memory", "W3")}
    text = targets.summary(bad)
    assert text.startswith("3 of 8 targets met") and "fit ÷ GEMM floor on W3 float32 (1.06 > 1.05)" in text
    assert "| fit ÷ GEMM floor | W3 | float32 | 1.06 | ≤ 1.05 | **no** |" in targets.table(bad)


def test_targets_not_measured_when_a_peer_is_missing():
    from bpgpu.bench import targets

    rec = _synthetic()
    for r in rec["results"]:
        if r["contender"] == "bpgpu numpy":
            r["ratio_to_torch"] = None  # torch skipped
    found = targets.evaluate(rec)
    assert all(t["met"] is None for t in found if t["key"] == "vs_torch")
    assert "not measured: fit ÷ PyTorch CPU autograd on W1 float32" in targets.summary(found)


def test_markdown_report_has_the_targets_of_its_own_rows(record):
    from bpgpu.bench import targets

    md = markdown(record)
    assert "## Issue 9 targets" in md and "| target met? |" in md and "bpgpu raw step (diagnostic)" in md
    fit = next(r for r in record["results"] if r["contender"] == "bpgpu numpy" and r["workload"] == "W1")
    t = next(t for t in targets.evaluate(record) if t["key"] == "vs_numpy" and t["workload"] == "W1")
    assert t["measured"] == fit["ratio_to_reference"] and t["met"] == (fit["ratio_to_reference"] <= 1.0)
    assert f"| fit ÷ same-job NumPy loop | W1 | float32 | {fit['ratio_to_reference']:.2f} |" in md
    assert "threads" in record and record["threads"]["setting"] == "library defaults"
    assert record["threads"]["blas_kernel"]  # the BLAS kernel threadpoolctl reports


def test_thread_limit_is_recorded():
    pytest.importorskip("threadpoolctl")
    rec = run_suite(_tiny_config(workloads=["W1"], devices=["cpu"], sweep=False, threads=1, memory="off"),
                    log=lambda m: None)
    assert rec["threads"]["setting"] == 1 and rec["threads"]["blas"] == [1]
    if importlib.util.find_spec("torch"):
        assert rec["threads"]["torch"] == 1


def test_readme_table_is_rendered_from_the_records():
    from bpgpu.bench import readme

    default, one = _synthetic(), _synthetic(fit_vs_numpy=1.02, threads=1)
    table = readme.table(default, one)
    assert "| fit × same-job NumPy loop (target ≤ 1.00; W1 stretch ≤ 0.90) | 0.95 ✓ / 1.02 ✗ |" in table
    assert "| fit × GEMM floor (target on W3 ≤ 1.05) | 2.00 / 2.00 | 2.00 / 2.00 | 1.04 ✓ / 1.04 ✓ |" in table
    assert "280.0 vs 290.0 ✓ / 280.0 vs 290.0 ✓" in table
    # CPU-time ratios from the per-repeat CPU seconds, scaled to the epoch: fit 1.0 s vs the loop's 1.1 s
    assert "| the same three by process CPU time: × NumPy loop | 0.91 / 0.91 |" in table
    text = f"# x\n\n## Benchmarks\n\nintro\n{readme.BEGIN}\nold table\n{readme.END}\n\n## Next\n"
    block = readme.block(default, one, ("full-a.json", "full-a-1thread.json"))
    out = readme.update_readme(text, block)
    assert "old table" not in out and out.endswith(f"{readme.END}\n\n## Next\n") and "intro" in out
    assert "- Default threads: 8 of 8 targets met." in out and "- `--threads 1`: 5 of 8 targets met" in out
    assert "W3 is timed on 8 of its 32 batches" in out and "full-a-1thread.json" in out
    assert readme.update_readme(out, block) == out  # idempotent
    with pytest.raises(ValueError, match="markers"):
        readme.update_readme("# no markers\n", block)


def test_render_readme_script_round_trip(tmp_path):
    import runpy

    from bpgpu.bench import readme

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "render_readme.py"
    render = runpy.run_path(str(script))["main"]
    (tmp_path / "d.json").write_text(json.dumps(_synthetic()))
    (tmp_path / "o.json").write_text(json.dumps(_synthetic(threads=1)))
    md = tmp_path / "README.md"
    md.write_text(f"## Benchmarks\n{readme.BEGIN}\n{readme.END}\n")
    args = ["--default", str(tmp_path / "d.json"), "--one-thread", str(tmp_path / "o.json"), "--readme", str(md)]
    assert render([*args, "--check"]) == 1
    assert render(args) == 0 and "bpgpu `fit`, s/epoch" in md.read_text()
    assert render([*args, "--check"]) == 0


def test_time_box_trims_only_slow_calls_and_scales_each_contender(monkeypatch):
    cfg = BenchConfig(repeat_budget_s=2.0)
    assert suite._time_boxed(cfg, 1000, 100, 0.1) == 1000  # 1 ms/step: 1 s per call, inside the box
    assert suite._time_boxed(cfg, 1000, 100, 1.0) == 200  # 10 ms/step: 200 steps fill 2 s
    assert suite._time_boxed(cfg, 1000, 100, 100.0) == 100  # never below a tenth of the plan
    assert suite._time_boxed(cfg, 1000, 5, 100.0) == 1000  # too few warm-up steps to trust the estimate
    assert suite._time_boxed(BenchConfig(), 1000, 100, 100.0) == 1000  # no box configured
    monkeypatch.setattr(suite, "MIN_WARM_FOR_BUDGET", 1)
    rec = run_suite(_tiny_config(workloads=["W2"], devices=["cpu"], sweep=False, memory="off", steps=5,
                                 repeat_budget_s=1e-9), log=lambda m: None)
    rows = {r["contender"]: r for r in rec["results"] if r["status"] == "ok"}
    for r in rows.values():
        assert r["measured_steps"] == 1 and r["time_boxed"] and r["scaled"]
        assert r["epoch_s"] == pytest.approx(np.median(r["times_s"]) * TINY["W2"].steps, rel=1e-3, abs=1e-5)
    assert rows["numpy reference"]["ratio_to_reference"] == pytest.approx(1.0)
    assert "time-boxed" in results_table(rec)


def test_a_near_miss_prints_enough_digits_to_see_it():
    from bpgpu.bench import targets

    found = targets.evaluate(_synthetic(fit_mem=290.9))  # 290.9 / 290 = 1.003: a miss that rounds to 1.00
    assert "fit peak host memory ÷ NumPy loop's on W3 float32 (1.003 > 1.00)" in targets.summary(found)


def test_thread_limit_covers_libraries_loaded_later(monkeypatch):
    """Every contender's library is loaded before the limit, so none escapes it (scikit-learn's SciPy BLAS)."""
    pytest.importorskip("threadpoolctl")
    loaded = []
    monkeypatch.setattr(suite, "_run_suite", lambda cfg, log: {"loaded": list(loaded)})
    for cls in (ReferenceRunner, BpgpuRunner, RawStepRunner):
        monkeypatch.setattr(cls, "import_library", lambda self: loaded.append(self.name))
    seen_inside = run_suite(_tiny_config(devices=["cpu"], threads=1), log=lambda m: None)["loaded"]
    assert {"numpy reference", "bpgpu numpy", "bpgpu raw step (diagnostic)"} <= set(seen_inside)


def test_digits_show_a_near_miss():
    from bpgpu.bench.targets import digits

    assert digits(0.95, 1.0) == "0.95" and digits(1.001, 1.0) == "1.001" and digits(1.0003, 1.0) == "1.0003"
    assert digits(1.0, 1.0) == "1.00"


def test_readme_table_matches_the_committed_results():
    """The README's Benchmarks table is the one rendered from benchmarks/results/ (rerun
    benchmarks/render_readme.py after committing new results)."""
    import runpy

    root = pathlib.Path(__file__).resolve().parent.parent
    results = root / "benchmarks" / "results"
    default, one = results / "full-amd-epyc-2c.json", results / "full-amd-epyc-2c-1thread.json"
    if not (default.exists() and one.exists() and (root / "README.md").exists()):
        pytest.skip("no committed full results to compare with")
    render = runpy.run_path(str(root / "benchmarks" / "render_readme.py"))["main"]
    assert render(["--default", str(default), "--one-thread", str(one), "--check"]) == 0
