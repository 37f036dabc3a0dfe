"""``bpgpu bench``: epoch time of bpgpu against a hand-written NumPy reference, PyTorch, scikit-learn
and the GEMM floor, on the CPU and (when usable) the GPU. See ``benchmarks/`` and README "Benchmarks"."""

from bpgpu.bench.suite import BenchConfig, run_suite
from bpgpu.bench.workloads import WORKLOADS, Workload

__all__ = ["BenchConfig", "run_suite", "WORKLOADS", "Workload"]
