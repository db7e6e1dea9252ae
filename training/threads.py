"""Running a command-line job on a chosen number of CPU threads."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def run_on_threads(run: Callable[[argparse.Namespace], T], args: argparse.Namespace) -> T:
    """``run(args)`` with torch on ``args.threads`` CPU threads (0: leave as is), the count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run_command(run: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """A command's exit status: ``run(args)`` on its threads; a ``ValueError`` (bad input) is printed, status 2."""
    import sys

    try:
        run_on_threads(run, args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> argparse.Namespace:
    """``args``, after a parser error for the first of ``names`` (attribute names) that is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args
