"""PyTorch eager with autograd (CPU, and CUDA when present): ``nn.Sequential`` of ``nn.Linear``,
``torch.optim.SGD``, the usual zero_grad / backward / step loop doing ``fit``'s job: each epoch a
fresh ``torch.randperm`` order, batches gathered by it, every batch's loss summed on the device
(one read per epoch, the epoch's mean cost kept)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from bpgpu.bench.runners.base import Runner
from bpgpu.bench.workloads import Workload


class TorchRunner(Runner):
    def __init__(self, device: str = "cpu") -> None:
        self.torch_device = device
        self.device = "cpu" if device == "cpu" else "gpu"
        self.name = "torch cpu" if device == "cpu" else "torch cuda"

    def skip_reason(self, workload: Workload, dtype: str) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install torch)"
        if self.device == "gpu":
            import torch

            if not torch.cuda.is_available():
                return "torch has no usable CUDA device"
        return None

    def import_library(self) -> None:
        import torch  # noqa: F401

    def setup(self, workload: Workload, dtype: str, x: np.ndarray, labels: np.ndarray, onehot: np.ndarray) -> None:
        import torch

        torch.manual_seed(0)
        tdtype = getattr(torch, dtype)
        dev = torch.device(self.torch_device)
        layers: list[Any] = []
        act = torch.nn.Sigmoid if workload.hidden == "sigmoid" else torch.nn.ReLU
        pairs = list(zip(workload.sizes[:-1], workload.sizes[1:]))
        for l, (n_in, n_out) in enumerate(pairs):
            layers.append(torch.nn.Linear(n_in, n_out))
            if l < len(pairs) - 1:
                layers.append(act())
        if workload.output == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        model = torch.nn.Sequential(*layers).to(device=dev, dtype=tdtype)
        self.state = {
            "torch": torch, "model": model, "wl": workload, "costs": [],
            "gen": torch.Generator(device=dev).manual_seed(0),
            "opt": torch.optim.SGD(model.parameters(), lr=workload.lr),
            "x": torch.from_numpy(x).to(dev),
            "y": torch.from_numpy(onehot).to(dev) if workload.cost == "quadratic" else torch.from_numpy(labels).to(dev),
        }
        self._sync()

    def _sync(self) -> None:
        if self.device == "gpu":
            self.state["torch"].cuda.synchronize()

    def run(self, steps: int) -> None:
        s = self.state
        torch, model, opt, x, y, m = s["torch"], s["model"], s["opt"], s["x"], s["y"], s["wl"].batch
        quadratic = s["wl"].cost == "quadratic"
        cross_entropy = torch.nn.functional.cross_entropy
        order = torch.randperm(steps * m, generator=s["gen"], device=x.device)
        total = torch.zeros((), dtype=x.dtype, device=x.device)
        for i in range(steps):
            idx = order[i * m:(i + 1) * m]
            out = model(x.index_select(0, idx))
            yb = y.index_select(0, idx)
            loss = 0.5 * ((out - yb) ** 2).sum(dim=1).mean() if quadratic else cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        s["costs"].append(float(total) / steps)  # one read per epoch (synchronises the device)

    def reset_peak(self) -> None:
        if self.device == "gpu":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def device_peak_bytes(self) -> int | None:
        if self.device != "gpu":
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())

    def describe(self) -> dict[str, Any]:
        import torch

        info: dict[str, Any] = {"library": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
                                "runs": "autograd loop: randperm each epoch, every batch's loss summed"}
        if self.device == "gpu":
            info["tf32 matmul"] = torch.backends.cuda.matmul.allow_tf32
            info["tf32 cudnn"] = torch.backends.cudnn.allow_tf32
        return info
