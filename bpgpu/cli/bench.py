"""``bpgpu bench``: time ``MLP.fit`` (what users run: one epoch, its defaults on, data on the device)
against a hand-written NumPy loop doing the same job, PyTorch, scikit-learn and the GEMM floor, and
check issue 9's targets against the numbers (a raw-step row is kept as a labelled diagnostic).

The default is a quick run (well under a minute on a CPU: fewer batches, scaled to the epoch);
``--full`` runs the whole suite (see ``benchmarks/run.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from bpgpu.errors import ConfigError

DEVICES = {"cpu": ["cpu"], "gpu": ["gpu"], "all": ["cpu", "gpu"], "auto": ["cpu", "gpu"]}


def config_from_args(args: argparse.Namespace) -> Any:
    from bpgpu.bench import WORKLOADS, BenchConfig

    workloads = [w.strip().upper() for w in args.workload.split(",")] if args.workload else list(WORKLOADS)
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ConfigError(f"--workload {','.join(unknown)} is not a workload; valid: {', '.join(WORKLOADS)}.")
    dtypes = [d.strip() for d in args.dtype.split(",")] if args.dtype else (
        ["float32", "float64"] if args.full else ["float32"])
    bad = [d for d in dtypes if d not in ("float32", "float64")]
    if bad:
        raise ConfigError(f"--dtype {','.join(bad)} is not supported; use float32, float64 or both (comma-separated).")
    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1; got {value}.")
    return BenchConfig(workloads=workloads, dtypes=dtypes, devices=DEVICES[args.device], full=args.full,
                       sweep=not args.no_sweep, repeats=args.repeats, threads=args.threads,
                       repeat_budget_s=args.repeat_budget if args.repeat_budget > 0 else None,
                       memory=args.memory or ("subprocess" if args.full else "off"))


def run(args: argparse.Namespace) -> int:
    from bpgpu.bench import run_suite, targets
    from bpgpu.bench.report import results_table, sweep_table, write_all

    cfg = config_from_args(args)
    record = run_suite(cfg, log=lambda msg: print(f"bpgpu bench: {msg}", flush=True))
    print(results_table(record))
    print()
    print(f"issue 9 targets: {targets.summary(targets.evaluate(record))}")
    if record["sweep"]:
        print()
        print(sweep_table(record["sweep"]))
    if args.out:
        for kind, path in write_all(record, args.out).items():
            print(f"wrote {kind}: {path}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark epoch times: bpgpu fit vs NumPy, PyTorch, scikit-learn, GEMM floor")
    p.add_argument("--full", action="store_true", help="whole epochs, more repeats, float32 and float64, full sweep")
    p.add_argument("--device", choices=sorted(DEVICES), default="all",
                   help="cpu, gpu, or all (default: all; GPU contenders are skipped when no GPU is usable)")
    p.add_argument("--dtype", default=None, help="float32, float64 or both comma-separated (default: float32; --full: both)")
    p.add_argument("--workload", default=None, help="W1, W2, W3 (comma-separated; default: all)")
    p.add_argument("--repeats", type=int, default=None, help="override the number of interleaved repeats")
    p.add_argument("--threads", type=int, default=None,
                   help="limit BLAS/OpenMP and torch threads for every contender (default: the libraries' own)")
    p.add_argument("--memory", choices=["subprocess", "inline", "off"], default=None,
                   help="peak memory per contender: in a fresh process (default with --full), inline, or off (quick default)")
    p.add_argument("--repeat-budget", type=float, default=20.0, metavar="SECONDS",
                   help="time a contender whose warm-up predicts a timed call longer than this on fewer batches "
                        "(at least a tenth; scaled to the epoch; W1/W2 only; default 20; 0: never)")
    p.add_argument("--no-sweep", action="store_true", help="skip the width × batch sweep")
    p.add_argument("--out", metavar="DIR", default=None, help="write JSON, markdown and PNG into DIR")
    p.set_defaults(func=run)
