"""``bpgpu check-gpu``: validate a card with one command, using only the installed wheels (no network).

Runs, in this order, with TF32 off (``CUPY_TF32=0``, ``BPGPU_TF32=0``, CuPy's float32 compute type set
to full float32) unless stated:

1. the GPU probe (an NVRTC kernel and a cuBLAS product; no usable GPU: a DeviceError, exit 1);
2. the project's GPU tests, ``pytest -m gpu`` on the checkout's ``tests/`` (in a subprocess);
3. GPU-vs-CPU gradient parity of ``backprop`` on the W1/W2 architectures, float64 and float32;
4. ``bpgpu.bench.run_suite`` on devices cpu + gpu: ``fit`` on W1–W3 beside the NumPy loop, PyTorch
   and the GEMM floor, and the width × batch sweep that gives the CPU/GPU crossover;
5. the same GPU rows with TF32 on (the speed TF32 buys, reported beside float32);
6. ``fit`` in mixed precision (``mixed16``, ``mixedbf16``) beside float32 on W2 and W3.

It writes JSON + markdown (+ the bench PNG) under ``benchmarks/results/<card>/`` and prints a one-screen
summary against the targets: W3 fit step ≤ 1.15× the cuBLAS GEMM floor and ≤ 1.0× PyTorch CUDA eager
(float32, TF32 off); W2 faster on the GPU than on the CPU; the crossover batch size per workload;
gradient parity float64 ≤ 1e-12, float32 ≤ 1e-5 of the largest entry. Exit status: 0 when the tests
and the parity pass (speed targets missed are reported, not failures), 2 when they do not, 1 without a
usable GPU. ``--device cuda:N`` checks card N (it becomes the only visible device for the run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

from bpgpu.errors import ConfigError, DeviceError

PARITY_LIMITS = {"float64": 1e-12, "float32": 1e-5}
GEMM_LIMIT, TORCH_LIMIT = 1.15, 1.0
FIT_GPU, FIT_CPU = "bpgpu cupy", "bpgpu numpy"
SWEEP_GRID = ([64, 256, 1024, 4096], [1, 4, 16, 64, 256, 1024, 4096], 1.2e11)  # widths, batches, CPU flop cap
WORKLOAD_WIDTH = {"W1": 30, "W2": 256, "W3": 4096}  # hidden widths: the sweep width nearest each
MIXED = ("float32", "mixed16", "mixedbf16")
Log = Callable[[str], None]


# -- the steps (module functions, so a test can stand in for the GPU parts) ------------------------
def probe(index: int) -> dict[str, Any]:
    """The card: name, memory, CUDA versions; a DeviceError (with the fix) where it is not usable."""
    from bpgpu.backend.probe import cuda_status

    status = cuda_status(index)
    if status != "ok":
        status = status.replace(", or use device='cpu'", "")  # (checking a GPU: the CPU is no alternative)
        raise DeviceError(f"no usable GPU to check (cuda:{index}): {status}")
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"name": name, "index": index, "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "compute_capability": f"{props['major']}.{props['minor']}", "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(), "cuda_driver": cupy.cuda.runtime.driverGetVersion()}


def gpu_tests(timeout_s: float = 300.0) -> dict[str, Any]:
    """``pytest -m gpu`` on the checkout's tests (TF32 off): counts from its JUnit XML."""
    import importlib.util

    tests = pathlib.Path(__file__).resolve().parents[2] / "tests"
    if not tests.is_dir():
        return {"status": "not run", "reason": f"no tests/ beside the package ({tests}): run from a bpgpu checkout"}
    if importlib.util.find_spec("pytest") is None:
        return {"status": "not run", "reason": 'pytest is not installed (pip install ".[test]")'}
    with tempfile.TemporaryDirectory() as tmp:
        xml = pathlib.Path(tmp) / "gpu.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", str(tests)]
        env = {**os.environ, "CUPY_TF32": "0", "BPGPU_TF32": "0"}
        env.pop("BPGPU_DEVICE", None)
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, cwd=tests.parent)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"pytest -m gpu ran past {timeout_s:.0f} s"}
        counts = junit_counts(xml.read_text()) if xml.exists() else {}
    tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
    ok = proc.returncode in (0, 5) and counts.get("failures", 0) == 0 and counts.get("errors", 0) == 0
    return {"status": "passed" if ok else "failed", "returncode": proc.returncode, **counts,
            "seconds": round(time.perf_counter() - started, 1), "command": " ".join(cmd[1:]), "tail": tail}


