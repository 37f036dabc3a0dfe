"""``bpgpu`` entry point: each sub-command lives in its own module with ``add_parser(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from bpgpu.errors import BpgpuError

SUBCOMMANDS = ("info", "train", "bench", "check_gpu")  # modules in bpgpu.cli, each defining add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    from bpgpu import __version__

    parser = argparse.ArgumentParser(prog="bpgpu", description="Backpropagation MLPs on CPU (NumPy) or GPU (CuPy).")
    parser.add_argument("--version", action="version", version=f"bpgpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"bpgpu.cli.{name}").add_parser(sub)
    return parser


# Library keyword arguments as the command line spells them: device='cpu' -> --device cpu.
_KEYWORD = re.compile(r"\b(device|batch_size|epochs|seed|lr|momentum|weight_decay|dtype|sizes|hidden|output|cost|precision|checkpoint)"
                      r"=(?:'([^']*)'|\"([^\"]*)\"|([\w.:-]+))")


_PHRASES = (  # resume hints (bpgpu.training.resume) as train's flags
    (re.compile(r"pass resume=bpgpu\.Resume\(path, allow=\('(\w+)',\)\)"), r"add --resume-allow \1"),
    (re.compile(r"resume=bpgpu\.Resume\(path, allow=\('(\w+)',\)\)"), r"--resume-allow \1"),
    (re.compile(r"pass optimizer=None to continue with the saved one"), "repeat the first run's optimizer options"),
)


def cli_syntax(message: str) -> str:
    """An error message from the library with its hints rewritten for the command line."""
    def flag(match: re.Match) -> str:
        value = next(v for v in match.groups()[1:] if v is not None)
        return f"--{match.group(1).replace('_', '-')} {value}"

    for pattern, replacement in _PHRASES:
        message = pattern.sub(replacement, message)
    return _KEYWORD.sub(flag, message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (BpgpuError, OSError) as exc:  # our errors and missing/unwritable files: a message, no traceback
        print(f"bpgpu {args.command}: error: {cli_syntax(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside training (loading data, evaluating): one line, no traceback
        print(f"bpgpu {args.command}: interrupted (SIGINT); nothing was saved.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
