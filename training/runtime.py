"""The process around a training run: CPU threads, the device, trackers, and stopping cleanly on a signal."""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger("training")


def set_threads(requested: int | None, accelerator) -> int:
    """Set torch's CPU threads for this process: ``num_threads``, else OMP_NUM_THREADS, else the physical cores shared
    among the processes on this machine (as ``accelerate launch --num_cpu_threads_per_process`` picks). More
    threads than cores per process make torch's thread pools fight: a step can take ten times as long."""
    import torch

    if requested is None:
        env = os.environ.get("OMP_NUM_THREADS")
        if env and env.isdigit() and int(env) > 0:
            requested = int(env)
        else:
            cores = physical_cores()
            local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
            requested = max(1, cores // max(1, local))
    torch.set_num_threads(requested)
    return requested


def physical_cores() -> int:
    """Physical CPU cores (psutil), else the logical count."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def has_accelerator() -> bool:
    """True where torch sees a CUDA or XPU device."""
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def available_trackers(names: list[str]) -> list[str]:
    """The trackers in ``names`` whose package is installed (a missing tensorboard is a warning, not an error)."""
    found = []
    for name in names:
        if name == "tensorboard":
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                logger.warning("tensorboard is not installed (pip install tensorboard); "
                               "metrics still go to metrics.jsonl")
                continue
        found.append(name)
    return found


def flat_config(tree: dict, prefix: str = "") -> dict:
    """A nested config as one level of dotted keys with scalar values, as trackers take hyper-parameters."""
    flat = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flat_config(v, key + "."))
        else:
            flat[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat


class GracefulStop:
    """SIGTERM/SIGINT: finish the current step, write a checkpoint, and exit (preemptible jobs lose nothing).
    The previous handlers come back when the block ends."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True