def junit_counts(xml: str) -> dict[str, int]:
    """tests / failures / errors / skipped summed over a JUnit XML report's test suites."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def parity(device: str) -> dict[str, Any]:
    """max |∂C_gpu − ∂C_cpu| ÷ the largest |∂C_cpu| entry, over every gradient array, per dtype
    (``device``: the GPU, e.g. ``"cuda:0"``)."""
    import numpy as np

    from bpgpu import MLP, to_host

    cases = [([784, 30, 10], "sigmoid", "sigmoid", "quadratic"), ([784, 256, 256, 10], "relu", "softmax", "cross_entropy"),
             ([20, 16, 1], "tanh", "sigmoid", "cross_entropy")]
    out: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for dtype, limit in PARITY_LIMITS.items():
        worst = 0.0
        for sizes, hidden, output, cost in cases:
            cpu = MLP(sizes, hidden=hidden, output=output, cost=cost, dtype=dtype, seed=0)
            gpu = cpu.copy(device=device)
            x = rng.random((64, sizes[0]))
            y = rng.integers(0, sizes[-1], 64) if output == "softmax" else rng.integers(0, 2, (64, sizes[-1])).astype(float)
            _, gw_c, gb_c = cpu.backprop(x, y)
            _, gw_g, gb_g = gpu.backprop(x, y)
            for got, want in zip(gw_g + gb_g, gw_c + gb_c):
                g, w = to_host(got).astype(np.float64), to_host(want).astype(np.float64)
                worst = max(worst, float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), 1e-30))
        out[dtype] = {"worst": worst, "limit": limit, "met": worst <= limit}
    return out


def bench(cfg: Any, log: Log) -> dict[str, Any]:
    """One ``bpgpu.bench`` suite run (the same code as ``bpgpu bench``)."""
    from bpgpu.bench import run_suite

    return run_suite(cfg, log=log)


def mixed_rows(device: str, log: Log, workloads: tuple[str, ...] = ("W2", "W3"),
               steps: dict[str, int] | None = None, table: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``fit`` for one epoch over a few batches in each precision of :data:`MIXED`: seconds per step,
    the ratio to float32 and the last cost (mixed precision must train, not only run fast)."""
    from bpgpu import MLP
    from bpgpu.bench.workloads import WORKLOADS, make_data
    from bpgpu.backend.device import resolve

    rows = []
    for name in workloads:
        wl = (table or WORKLOADS)[name]
        n = (steps or {"W3": 8}).get(name, 50)
        x, labels, _ = make_data(wl, n * wl.batch, "float32")
        base = None
        for precision in MIXED:
            row: dict[str, Any] = {"workload": name, "precision": precision}
            try:
                net = MLP(list(wl.sizes), hidden=wl.hidden, output=wl.output, cost=wl.cost, device=device,
                          seed=0, precision=precision)
                xs, ys = net.as_features(x), net.as_targets(labels, x.shape[0])
                net.fit(xs[: 2 * wl.batch], ys[: 2 * wl.batch], 1, wl.batch, progress=False, seed=0)  # warm-up
                backend = resolve(device)
                backend.synchronize()
                t0 = time.perf_counter()
                hist = net.fit(xs, ys, 1, wl.batch, progress=False, seed=0)
                backend.synchronize()
                step = (time.perf_counter() - t0) / n
                base = step if precision == "float32" else base
                row.update(status="ok", step_s=step, ratio_to_float32=None if base is None else step / base,
                           last_cost=float(hist.cost[-1]))
            except Exception as exc:  # a precision this card or CuPy lacks is reported, not fatal
                row.update(status="skipped", reason=f"{type(exc).__name__}: {exc}")
            rows.append(row)
            log(f"mixed precision {name} {precision}: {row.get('status')}")
    return rows


