"""The ``dgm`` command line: argparse subcommands, one module per subcommand in this package.

A command module defines ``add_parser(subparsers)`` (registering its options and setting
``func``) and is listed in ``COMMANDS``; shared options live in ``zoo.cli._args``. Library code
never imports this package. Optional dependencies (matplotlib, the ``plot`` extra) are imported
only where used, so every command's ``--help`` works without them (a test).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from zoo.allocator import KEEP_MALLOC

COMMANDS = ("train", "eval", "demo", "diagnose", "bench", "zoo")



def _keep_freed_memory() -> None:
    """Large steps lose seconds to glibc returning freed memory to the OS and faulting it back
    (issue 7); keep it unless the user chose otherwise (``DGM_KEEP_MALLOC=0``). Must be set
    before allocation, so the CLI re-executes itself once with the variables set."""
    if os.environ.get("DGM_KEEP_MALLOC", "1") == "0" or \
            all(k in os.environ for k in KEEP_MALLOC):
        return
    env = dict(os.environ)
    for k, v in KEEP_MALLOC.items():
        env.setdefault(k, v)
    os.execve(sys.executable, [sys.executable, "-m", "zoo.cli"] + sys.argv[1:], env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        _keep_freed_memory()
    args = build_parser().parse_args(argv)
    from backends import DGMError
    try:
        return int(args.func(args) or 0)
    except DGMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:   # training: TrainingInterrupted says where its checkpoint is
        print(f"interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
