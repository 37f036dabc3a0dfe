"""Run the full benchmark suite and write JSON, markdown and a plot under benchmarks/results/.

    python benchmarks/run.py                 # the full suite: W1–W3 × float32/float64, the sweep
    python benchmarks/run.py --threads 1     # the same with one BLAS/OpenMP/torch thread
    python benchmarks/run.py --dtype float32 --workload W1,W2
    python benchmarks/render_readme.py       # then: the README's Benchmarks table from both results

The bpgpu rows time ``MLP.fit`` itself (one epoch, data on the device, fit's defaults, progress off);
the markdown lists issue 9's targets with a "target met?" column computed from the rows.

All flags are those of ``bpgpu bench`` (``--full`` is implied, ``--out`` defaults to benchmarks/results).
For the BLAS kernel OpenBLAS auto-detects, unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command
only; the kernel that ran is recorded in the results (machine.blas[].architecture).
"""

from __future__ import annotations

import pathlib
import sys

from bpgpu.cli.main import main

RESULTS = pathlib.Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--full" not in argv:
        argv.append("--full")
    if "--out" not in argv:
        argv += ["--out", str(RESULTS)]
    sys.exit(main(["bench", *argv]))
