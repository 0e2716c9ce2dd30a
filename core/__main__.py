"""`python -m core COMMAND`: operations from the shell, on the same functions as the UI.

Each module in core/cli/ adds its sub-commands with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import core.cli
from core.infra.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(core.cli.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"core.cli.{info.name}")
        if hasattr(module, "register"):  # demo.py is the seeding code `base` calls
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
