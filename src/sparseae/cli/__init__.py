"""The ``sparseae`` command line: one sub-command per job.

Each sub-command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``;
adding a job is one module and one line in ``COMMANDS``. Errors a user can fix (bad option
values, missing data, invalid settings) are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sparseae.errors import SparseAEError

#: sub-command modules, in the order ``sparseae --help`` lists them
COMMANDS = (
    "train",
    "compare",
    "ae-vs-sae",
    "encode",
    "detect",
    "denoise",
    "evaluate",
    "export",
    "train-sae",
)

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block before an error; users asked for one line
    that names the problem and points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from sparseae._version import __version__

    parser = OneLineParser(
        prog="sparseae",
        description="Train, compare, inspect and apply sparse autoencoders.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'sparseae COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"sparseae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        module = importlib.import_module(f".{name.replace('-', '_')}", __name__)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except SparseAEError as exc:
        print(f"sparseae {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sparseae {args.command}: interrupted", file=sys.stderr)
        return 130
