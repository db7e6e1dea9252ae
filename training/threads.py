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