# -- TF32 on/off around a block -------------------------------------------------------------------
@contextlib.contextmanager
def tf32(enabled: bool, index: int) -> Iterator[None]:
    """bpgpu's and CuPy's TF32 switched for the block (variables and CuPy's float32 compute type;
    torch's matmul precision where torch sees a GPU), then as they were."""
    from bpgpu.backend.precision import tf32_scope

    saved = {k: os.environ.get(k) for k in ("CUPY_TF32", "BPGPU_TF32")}
    os.environ.update({"CUPY_TF32": "1" if enabled else "0", "BPGPU_TF32": "1" if enabled else "0"})
    torch = sys.modules.get("torch")
    torch_before = torch.get_float32_matmul_precision() if torch is not None else None
    if torch is not None:
        torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        with _cupy_scope(enabled, index, tf32_scope):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if torch is not None:
            torch.set_float32_matmul_precision(torch_before)


def _cupy_scope(enabled: bool, index: int, tf32_scope: Any) -> Any:
    if "cupy" not in sys.modules or not hasattr(sys.modules["cupy"], "_core"):
        return contextlib.nullcontext()  # a stand-in GPU (tests): nothing to set
    from bpgpu.backend.device import resolve

    return tf32_scope(resolve(f"cuda:{index}"), enabled)


# -- targets --------------------------------------------------------------------------------------
def _row(record: dict[str, Any] | None, workload: str, contender: str) -> dict[str, Any] | None:
    for r in (record or {}).get("results", []):
        if r["workload"] == workload and r["contender"] == contender and r["status"] == "ok":
            return r
    return None


def crossovers(sweep: dict[str, Any] | None) -> dict[str, Any]:
    """Per workload: the smallest batch size from which bpgpu on the GPU trains more samples/s than on
    the CPU, at the sweep width nearest the workload's hidden width (None: the GPU never won)."""
    if not sweep:
        return {}
    speed = {(p["device"], p["width"], p["batch"]): p["samples_per_s"] for p in sweep["points"] if p.get("status") == "ok"}
    widths = sorted({w for (_, w, _) in speed})
    out: dict[str, Any] = {}
    for name, hidden in WORKLOAD_WIDTH.items():
        if not widths:
            break
        w = min(widths, key=lambda v: abs(v - hidden))
        batches = sorted(b for (d, ww, b) in speed if d == "gpu" and ww == w and ("cpu", w, b) in speed)
        won = [b for b in batches if speed[("gpu", w, b)] > speed[("cpu", w, b)]]
        out[name] = {"sweep_width": w, "batch": won[0] if won else None, "batches_compared": batches}
    return out


