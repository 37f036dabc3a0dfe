"""Report writers: the JSON record, a markdown table and a matplotlib plot (speed vs size on CPU and
GPU with the crossover marked), named after the CPU or card."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from bpgpu.bench import targets
from bpgpu.bench.machine import slug
from bpgpu.backend.precision import tf32_summary


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def results_table(record: dict[str, Any]) -> str:
    """The per-workload table (markdown; also what ``bpgpu bench`` prints)."""
    head = ("| workload | dtype | contender | device | s/epoch | × reference | × torch | × GEMM floor | samples/s "
            "| CPU s/epoch | host MB | device MB | note |")
    lines = [head, "|" + " --- |" * 13]
    for r in record["results"]:
        if r["status"] != "ok":
            lines.append(f"| {r['workload']} | {r['dtype']} | {r['contender']} | {r['device']} | skipped "
                         f"| | | | | | | | {r['reason']} |")
            continue
        note = f"scaled from {r['measured_steps']}/{r['epoch_steps']} batches" if r["scaled"] else ""
        if r.get("time_boxed"):
            note += " (time-boxed: its warm-up predicted a slow call)"
        extra = r.get("describe", {}).get("note")
        if r.get("memory_error"):
            extra = "; ".join(x for x in (extra, f"memory: {r['memory_error']}") if x)
        speedup = f"{r['speedup_over_cpu']:.1f}× faster than bpgpu on the CPU" if "speedup_over_cpu" in r else ""
        note = "; ".join(x for x in (note, speedup, extra) if x)
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {r['contender']} | {r['device']} | {r['epoch_s']:.3f} "
            f"| {_fmt(r['ratio_to_reference'], '.2f')} | {_fmt(r.get('ratio_to_torch'), '.2f')} "
            f"| {_fmt(r['ratio_to_gemm_floor'], '.2f')} "
            f"| {r['samples_per_s']:,.0f} | {r['cpu_epoch_s']:.3f} | {_fmt(r.get('host_peak_mb'), '.0f')} "
            f"| {_fmt(r.get('device_peak_mb'), '.0f')} | {note} |")
    return "\n".join(lines)


def sweep_table(sweep: dict[str, Any] | None) -> str:
    if not sweep:
        return "(sweep not run)"
    lines = ["| device | width | batch | samples/s | s/step |", "| --- | --- | --- | --- | --- |"]
    for p in sweep["points"]:
        if p["status"] == "ok":
            lines.append(f"| {p['device']} | {p['width']} | {p['batch']} | {p['samples_per_s']:,.0f} | {p['step_s']:.2e} |")
        elif "width" in p:
            lines.append(f"| {p['device']} | {p['width']} | {p['batch']} | skipped | {p['reason']} |")
        else:
            lines.append(f"| {p['device']} | all | all | skipped | {p['reason']} |")
    cross = sweep["crossover_width_by_batch"] or sweep["crossover_status"]
    return "\n".join(lines) + f"\n\nGPU overtakes CPU (smallest width, by batch): {cross}"


def _lib_dir(blas: dict[str, Any]) -> str:
    """``numpy.libs/`` or ``scipy.libs/``: which package shipped this BLAS (several may be loaded)."""
    path = blas.get("filepath")
    return f"{pathlib.Path(path).parent.name}/" if path else ""


def machine_lines(machine: dict[str, Any]) -> list[str]:
    blas = "; ".join(f"{_lib_dir(b)}{b.get('prefix')} ({b.get('internal_api')} {b.get('version')}) kernel "
                     f"{b.get('architecture')}, {b.get('num_threads')} threads"
                     for b in machine["blas"] if b.get("user_api") == "blas")
    gpu = machine["gpu"]
    card = (f"{gpu['name']} ({gpu.get('memory_gib')} GiB), CUDA runtime {gpu.get('cuda_runtime')}, "
            f"driver {gpu.get('cuda_driver')}" if gpu.get("name") else gpu["status"])
    torch = machine["torch"]
    tf32 = (tf32_summary(gpu["tf32"]) if "tf32" in gpu else f"CuPy: {gpu.get('cupy_tf32_env (CUPY_TF32)')}") + (
        f"; torch matmul: {torch.get('tf32_matmul', 'n/a')}")  # what CuPy's float32 GEMMs really use
    return [
        f"- CPU: {machine['cpu']}, {machine['usable_cores']} usable cores ({machine['logical_cores']} logical)",
        f"- BLAS: {blas or 'unknown'}; env: {machine['env'] or 'no BLAS/thread variables set'}",
        f"- torch: {torch.get('version', torch.get('status'))}, {torch.get('threads', '—')} threads; "
        f"scikit-learn {machine['scikit-learn']}",
        f"- GPU: {card}; TF32 — {tf32}",
        f"- {machine['platform']}, Python {machine['python']}; load average (1/5/15 min) before, after: "
        f"{machine.get('load_average_before_after')}",
    ]


ROWS_NOTE = ("Rows: \"bpgpu numpy\" / \"bpgpu cupy\" time `MLP.fit` itself (one epoch, its defaults on, "
             "`progress=False`); \"numpy reference\" is a hand-written NumPy loop doing the same job (shuffles, "
             "computes every batch's cost); \"torch cpu\" is a PyTorch autograd loop doing the same; "
             "\"bpgpu raw step (diagnostic)\" is raw backprop + SGD on consecutive slices, not what users run.")


def threads_line(record: dict[str, Any]) -> str:
    """The thread setting and what ran: BLAS threads and kernel (threadpoolctl), torch threads."""
    t = record.get("threads")
    if not t:
        return str(record["config"].get("threads") or "library defaults")
    blas = ", ".join(map(str, t["blas"])) or "?"
    return (f"{t['setting']} (BLAS {blas} thread(s), kernel {', '.join(t['blas_kernel']) or '?'}; "
            f"torch {t['torch'] if t['torch'] is not None else '—'} thread(s))")


def markdown(record: dict[str, Any]) -> str:
    mode = "full" if record["config"]["full"] else "quick"
    wls = "\n".join(f"- {n}: {w['label']}, {w['samples']:,} samples per epoch"
                    for n, w in record["config"]["workloads"].items())
    found = targets.evaluate(record)
    return "\n".join([
        f"# bpgpu benchmark ({mode})", "", *machine_lines(record["machine"]), "", wls, "",
        f"Method: {record['method']} Threads: {threads_line(record)}. Elapsed {record['elapsed_s']} s.", "",
        ROWS_NOTE, "",
        results_table(record), "", "## Issue 9 targets (computed from the rows above)", "",
        targets.summary(found) + ".", "", targets.table(found), "", "## Width × batch sweep", "",
        f"{(record['sweep'] or {}).get('model', '')}, {(record['sweep'] or {}).get('dtype', '')}", "",
        sweep_table(record["sweep"]), "",
    ])


def plot(record: dict[str, Any], path: pathlib.Path) -> None:
    """Samples/s vs hidden width per batch size (CPU solid, GPU dashed), crossover marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    sweep = record["sweep"] or {"points": [], "crossover_width_by_batch": {}, "crossover_status": "sweep not run"}
    ok = [p for p in sweep["points"] if p["status"] == "ok"]
    batches = sorted({p["batch"] for p in ok})
    colors = {b: plt.cm.viridis(i / max(len(batches) - 1, 1)) for i, b in enumerate(batches)}
    for device, style in (("cpu", "-o"), ("gpu", "--s")):
        for b in batches:
            pts = sorted((p["width"], p["samples_per_s"]) for p in ok if p["device"] == device and p["batch"] == b)
            if pts:
                ax.plot(*zip(*pts), style, color=colors[b], label=f"{device} batch {b}")
    for b, w in (sweep["crossover_width_by_batch"] or {}).items():
        if w is not None:
            ax.axvline(w, color=colors.get(int(b), "k"), alpha=0.4, linestyle=":")
            ax.annotate(f"GPU > CPU\nbatch {b}", (w, ax.get_ylim()[1]), fontsize=7, va="top")
    if not sweep["crossover_width_by_batch"]:
        ax.text(0.02, 0.02, f"crossover: {sweep['crossover_status']}", transform=ax.transAxes, fontsize=8)
    if ok:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
    ax.set_xlabel("hidden width w  ([784, w, w, 10])")
    ax.set_ylabel("training samples / s (bpgpu)")
    machine = record["machine"]
    ax.set_title(f"bpgpu speed vs size — {machine['cpu']} ({machine['usable_cores']} cores)"
                 + (f" / {machine['gpu']['name']}" if machine["gpu"].get("name") else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(record: dict[str, Any], out_dir: str | pathlib.Path, plot_png: bool = True) -> dict[str, str]:
    """Write ``<mode>-<cpu-or-card>.{json,md,png}`` into ``out_dir``; return the paths written."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gpu = any(r["device"] == "gpu" and r["status"] == "ok" for r in record["results"])
    threads = record["config"].get("threads")
    stem = f"{'full' if record['config']['full'] else 'quick'}-{slug(record['machine'], gpu)}"
    stem += f"-{threads}thread" if threads else ""
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    paths["json"].write_text(json.dumps(record, indent=1, default=str) + "\n")
    paths["md"].write_text(markdown(record))
    if plot_png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            paths["png"] = out / f"{stem}.png"
            plot(record, paths["png"])
    return {k: str(v) for k, v in paths.items()}
