"""``bpgpu`` entry point: each sub-command lives in its own module with ``add_parser(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from bpgpu.errors import BpgpuError

SUBCOMMANDS = ("info", "train", "bench")  # modules in bpgpu.cli, each defining add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpgpu", description="Backpropagation MLPs on CPU (NumPy) or GPU (CuPy).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"bpgpu.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (BpgpuError, OSError) as exc:  # our errors and missing/unwritable files: a message, no traceback
        print(f"bpgpu {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
