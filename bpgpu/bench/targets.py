"""Issue 9's speed and memory targets, checked against a benchmark record (never hard-coded results).

Each target reads one measured number of the "bpgpu numpy" row (``fit`` with its defaults) and
compares it with a limit: ratios are the medians of per-repeat ratios from the interleaved runs
(``bpgpu.bench.timing.paired_ratio``); memory is the host RSS high-water growth of each contender,
measured alone in a fresh process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

FIT_CPU = "bpgpu numpy"
REFERENCE = "numpy reference"


@dataclass(frozen=True)
class Target:
    """``measure(fit_row, rows_by_contender) ≤ limit`` on each of ``workloads``."""

    key: str
    label: str
    workloads: tuple[str, ...]
    limit: float
    measure: Callable[[dict[str, Any], dict[str, dict[str, Any]]], float | None]
    stretch: bool = False


def _field(name: str) -> Callable[[dict[str, Any], dict[str, dict[str, Any]]], float | None]:
    return lambda fit, rows: fit.get(name)


def _memory_ratio(fit: dict[str, Any], rows: dict[str, dict[str, Any]]) -> float | None:
    """fit's host peak ÷ the hand-written loop's (both in a fresh process, same steps)."""
    ref = rows.get(REFERENCE, {})
    a, b = fit.get("host_peak_mb"), ref.get("host_peak_mb")
    return None if a is None or not b else a / b


TARGETS: tuple[Target, ...] = (
    Target("vs_numpy", "fit ÷ same-job NumPy loop", ("W1", "W2", "W3"), 1.00, _field("ratio_to_reference")),
    Target("vs_torch", "fit ÷ PyTorch CPU autograd", ("W1", "W2", "W3"), 1.00, _field("ratio_to_torch")),
    Target("vs_gemm", "fit ÷ GEMM floor", ("W3",), 1.05, _field("ratio_to_gemm_floor")),
    Target("memory", "fit peak host memory ÷ NumPy loop's", ("W3",), 1.00, _memory_ratio),
    Target("stretch_vs_numpy", "stretch: fit ÷ same-job NumPy loop", ("W1",), 0.90, _field("ratio_to_reference"),
           stretch=True),
)


def evaluate(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, workload, dtype) present in ``record``: measured value, limit, met.

    ``met`` is None when the number was not measured (a contender skipped, memory off)."""
    rows_by: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in record["results"]:
        if r["status"] == "ok" and r["device"] == "cpu":
            rows_by.setdefault((r["workload"], r["dtype"]), {})[r["contender"]] = r
    out: list[dict[str, Any]] = []
    dtypes = list(dict.fromkeys(r["dtype"] for r in record["results"]))
    for t in TARGETS:
        for wl in t.workloads:
            for dtype in dtypes:
                rows = rows_by.get((wl, dtype))
                if rows is None and not any(r["workload"] == wl for r in record["results"]):
                    continue  # workload not in this run
                fit = (rows or {}).get(FIT_CPU)
                value = t.measure(fit, rows or {}) if fit is not None else None
                out.append({"key": t.key, "target": t.label, "workload": wl, "dtype": dtype, "limit": t.limit,
                            "measured": value, "met": None if value is None else bool(value <= t.limit),
                            "stretch": t.stretch})
    return out


def digits(value: float, limit: float) -> str:
    """``value`` to 2 decimals, or up to 4 where fewer would print it equal to a limit it is not."""
    for d in (2, 3):
        if f"{value:.{d}f}" != f"{limit:.{d}f}" or value == limit:
            return f"{value:.{d}f}"
    return f"{value:.4f}"


def _value(r: dict[str, Any]) -> str:
    return digits(r["measured"], r["limit"])


def summary(results: list[dict[str, Any]]) -> str:
    """'k of n targets met' (stretch goals apart), naming the ones missed or not measured."""
    main = [r for r in results if not r["stretch"]]
    met = sum(1 for r in main if r["met"])
    missed = [f"{r['target']} on {r['workload']} {r['dtype']} ({_value(r)} > {r['limit']:.2f})"
              for r in main if r["met"] is False]
    unmeasured = [f"{r['target']} on {r['workload']} {r['dtype']}" for r in main if r["met"] is None]
    text = f"{met} of {len(main)} targets met"
    if missed:
        text += "; missed: " + "; ".join(missed)
    if unmeasured:
        text += "; not measured: " + "; ".join(unmeasured)
    return text


def table(results: list[dict[str, Any]]) -> str:
    """The targets as a markdown table with a computed "target met?" column."""
    lines = ["| target | workload | dtype | measured | limit | target met? |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        value = "not measured" if r["measured"] is None else _value(r)
        met = "not measured" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['target']} | {r['workload']} | {r['dtype']} | {value} | ≤ {r['limit']:.2f} | {met} |")
    return "\n".join(lines)
