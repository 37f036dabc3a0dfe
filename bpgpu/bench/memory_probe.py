"""Peak memory of one contender, measured in a fresh process so that memory freed by earlier
contenders (kept by the allocator, still resident) cannot hide this one's.

    python -c "import sys; from bpgpu.bench.memory_probe import main; sys.exit(main(sys.argv[1:]))" '{...}'

prints one JSON line: host RSS high-water growth over the baseline taken after the imports and the
host data, and the device pool / allocator peak for GPU contenders."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from bpgpu.bench import memory
from bpgpu.bench.runners import Runner, contenders
from bpgpu.bench.workloads import Workload, make_data


def measure(runner: Runner, workload: Workload, dtype: str, steps: int) -> dict[str, Any]:
    """Set ``runner`` up and run ``steps`` steps; host RSS growth and device peak in MiB (this process)."""
    data = make_data(workload, steps * workload.batch, dtype)
    runner.import_library()
    runner.reset_peak()
    memory.reset_peak()
    rss0 = memory.current_rss_bytes()
    runner.setup(workload, dtype, *data)
    runner.run(steps)
    peak = memory.peak_rss_bytes()
    dev = runner.device_peak_bytes()
    runner.teardown()
    return {
        "host_peak_mb": None if peak is None or rss0 is None else round(max(peak - rss0, 0) / 2**20, 1),
        "device_peak_mb": None if dev is None else round(dev / 2**20, 1),
    }


def measure_in_subprocess(runner: Runner, workload: Workload, dtype: str, steps: int, timeout: float = 600) -> dict[str, Any]:
    """``measure`` in a fresh Python process; on failure the reason is returned instead of numbers."""
    spec = {"device": runner.device, "contender": runner.name, "workload": asdict(workload), "dtype": dtype,
            "steps": steps}
    try:
        code = "import sys; from bpgpu.bench.memory_probe import main; sys.exit(main(sys.argv[1:]))"
        out = subprocess.run([sys.executable, "-c", code, json.dumps(spec)],
                             capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        return {"host_peak_mb": None, "device_peak_mb": None,
                "memory_error": f"{type(exc).__name__}: {str(detail).strip()[-300:] or exc}"}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    workload = Workload(**{**spec["workload"], "sizes": tuple(spec["workload"]["sizes"])})
    runner = next(r for r in contenders(spec["device"]) if r.name == spec["contender"])
    print(json.dumps(measure(runner, workload, spec["dtype"], int(spec["steps"]))))
    return 0
