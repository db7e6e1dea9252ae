"""``training.train`` with test probes wrapped around it, so that production code carries no test hooks.

    python -m tests.probed_train [--trace DIR] [--slow-save SECONDS] -- <training.train arguments>
    accelerate launch --config_file C -m tests.probed_train --trace DIR -- --config configs/tiny.yaml ...

``--trace DIR``: after every optimiser step each rank appends to ``DIR/rank-R.jsonl`` the world size, the rows it
trained on (prompt and response ids) and a checksum of its weights, so a test can check that two ranks drew
different rows and kept identical weights. ``--slow-save SECONDS``: the last file of a checkpoint (its trainer
state, whose presence marks the folder complete) is written only after printing "checkpoint: writing" and waiting,
so a test can kill the run while a checkpoint is half written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch


def trace_steps(folder: Path) -> None:
    """Record each rank's rows (through ``collate``) and its weights after every optimiser step."""
    import torch.distributed as dist
    from accelerate.state import PartialState

    import training.train as train_module

    rows: list[str] = []
    steps = {"done": 0}
    collate = train_module.collate

    def recording_collate(batch, *args, **kwargs):
        rows.extend(json.dumps([p, r]) for p, r in zip(batch["prompt_ids"], batch["response_ids"]))
        return collate(batch, *args, **kwargs)

    step = torch.optim.AdamW.step

    def recording_step(optimizer, *args, **kwargs):
        out = step(optimizer, *args, **kwargs)
        steps["done"] += 1
        digest = hashlib.sha256()
        for group in optimizer.param_groups:
            for p in group["params"]:
                digest.update(p.detach().cpu().float().numpy().tobytes())
        rank = dist.get_rank() if dist.is_initialized() else 0
        record = {"step": steps["done"], "rank": rank,
                  "world_size": dist.get_world_size() if dist.is_initialized() else 1,
                  "distributed_type": str(PartialState().distributed_type), "rows": list(rows),
                  "weights": digest.hexdigest()}
        rows.clear()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank-{rank}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return out

    train_module.collate = recording_collate
    torch.optim.AdamW.step = recording_step


def slow_checkpoint_saves(seconds: float) -> None:
    """Delay the write that completes a checkpoint (its trainer state) by ``seconds``, announced on stdout."""
    import training.checkpointing as checkpointing

    write = checkpointing._write_json

    def slow_write(path, data):
        print("checkpoint: writing (slowed by tests.probed_train)", flush=True)
        time.sleep(seconds)
        return write(path, data)

    checkpointing._write_json = slow_write


def main() -> int:
    argv = sys.argv[1:]
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser()
    parser.add_argument("--trace", type=Path, default=None)
    parser.add_argument("--slow-save", type=float, default=None)
    args = parser.parse_args(own)
    if args.trace is not None:
        trace_steps(args.trace)
    if args.slow_save:
        slow_checkpoint_saves(args.slow_save)
    from training.train import main as train_main

    return train_main(rest)


if __name__ == "__main__":
    sys.exit(main())
