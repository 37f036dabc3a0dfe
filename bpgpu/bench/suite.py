"""The benchmark suite: workloads × dtypes × contenders, timed side by side, plus the width × batch
sweep for the CPU/GPU crossover. ``run_suite`` returns one JSON-ready dict (see ``report``)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from bpgpu.bench import memory_probe
from bpgpu.bench.machine import machine_info
from bpgpu.bench.runners import BpgpuRunner, Runner, contenders
from bpgpu.bench.timing import interleaved, interleaved_with_cpu, median, paired_ratio
from bpgpu.bench.workloads import WORKLOADS, Workload, make_data, sweep_grid, sweep_workload

# steps timed per repeat, warm-up steps, repeats: (quick, full); W3 on the CPU is measured on 8 of its
# 32 batches (one fit call over them: fit's once-per-call work weighs 4× what it does in a whole
# epoch) and scaled to the epoch (about 14 s an epoch on two cores; whole ones per contender and
# repeat would make the full run take over half an hour on the shared machine).
PLAN = {
    "W1": {"quick": (1000, 50, 3), "full": (None, 200, 7)},
    "W2": {"quick": (100, 5, 3), "full": (None, 20, 5)},
    "W3": {"quick": (1, 1, 3), "full": (8, 1, 3), "full_gpu": (None, 3, 5)},
}
REFERENCE, GEMM_CPU, CPU_BPGPU, TORCH_CPU = "numpy reference", "GEMM floor", "bpgpu numpy", "torch cpu"


@dataclass
class BenchConfig:
    """What to run: workloads, dtypes, devices ("cpu", "gpu"), quick or full, the sweep."""

    workloads: list[str] = field(default_factory=lambda: ["W1", "W2", "W3"])
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    devices: list[str] = field(default_factory=lambda: ["cpu", "gpu"])
    full: bool = False
    sweep: bool = True
    repeats: int | None = None  # override the plan's repeat count
    steps: int | None = None  # override the timed steps (tests use tiny values)
    workload_table: dict[str, Workload] = field(default_factory=lambda: dict(WORKLOADS))
    sweep_grid: tuple[list[int], list[int], float] | None = None  # override (widths, batches, flop cap)
    threads: int | None = None  # limit BLAS/OpenMP (and torch) threads; None: the libraries' defaults
    repeat_budget_s: float | None = None  # time-box one contender's timed call (see _time_boxed); None: none
    memory: str = "subprocess"  # peak memory per contender: "subprocess" (fresh process), "inline", "off"


def _plan(cfg: BenchConfig, name: str, gpu: bool) -> tuple[int, int, int]:
    plans = PLAN.get(name, {"quick": (10, 1, 3), "full": (None, 1, 3)})
    key = "full_gpu" if cfg.full and gpu and "cpu" not in cfg.devices and "full_gpu" in plans else ("full" if cfg.full else "quick")
    steps, warm, repeats = plans[key]
    wl = cfg.workload_table[name]
    steps = wl.steps if steps is None else min(steps, wl.steps)
    if cfg.steps is not None:
        steps, warm = min(cfg.steps, wl.steps), min(warm, 1)
    return max(steps, 1), warm, cfg.repeats or repeats


def _memory_pass(cfg: BenchConfig, runner: Runner, wl: Workload, dtype: str, steps: int) -> dict[str, Any]:
    """Host peak RSS growth and device peak of one contender (a fresh process unless ``cfg.memory``)."""
    if cfg.memory == "off":
        return {"host_peak_mb": None, "device_peak_mb": None}
    if cfg.memory == "inline":
        return memory_probe.measure(runner, wl, dtype, steps)
    return memory_probe.measure_in_subprocess(runner, wl, dtype, steps)


MIN_WARM_FOR_BUDGET = 10  # warm-up steps needed to trust the per-step estimate (W3's single one is not)


def _time_boxed(cfg: BenchConfig, steps: int, warm: int, warm_s: float) -> int:
    """The batches to time for a contender whose ``warm`` warm-up steps took ``warm_s``: the plan's
    ``steps``, or fewer (at least a tenth) where one timed call would exceed ``cfg.repeat_budget_s``.

    Two threads on a shared 2-core machine can make a peer 10–100× slower (PyTorch's OpenMP
    barriers wait for a descheduled thread): without a box one of its W1 epochs takes minutes. Times
    are scaled to the epoch per contender, so ratios stay comparable."""
    if cfg.repeat_budget_s is None or warm < MIN_WARM_FOR_BUDGET or warm_s <= 0:
        return steps
    per_step = warm_s / warm
    if per_step * steps <= cfg.repeat_budget_s:
        return steps
    return max(int(cfg.repeat_budget_s / per_step), steps // 10, 1)


def _cpu_ratio(cpu: dict[str, list[float]], a: str, b: str) -> float | None:
    if b not in cpu or not all(cpu[b]):
        return None
    return paired_ratio(cpu[a], cpu[b])


def _import_libraries(cfg: BenchConfig) -> None:
    """Load every contender's library (and so its BLAS/OpenMP pools) before a thread limit is set:
    threadpoolctl only limits libraries already loaded (scikit-learn's SciPy BLAS would escape it)."""
    for device in cfg.devices:
        for r in contenders(device):
            try:
                r.import_library()
            except Exception:  # noqa: BLE001 - a missing or unusable library is reported by skip_reason later
                pass


def bench_workload(cfg: BenchConfig, name: str, dtype: str, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Time every contender of the configured devices on one workload and dtype, side by side."""
    wl = cfg.workload_table[name]
    runners = [r for d in cfg.devices for r in contenders(d)]
    gpu = any(r.device == "gpu" and r.skip_reason(wl, dtype) is None for r in runners)
    steps, warm, repeats = _plan(cfg, name, gpu)
    data = make_data(wl, max(steps, warm) * wl.batch, dtype)
    rows: list[dict[str, Any]] = []
    active: list[Runner] = []
    n_steps: dict[str, int] = {}
    for r in runners:
        base = {"workload": name, "dtype": dtype, "contender": r.name, "device": r.device}
        reason = r.skip_reason(wl, dtype)
        if reason:
            rows.append({**base, "status": "skipped", "reason": reason})
            continue
        try:
            r.setup(wl, dtype, *data)
            t0 = time.perf_counter()
            r.run(warm)  # warm-up (excluded): BLAS threads, allocator, CUDA kernels and memory pool
            n_steps[r.name] = _time_boxed(cfg, steps, warm, time.perf_counter() - t0)
        except Exception as exc:  # a broken peer is reported, never a crash
            rows.append({**base, "status": "skipped", "reason": f"{type(exc).__name__}: {exc}"})
            r.teardown()
            continue
        rows.append({**base, "status": "ok", "describe": r.describe()})
        active.append(r)
    boxed = {k: v for k, v in n_steps.items() if v < steps}
    log(f"{name} {dtype}: timing {', '.join(r.name for r in active)}: {repeats} repeats × {steps} steps"
        + (f" (time-boxed: {boxed})" if boxed else ""))
    times, cpu_times = interleaved_with_cpu([(lambda r=r: r.run(n_steps[r.name])) for r in active], repeats)
    for r in active:
        r.teardown()
    # per repeat, each contender's time scaled to a whole epoch (contenders may time different batch counts)
    by_name = {r.name: [x * wl.steps / n_steps[r.name] for x in t] for r, t in zip(active, times)}
    raw_by_name = {r.name: t for r, t in zip(active, times)}
    raw_cpu_by_name = {r.name: t for r, t in zip(active, cpu_times)}
    cpu_by_name = {r.name: [x * wl.steps / n_steps[r.name] for x in t] for r, t in zip(active, cpu_times)}
    for row in rows:
        if row["status"] != "ok":
            continue
        t, n = by_name[row["contender"]], n_steps[row["contender"]]
        epoch = median(t)
        gemm = GEMM_CPU if row["device"] == "cpu" else "GEMM floor (cuBLAS)"
        torch = TORCH_CPU if row["device"] == "cpu" else "torch cuda"
        row.update({
            "times_s": [round(x, 6) for x in raw_by_name[row["contender"]]],
            "cpu_times_s": [round(x, 6) for x in raw_cpu_by_name[row["contender"]]],
            "cpu_epoch_s": median(cpu_by_name[row["contender"]]),
            "measured_steps": n, "epoch_steps": wl.steps, "time_boxed": n < steps,
            "scaled": n < wl.steps, "epoch_s": epoch, "samples_per_s": wl.steps * wl.batch / epoch,
            "ratio_to_reference": paired_ratio(t, by_name[REFERENCE]) if REFERENCE in by_name else None,
            "ratio_to_gemm_floor": paired_ratio(t, by_name[gemm]) if gemm in by_name else None,
            "ratio_to_torch": paired_ratio(t, by_name[torch]) if torch in by_name else None,
            # the same from process CPU time (all threads; not inflated by waiting for a core on a shared machine)
            "cpu_ratio_to_reference": _cpu_ratio(cpu_by_name, row["contender"], REFERENCE),
            "cpu_ratio_to_gemm_floor": _cpu_ratio(cpu_by_name, row["contender"], gemm),
            "cpu_ratio_to_torch": _cpu_ratio(cpu_by_name, row["contender"], torch),
        })
        if row["device"] == "gpu" and CPU_BPGPU in by_name:  # the GPU's speedup over bpgpu on the CPU
            row["speedup_over_cpu"] = paired_ratio(by_name[CPU_BPGPU], t)
    for row, r in zip([x for x in rows if x["status"] == "ok"], active):
        row.update(_memory_pass(cfg, r, wl, dtype, min(steps, 2)))  # the same steps for every contender
    return rows


def _sweep_steps(flops: float, full: bool) -> int:
    return int(min(max(1.5e10 / flops, 2), 1000 if full else 200))


def run_sweep(cfg: BenchConfig, dtype: str, log: Callable[[str], None]) -> dict[str, Any]:
    """bpgpu's samples/s over hidden width × batch size on each device, and where the GPU overtakes."""
    points: list[dict[str, Any]] = []
    curves: dict[str, dict[tuple[int, int], float]] = {}
    for device in cfg.devices:
        runner = BpgpuRunner(device)
        probe = sweep_workload(64, 1, 1)
        reason = runner.skip_reason(probe, dtype)
        if reason:
            points.append({"device": device, "status": "skipped", "reason": reason})
            continue
        widths, batches, cap = cfg.sweep_grid or sweep_grid(cfg.full, device == "gpu")
        curve = curves.setdefault(device, {})
        for w in widths:
            for b in batches:
                flops = sweep_workload(w, b, 1).gemm_flops()
                base = {"device": device, "width": w, "batch": b, "gemm_flops_per_step": flops}
                if flops > cap:
                    points.append({**base, "status": "skipped", "reason": f"step > {cap:.2g} flops (CPU budget)"})
                    continue
                steps = _sweep_steps(flops, cfg.full) if cfg.steps is None else cfg.steps
                wl = sweep_workload(w, b, steps)
                runner.setup(wl, dtype, *make_data(wl, steps * b, dtype))
                runner.run(1)
                t = interleaved([lambda: runner.run(steps)], 3)[0]
                runner.teardown()
                step_s = median(t) / steps
                curve[(w, b)] = b / step_s
                points.append({**base, "status": "ok", "steps": steps, "step_s": step_s, "samples_per_s": b / step_s})
        log(f"sweep {device}: {sum(1 for p in points if p.get('device') == device and p['status'] == 'ok')} points")
    crossover: dict[str, Any] = {}
    if "cpu" in curves and "gpu" in curves:
        for b in sorted({b for _, b in curves["gpu"]}):
            over = [w for (w, bb), s in sorted(curves["gpu"].items()) if bb == b and (w, b) in curves["cpu"]
                    and s > curves["cpu"][(w, b)]]
            crossover[str(b)] = min(over) if over else None
        status = "measured"
    else:
        status = "unmeasured: no usable GPU on this machine" if "cpu" in curves else "unmeasured: no CPU curve"
    return {"dtype": dtype, "model": "[784, w, w, 10] relu, softmax + cross-entropy", "points": points,
            "crossover_width_by_batch": crossover, "crossover_status": status}


def _loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages: other processes competing for the cores (None where unknown)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _limit_threads(n: int) -> Any:
    """A context limiting every BLAS/OpenMP pool (threadpoolctl) and torch's intra-op threads to ``n``."""
    import contextlib
    import importlib.util

    from threadpoolctl import threadpool_limits

    stack = contextlib.ExitStack()
    if importlib.util.find_spec("torch") is not None:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(n)
        stack.callback(torch.set_num_threads, before)
    stack.enter_context(threadpool_limits(limits=n))
    return stack


def run_suite(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the configured benchmark; return machine info, config, per-contender rows and the sweep."""
    if cfg.threads:
        _import_libraries(cfg)
        with _limit_threads(cfg.threads):
            return _run_suite(cfg, log)
    return _run_suite(cfg, log)


def _run_suite(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.time()
    load_before = _loadavg()
    results: list[dict[str, Any]] = []
    for dtype in cfg.dtypes:
        for name in cfg.workloads:
            results.extend(bench_workload(cfg, name, dtype, log))
    sweep = run_sweep(cfg, cfg.dtypes[0], log) if cfg.sweep else None
    config = {k: v for k, v in asdict(cfg).items() if k not in ("workload_table", "sweep_grid")}
    config["workloads"] = {n: {**asdict(cfg.workload_table[n]), "label": cfg.workload_table[n].label()}
                           for n in cfg.workloads}
    machine = machine_info()  # inside the thread limit: the BLAS thread counts are those that ran
    machine["load_average_before_after"] = [load_before, _loadavg()]
    threads = {"setting": cfg.threads or "library defaults",
               "blas": sorted({b.get("num_threads") for b in machine["blas"] if b.get("user_api") == "blas"}),
               "blas_kernel": sorted({str(b.get("architecture")) for b in machine["blas"] if b.get("user_api") == "blas"}),
               "torch": machine["torch"].get("threads")}
    return {"machine": machine, "config": config, "threads": threads, "results": results, "sweep": sweep,
            "started_unix": started, "elapsed_s": round(time.time() - started, 1),
            "method": ("an epoch of each contender's training loop with the data already on the device: bpgpu "
                       "rows time MLP.fit itself (defaults on: shuffling, cost history, gradient norms, "
                       "divergence detection; progress=False; SGD(η)); the NumPy reference and PyTorch loops "
                       "shuffle and compute every batch's cost too; median over interleaved repeats (rotating "
                       "order); ratios are medians of per-repeat ratios; scaled=true: fewer batches timed (one "
                       "fit call over them) and scaled to the epoch; memory: each contender set up alone in a "
                       "fresh process and run 2 steps (host RSS high-water growth over the process after "
                       "imports and host data; GPU: CuPy pool bytes / torch max allocated).")}
