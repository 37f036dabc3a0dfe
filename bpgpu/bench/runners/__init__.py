"""One runner per contender. Each ``Runner`` is set up once on a workload's data (moved to its device
up front), then ``run(steps)`` does ``steps`` training steps (forward + backward + update) and waits
for the device. A runner whose library is missing reports why in ``skip_reason()`` instead of failing."""

from __future__ import annotations

from bpgpu.bench.runners.base import Runner
from bpgpu.bench.runners.bpgpu_runner import BpgpuRunner, RawStepRunner
from bpgpu.bench.runners.gemm import GemmFloorRunner
from bpgpu.bench.runners.reference import ReferenceRunner
from bpgpu.bench.runners.sklearn_runner import SklearnRunner
from bpgpu.bench.runners.torch_runner import TorchRunner

__all__ = ["Runner", "BpgpuRunner", "RawStepRunner", "GemmFloorRunner", "ReferenceRunner", "SklearnRunner", "TorchRunner", "contenders"]


def contenders(device: str) -> list[Runner]:
    """The runners for ``device`` ("cpu" or "gpu"), reference first; bpgpu's row is ``fit`` itself and
    its raw-step row a labelled diagnostic."""
    if device == "cpu":
        return [ReferenceRunner(), BpgpuRunner("cpu"), TorchRunner("cpu"), SklearnRunner(), GemmFloorRunner("cpu"),
                RawStepRunner("cpu")]
    return [BpgpuRunner("gpu"), TorchRunner("cuda"), GemmFloorRunner("gpu"), RawStepRunner("gpu")]
