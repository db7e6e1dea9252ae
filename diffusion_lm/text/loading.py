"""Loading a saved model from a local folder or the Hub, with errors that say which file is wrong and what to do."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HUB_KWARGS = ("revision", "token", "cache_dir")


def check_source(path: str | os.PathLike) -> None:
    """Refuse, before any download, a local path that is not a saved model, and a name that cannot be either."""
    text = str(path)
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise ValueError(f"{folder} has no config.json: it is not a saved diffusion-lm model "
                             "(write one with DiffusionLMPipeline.save_pretrained or python -m training.train).")
        return
    if folder.exists():
        raise ValueError(f"{folder} is a file; give the folder that save_pretrained (or training) wrote.")
    local_looking = text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
    if local_looking:
        raise ValueError(f"no such folder: {text} (relative to {Path.cwd()}); it is not a Hub repo id either "
                         "(those look like 'namespace/name'). Check the path.")


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' per-load progress bars (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_model(model_class: Any, path: str | os.PathLike, **kwargs: Any):
    """``model_class.from_pretrained(path)`` with its failures turned into ``ValueError``s naming file and fix."""
    check_source(path)
    local = Path(path).expanduser().is_dir()
    if not local:
        from .hub import hub_reachable

        if not hub_reachable():
            raise ValueError(f"{path!s} is not a local folder (none in {Path.cwd()}), and the Hugging Face Hub, where "
                             "it would be a repository id, is not reachable (no network, or HF_HUB_OFFLINE is set). "
                             "Give the folder that training or save_pretrained wrote, e.g. runs/demo/model.")
    try:
        with quiet_progress():
            return model_class.from_pretrained(path, **kwargs)
    except Exception as err:  # translate the few failures users meet, keep the rest
        message = str(err)
        weights = Path(path) / "model.safetensors"
        damaged = "incomplete metadata" in message or "header" in message.lower() and local
        if type(err).__name__ == "SafetensorError" or damaged:
            raise ValueError(f"{weights} is damaged ({message}); it was cut short or corrupted: save the model again, "
                             "or download it again.") from err
        if "mismatch" in message.lower() or "size mismatch" in message:
            raise ValueError(f"{Path(path) / 'config.json'} does not match the weights in {weights}: the config "
                             "describes other shapes (vocab_size, embedding_dim, widths) than the saved tensors. Use "
                             f"the config.json saved with these weights. Details: {message.splitlines()[0]}") from err
        if not local and isinstance(err, (OSError, ValueError)):
            reason = message.splitlines()[0] if message else type(err).__name__
            raise ValueError(f"{path!s} is not a local folder (none in {Path.cwd()}), and the Hub did not return a "
                             f"model for it ({reason}). Check the path, or the repo id and your network/token."
                             ) from err
        raise
