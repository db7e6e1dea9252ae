"""Atomic, resumable checkpoints on top of ``accelerator.save_state``.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and renamed to ``checkpoints/step-N`` only
when complete (the rename is atomic); ``checkpoints/latest`` then points at it, also replaced
atomically. A run killed mid-save leaves a ``.tmp-*`` folder that the next run deletes, and
``latest`` still names the previous good checkpoint. Besides accelerate's files (model weights as
safetensors; optimiser, scheduler and RNG states as torch archives that accelerate reloads with
``weights_only``), each checkpoint holds ``ema.safetensors`` and ``trainer_state.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from diffusion_lm.common.atomic import write_text_atomic

from .ema import EMA

STATE_FILE = "trainer_state.json"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(accelerator, output_dir: str | Path, step: int, ema: EMA | None, state: dict[str, Any],
                    keep: int) -> Path:
    """Save everything needed to resume at ``step``; keep the newest ``keep`` checkpoints."""
    root = checkpoint_dir(output_dir)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.shadow.items()}, tmp / "ema.safetensors",
                      metadata={"updates": str(ema.updates), "decay": str(ema.decay)})
        _write_json(tmp / STATE_FILE, {**state, "step": step})  # written last: its presence marks a complete folder
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _write_text(root / "latest", final.name)
        for old in sorted(_complete(root), key=_step_of)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resolve_checkpoint(output_dir: str | Path, resume: str | None) -> Path | None:
    """``latest`` -> the newest complete checkpoint of this run (or None if there is none yet);
    a path -> that folder."""
    if resume is None:
        return None
    if resume != "latest":
        path = Path(resume)
        if not (path / STATE_FILE).exists():
            raise ValueError(f"{path} is not a complete checkpoint (no {STATE_FILE}); "
                             "give a checkpoints/step-N folder or 'latest'.")
        return path
    root = checkpoint_dir(output_dir)
    pointer = root / "latest"
    if pointer.exists() and (root / pointer.read_text().strip() / STATE_FILE).exists():
        return root / pointer.read_text().strip()
    complete = sorted(_complete(root), key=_step_of) if root.exists() else []
    return complete[-1] if complete else None


def load_checkpoint(accelerator, path: Path, ema: EMA | None) -> dict[str, Any]:
    """Restore model, optimiser, scheduler, RNG and EMA; return the trainer state."""
    accelerator.load_state(str(path))
    if ema is not None:
        shadow = load_file(path / "ema.safetensors")
        ema.load_state_dict({"decay": ema.decay, "updates": int(_ema_updates(path)), "shadow": shadow})
    return json.loads((path / STATE_FILE).read_text())


def clean_partial(output_dir: str | Path) -> list[Path]:
    """Delete folders left by a save that never finished."""
    root = checkpoint_dir(output_dir)
    partial = list(root.glob(".tmp-step-*")) if root.exists() else []
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return partial


def _ema_updates(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(path / "ema.safetensors", framework="pt") as f:
        return f.metadata().get("updates", "0")


def _complete(root: Path) -> list[Path]:
    return [p for p in root.glob("step-*") if (p / STATE_FILE).exists()]


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def _write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def _write_json(path: Path, data: dict) -> None:
    _write_text(path, json.dumps(data, indent=2))
