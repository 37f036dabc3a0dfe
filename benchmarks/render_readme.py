"""Regenerate the README's Benchmarks table from committed results (every figure comes from them).

    python benchmarks/render_readme.py                     # the newest full-<cpu>.json and its -1thread twin
    python benchmarks/render_readme.py --default benchmarks/results/full-x.json --one-thread ...-1thread.json
    python benchmarks/render_readme.py --check             # exit 1 if the README is not up to date

The table replaces what lies between the README's two bench-table marker comments.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from bpgpu.bench.readme import block, update_readme

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def newest_pair(results: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The newest ``full-*.json`` run at default threads and its ``-1thread`` twin."""
    defaults = sorted((p for p in results.glob("full-*.json") if not p.stem.endswith("thread")),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for p in defaults:
        twin = p.with_name(p.stem + "-1thread.json")
        if twin.exists():
            return p, twin
    raise SystemExit(f"no full-<cpu>.json with a full-<cpu>-1thread.json beside it in {results}; run "
                     "python benchmarks/run.py and python benchmarks/run.py --threads 1 first.")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--default", type=pathlib.Path, help="results JSON at library-default threads")
    p.add_argument("--one-thread", type=pathlib.Path, help="results JSON of the --threads 1 run")
    p.add_argument("--readme", type=pathlib.Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="only check that the README matches the results")
    args = p.parse_args(argv)
    if (args.default is None) != (args.one_thread is None):
        p.error("give both --default and --one-thread, or neither")
    default, one = (args.default, args.one_thread) if args.default else newest_pair(RESULTS)
    new_block = block(json.loads(default.read_text()), json.loads(one.read_text()), (default.name, one.name))
    text = args.readme.read_text()
    updated = update_readme(text, new_block)
    if args.check:
        if updated != text:
            print(f"{args.readme} is not up to date with {default.name}, {one.name}; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    tmp = args.readme.with_name(args.readme.name + ".tmp")
    tmp.write_text(updated)
    tmp.replace(args.readme)  # atomic
    print(f"updated {args.readme} from {default.name} and {one.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