def evaluate(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against the measured numbers: key, label, measured, limit, met (None: not measured)."""
    f32 = result.get("bench")
    w3, w2 = _row(f32, "W3", FIT_GPU), _row(f32, "W2", FIT_GPU)
    rows = [
        ("w3_gemm", "W3 fit step ÷ cuBLAS GEMM floor", (w3 or {}).get("ratio_to_gemm_floor"), GEMM_LIMIT, "≤"),
        ("w3_torch", "W3 fit step ÷ PyTorch CUDA eager", (w3 or {}).get("ratio_to_torch"), TORCH_LIMIT, "≤"),
        ("w2_speedup", "W2 GPU speedup over the CPU", (w2 or {}).get("speedup_over_cpu"), 1.0, ">"),
    ]
    for dtype, p in (result.get("parity") or {}).items():
        rows.append((f"parity_{dtype}", f"gradient parity {dtype} (÷ largest entry)", p["worst"], p["limit"], "≤"))
    out = []
    for key, label, value, limit, op in rows:
        met = None if value is None else (value <= limit if op == "≤" else value > limit)
        out.append({"key": key, "target": label, "measured": value, "limit": limit, "op": op, "met": met})
    return out


# -- the run --------------------------------------------------------------------------------------
def suite_config(tf32_on: bool, quick_sweep: bool = False) -> Any:
    from bpgpu.bench import BenchConfig

    if tf32_on:  # the GPU rows only: what TF32 changes
        return BenchConfig(workloads=["W2", "W3"], dtypes=["float32"], devices=["gpu"], sweep=False, memory="off")
    grid = (SWEEP_GRID[0][:2], SWEEP_GRID[1][:3], SWEEP_GRID[2]) if quick_sweep else SWEEP_GRID
    return BenchConfig(workloads=["W1", "W2", "W3"], dtypes=["float32"], devices=["cpu", "gpu"], sweep=True,
                       memory="off", sweep_grid=grid)


def run_checks(index: int, skip_tests: bool = False, log: Log = print) -> dict[str, Any]:
    """Every check, in order; returns the JSON-ready result (``write`` stores it)."""
    started = time.time()
    result: dict[str, Any] = {"card": probe(index), "started_unix": started}
    log(f"checking {result['card']['name']} (cuda:{index})")
    with tf32(False, index):
        result["tests"] = {"status": "not run", "reason": "--skip-tests"} if skip_tests else gpu_tests()
        log(f"GPU tests: {result['tests']['status']}")
        result["parity"] = parity(f"cuda:{index}")
        result["bench"] = bench(suite_config(False), log)
    with tf32(True, index):
        from bpgpu.backend.precision import tf32_report

        result["tf32_state"] = tf32_report(True)
        result["bench_tf32"] = bench(suite_config(True), log)
    with tf32(False, index):
        result["mixed"] = mixed_rows(f"cuda:{index}", log)
    result["crossover_batch"] = crossovers((result["bench"] or {}).get("sweep"))
    result["targets"] = evaluate(result)
    result["elapsed_s"] = round(time.time() - started, 1)
    return result


def card_slug(card: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", card["name"].lower()).strip("-") or "gpu"


def write(result: dict[str, Any], out_dir: pathlib.Path) -> dict[str, str]:
    """``check-gpu.json`` / ``check-gpu.md`` and the bench records (JSON, markdown, PNG) into ``out_dir``."""
    from bpgpu.bench.report import write_all

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for key, sub in (("bench", "float32"), ("bench_tf32", "tf32")):
        if result.get(key):
            for kind, path in write_all(result[key], out_dir / sub, plot_png=sub == "float32").items():  # the sweep plot
                paths[f"{sub} {kind}"] = path
    for name, text in (("check-gpu.json", json.dumps(result, indent=1, default=str) + "\n"),
                       ("check-gpu.md", markdown(result))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)  # atomic
        paths[name] = str(out_dir / name)
    return paths


def _fmt(v: Any, digits: int = 3) -> str:
    return "not measured" if v is None else (f"{v:.{digits}g}" if isinstance(v, float) else str(v))


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The one-screen summary."""
    card, tests = result["card"], result["tests"]
    lines = [f"card: {card['name']} ({card.get('selected', 'cuda:%d' % card['index'])}, {card.get('memory_gib')} GiB, sm {card.get('compute_capability')}), "
             f"CuPy {card.get('cupy')}, CUDA runtime {card.get('cuda_runtime')}, driver {card.get('cuda_driver')}"]
    if tests["status"] == "not run":
        lines.append(f"GPU tests: not run ({tests['reason']})")
    else:
        lines.append(f"GPU tests (pytest -m gpu, TF32 off): {tests['status']}: {tests.get('passed', 0)} passed, "
                     f"{tests.get('failures', 0)} failed, {tests.get('errors', 0)} errors, {tests.get('skipped', 0)} skipped")
    lines.append("targets (float32, TF32 off):")
    for t in result["targets"]:
        met = "not measured" if t["met"] is None else ("met" if t["met"] else "MISSED")
        lines.append(f"  {t['target']:<42} {_fmt(t['measured']):>12}  {t['op']} {t['limit']:g}  {met}")
    cross = result.get("crossover_batch") or {}
    if cross:
        lines.append("crossover (GPU faster than CPU from batch): " + "; ".join(
            f"{k} (width {v['sweep_width']}): {v['batch'] if v['batch'] is not None else 'never in ' + str(v['batches_compared'])}"
            for k, v in cross.items()))
    for name in ("W2", "W3"):
        off, on = _row(result.get("bench"), name, FIT_GPU), _row(result.get("bench_tf32"), name, FIT_GPU)
        if off and on:
            lines.append(f"TF32 on: {name} fit epoch {on['epoch_s']:.3g} s vs {off['epoch_s']:.3g} s in float32 "
                         f"(speedup {off['epoch_s'] / on['epoch_s']:.2f}x)")
    for r in result.get("mixed") or []:
        if r["status"] == "ok":
            lines.append(f"mixed precision: {r['workload']} {r['precision']:<9} {r['step_s'] * 1e3:8.2f} ms/step"
                         f"  {_fmt(r.get('ratio_to_float32'))}x float32  last cost {r['last_cost']:.4g}")
        else:
            lines.append(f"mixed precision: {r['workload']} {r['precision']}: skipped ({r['reason'][:80]})")
    lines.append(f"elapsed: {result.get('elapsed_s', 0):.0f} s")
    return lines


def markdown(result: dict[str, Any]) -> str:
    rows = "\n".join(f"| {t['target']} | {_fmt(t['measured'])} | {t['op']} {t['limit']:g} | "
                     f"{'not measured' if t['met'] is None else ('yes' if t['met'] else '**no**')} |" for t in result["targets"])
    return (f"# bpgpu check-gpu: {result['card']['name']}\n\n```\n" + "\n".join(summary_lines(result)) + "\n```\n\n"
            "| target | measured | limit | met? |\n| --- | --- | --- | --- |\n" + rows + "\n")


def passed(result: dict[str, Any]) -> bool:
    """The card is valid: the GPU tests did not fail and every parity target is met."""
    parity_ok = all(t["met"] for t in result["targets"] if t["key"].startswith("parity_"))
    return result["tests"]["status"] != "failed" and parity_ok


def run(args: argparse.Namespace) -> int:
    match = re.fullmatch(r"(?:cuda|gpu)(?::(\d+))?", args.device.strip().lower())
    if not match:
        raise ConfigError(f"--device {args.device!r} is not a GPU; expected cuda or cuda:N (e.g. cuda:1).")
    index = int(match.group(1) or 0)
    selected = f"cuda:{index}"
    if index and "cupy" not in sys.modules:  # card N becomes the only visible one: the bench runs on cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        index = 0
    result = run_checks(index, skip_tests=args.skip_tests, log=lambda m: print(f"bpgpu check-gpu: {m}", flush=True))
    result["card"]["selected"] = selected
    out = pathlib.Path(args.out) if args.out else pathlib.Path("benchmarks") / "results" / card_slug(result["card"])
    paths = write(result, out)
    print("\n".join(summary_lines(result)))
    print(f"wrote {paths['check-gpu.md']} and {len(paths) - 1} more file(s) under {out}")
    return 0 if passed(result) else 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check-gpu", help="validate a GPU: GPU tests, parity, CPU-vs-GPU fit, crossover, TF32 and mixed precision")
    p.add_argument("--device", default="cuda:0", help="the card to check: cuda or cuda:N (default cuda:0)")
    p.add_argument("--out", metavar="DIR", default=None, help="where to write (default benchmarks/results/<card>/)")
    p.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu (e.g. from an installed wheel)")
    p.set_defaults(func=run)
