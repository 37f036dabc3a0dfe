"""Data-parallel scaling of ``net.fit(..., comm=...)`` from 1 to 2 processes on this machine.

    python benchmarks/distributed_scaling.py [--repeats 3] [--w2-samples 15360] [--w3-samples 2048]

Workloads (float32, SGD, synthetic data): W2 = [784, 256, 256, 10] ReLU/softmax/CE, batch 128;
W3 = [1024, 4096, 4096, 1024, 10] ReLU/softmax/CE, batch 512 (fewer samples than the full 16,384 so
the run takes minutes). Each configuration is a fresh launch; the epoch time is the median of the
epochs after the first (warm-up), and the reported figure is the median over ``--repeats`` launches.

Configurations (the BLAS thread count is set per process through OMP/OPENBLAS/MKL_NUM_THREADS):
  1p x 2t   one process, LocalComm, BLAS on both cores (what a user gets without mpirun)
  1p x 1t   one process, one BLAS thread (the per-rank compute of the 2-process run)
  2p x 1t   mpirun -np 2, one BLAS thread per rank (no oversubscription)

Writes benchmarks/results/distributed_scaling_<cpu>.json and .md. Internally the script re-runs
itself with ``--worker``; rank 0 of a worker prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
MCA = ["--mca", "pml", "ob1", "--mca", "btl", "self,sm"]  # shared memory only: no network probing
WORKLOADS = {  # name: (sizes, batch, full-epoch samples, learning rate); as issue 4's W2/W3
    "W2": ((784, 256, 256, 10), 128, 60_000, 0.05),
    "W3": ((1024, 4096, 4096, 1024, 10), 512, 16_384, 0.01),
}
CONFIGS = [("1p x 2t", 1, 2), ("1p x 1t", 1, 1), ("2p x 1t", 2, 1)]


# -- worker (one launch) -----------------------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    import numpy as np

    import bpgpu
    from bpgpu.distributed import init

    comm = init()
    sizes, batch, _, lr = WORKLOADS[args.workload]
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], args.samples)
    net = bpgpu.MLP(list(sizes), hidden="relu", output="softmax", dtype="float32", seed=0)
    hist = net.fit(x, labels, epochs=args.epochs, batch_size=batch, optimizer=bpgpu.SGD(lr), seed=0,
                   progress=False, record_grad_norms=False, comm=comm)
    seconds = list(hist["seconds"])
    # the cost of one gradient all-reduce (all layers packed into one buffer), per step
    grads = [w * 0 for w in net.weights] + [b * 0 for b in net.biases]
    comm.barrier()
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        comm.allreduce_sum(grads)
    allreduce_s = (time.perf_counter() - t0) / reps
    if comm.rank == 0:
        try:
            from threadpoolctl import threadpool_info

            blas = [f"{p.get('internal_api')} {p.get('version')} {p.get('num_threads')} threads"
                    for p in threadpool_info() if p.get("user_api") == "blas"]
        except ImportError:
            blas = ["unknown"]
        print(json.dumps({
            "epoch_seconds": seconds, "allreduce_seconds": allreduce_s, "blas": blas,
            "comm": comm.describe() if hasattr(comm, "describe") else comm.name,
            "steps_per_epoch": -(-args.samples // batch),
        }), flush=True)


# -- driver ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def find_mpirun() -> str | None:
    local = pathlib.Path(sys.executable).parent / "mpirun"
    return str(local) if local.exists() else shutil.which("mpirun")


def launch(workload: str, procs: int, threads: int, samples: int, epochs: int, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update({"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "BPGPU_DEVICE": "cpu",
                "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    cmd = [sys.executable, __file__, "--worker", "--workload", workload, "--samples", str(samples),
           "--epochs", str(epochs)]
    if procs > 1:
        mpirun = find_mpirun()
        if mpirun is None:
            raise SystemExit("mpirun not found: pip install 'bpgpu[mpi]'")
        cmd = [mpirun, "-np", str(procs), "--bind-to", "none", *MCA, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_average() -> list[float]:
    try:
        return list(os.getloadavg())
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="W2")
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--w2-samples", type=int, default=15_360)
    parser.add_argument("--w3-samples", type=int, default=2_048)
    parser.add_argument("--only", choices=sorted(WORKLOADS), action="append", help="run only these workloads")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the .md next to an earlier results .json")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.render:
        data = json.loads(pathlib.Path(args.render).read_text())
        pathlib.Path(args.render).with_suffix(".md").write_text(markdown(data["meta"], data["summary"]))
        return

    samples = {"W2": args.w2_samples, "W3": args.w3_samples}
    epochs = {"W2": 5, "W3": 2}
    runs: list[dict] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name in args.only or sorted(WORKLOADS):
        for repeat in range(args.repeats):
            for label, procs, threads in CONFIGS:  # interleaved, so slow phases of a noisy machine hit all
                load = load_average()
                out = launch(name, procs, threads, samples[name], epochs[name], timeout=1800)
                timed = out["epoch_seconds"][1:] or out["epoch_seconds"]
                run = {"workload": name, "config": label, "procs": procs, "blas_threads": threads, "repeat": repeat,
                       "samples": samples[name], "epoch_seconds": out["epoch_seconds"],
                       "epoch_s": statistics.median(timed), "allreduce_s": out["allreduce_seconds"],
                       "steps_per_epoch": out["steps_per_epoch"], "blas": out["blas"], "comm": out["comm"],
                       "loadavg_before": load}
                runs.append(run)
                print(f"{name} {label} repeat {repeat}: {run['epoch_s']:.3f} s/epoch "
                      f"({samples[name]} samples), all-reduce {1e3 * run['allreduce_s']:.1f} ms", flush=True)

    summary = []
    for name in args.only or sorted(WORKLOADS):
        sizes, batch, full, _ = WORKLOADS[name]
        medians = {label: statistics.median(r["epoch_s"] for r in runs if r["workload"] == name and r["config"] == label)
                   for label, _, _ in CONFIGS}
        bests = {label: min(r["epoch_s"] for r in runs if r["workload"] == name and r["config"] == label)
                 for label, _, _ in CONFIGS}
        for label, procs, threads in CONFIGS:
            mine = [r for r in runs if r["workload"] == name and r["config"] == label]
            med = medians[label]
            steps = mine[0]["steps_per_epoch"]
            summary.append({
                "workload": name, "sizes": list(sizes), "batch": batch, "config": label, "procs": procs,
                "blas_threads": threads, "samples": samples[name], "repeats": len(mine),
                "epoch_s_median": med, "epoch_s_all": [r["epoch_s"] for r in mine],
                "spread_pct": 100 * (max(r["epoch_s"] for r in mine) - min(r["epoch_s"] for r in mine)) / med,
                "epoch_s_best": bests[label], "full_epoch_s_projected": med * full / samples[name],
                "speedup_vs_1p2t": medians["1p x 2t"] / med, "speedup_vs_1p1t": medians["1p x 1t"] / med,
                "best_speedup_vs_best_1p": min(bests["1p x 2t"], bests["1p x 1t"]) / bests[label],
                "loadavg_1min_before_runs": [r["loadavg_before"][0] for r in mine if r["loadavg_before"]],
                "ms_per_step": 1e3 * med / steps,
                "allreduce_ms_median": 1e3 * statistics.median(r["allreduce_s"] for r in mine) if procs > 1 else 0.0,
            })

    cpu = cpu_model()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"distributed_scaling_{slug(cpu)}"
    meta = {"cpu": cpu, "cores": os.cpu_count(), "started_utc": started, "python": platform.python_version(),
            "dtype": "float32", "optimizer": "SGD (no momentum)", "mca": " ".join(MCA),
            "comm": next((r["comm"] for r in runs if r["procs"] > 1), None)}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(meta, summary))
    print(f"wrote {stem}.json and .md")


def markdown(meta: dict, summary: list[dict]) -> str:
    lines = [
        f"# Data-parallel scaling on {meta['cpu']} ({meta['cores']} cores)",
        "",
        f"`python benchmarks/distributed_scaling.py`, {meta['started_utc']}; float32, {meta['optimizer']}, "
        f"synthetic data; MPI: {meta['comm']}; mpirun {meta['mca']}.",
        "Epoch time = median over launches of the median epoch after the first (warm-up).",
        "",
        "Configurations: `1p x 2t` = one process (no mpirun), BLAS on 2 threads; `1p x 1t` = one process, 1 BLAS",
        "thread; `2p x 1t` = `mpirun -np 2 --bind-to none`, 1 BLAS thread per rank (threads set with",
        "OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS, so 2 ranks never oversubscribe the 2 cores).",
        "`all-reduce ms / step` = one `comm.allreduce_sum` of all the gradients (packed into one buffer), timed",
        "after training.",
        "",
        "The machine is shared (other jobs were running: 1-minute load average before each launch in the last",
        "column), so the spread between launches is large; `best` is the fastest launch.",
        "",
        "| workload | config | samples | s / epoch (median) | best | runs (s) | ms / step | all-reduce ms / step "
        "| speed-up vs 1p x 2t | vs 1p x 1t | full epoch (projected) | load before |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in summary:
        runs = ", ".join(f"{v:.2f}" for v in s["epoch_s_all"])
        ar = f"{s['allreduce_ms_median']:.1f}" if s["procs"] > 1 else "–"
        load = ", ".join(f"{v:.1f}" for v in s["loadavg_1min_before_runs"])
        lines.append(
            f"| {s['workload']} | {s['config']} | {s['samples']} | {s['epoch_s_median']:.3f} | {s['epoch_s_best']:.3f} | "
            f"{runs} | {s['ms_per_step']:.1f} | {ar} | {s['speedup_vs_1p2t']:.2f}x | {s['speedup_vs_1p1t']:.2f}x | "
            f"{s['full_epoch_s_projected']:.1f} s | {load} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
