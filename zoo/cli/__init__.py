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
    """The ``dgm`` parser; every option's value is checked as it is read (``_args``)."""
    from ._args import check_every_option
    parser = argparse.ArgumentParser(prog="dgm", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"zoo.cli.{name}").add_parser(sub)
    for command in dict.fromkeys(sub.choices.values()):   # `dgm eval ... --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=argparse.SUPPRESS)
    return check_every_option(parser)


def one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message joined with "; ")."""
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def hint(err: BaseException, command: str) -> str:
    """What to look at next, by the kind of error."""
    from backends import ConfigError, DataError, InputError, WeightsError
    if isinstance(err, DataError):
        return ("name the data directory with --data-dir DIR or $DGM_DATA_DIR "
                "(Fashion-MNIST: apt-get install dataset-fashion-mnist)")
    if isinstance(err, WeightsError):
        return "`dgm zoo list` shows the models and their weights; a path you give must exist"
    if isinstance(err, (ConfigError, InputError)):
        return f"`dgm {command} --help` lists the options and their ranges"
    if isinstance(err, OSError):
        return "check the path, its permissions and the free disk space"
    return "unexpected; `dgm --debug ...` shows where it happened"


def main(argv: list[str] | None = None) -> int:
    """Run ``dgm``: 0 on success; on an error one line ``error: ...`` and a ``hint:`` line on
    stderr and status 2 (``--debug``: the traceback); Ctrl-C: one line and status 130."""
    if argv is None:
        _keep_freed_memory()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:   # training: TrainingInterrupted says where its checkpoint is
        if args.debug:
            raise
        print(f"interrupted{': ' + one_line(err) if str(err) else ''}", file=sys.stderr)
        return 130
    except Exception as err:   # noqa: BLE001 (every error ends here: one line, no traceback)
        if args.debug:
            raise
        print(f"error: {one_line(err)}\nhint: {hint(err, args.command)} "
              f"(dgm --debug ... shows the traceback)", file=sys.stderr)
        return 2
