"""The model card written next to every saved checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..common.atomic import write_text_atomic

CARD_KEYS = (
    "embedding_source", "vocab_size", "embedding_dim", "embedding_scale", "hidden_size", "num_layers", "num_heads",
    "max_prompt_length", "max_response_length", "position_embedding", "prompt_attention", "schedule",
    "self_conditioning", "time_warping", "length_prediction", "length_relative", "objective",
)


def model_card(config: Any, metrics: dict | None = None, training: dict | None = None) -> str:
    """Markdown with YAML front matter: what the model is, how it was trained, its metrics and how to use it."""
    params = {k: getattr(config, k) for k in CARD_KEYS if hasattr(config, k)}
    lines = [
        "---",
        "library_name: diffusion-lm",
        "pipeline_tag: text2text-generation",
        "tags:",
        "- diffusion",
        "- diffusion-lm",
        "- text-generation",
        "---",
        "",
        "# diffusion-lm model",
        "",
        "A prompt -> response **continuous diffusion language model** (Section 9 of *A Tutorial on Diffusion "
        "Theory*): the prompt's embeddings stay clean while the response's embeddings, in a frozen embedding "
        "table, are noised; a transformer denoiser predicts the clean response embeddings (x0 regression plus "
        "a rounding cross-entropy) and generation runs a reverse diffusion sampler, then rounds to tokens.",
        "",
        "## Architecture",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | `{json.dumps(v) if isinstance(v, dict) else v}` |" for k, v in params.items()]
    if training:
        lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | `{v}` |" for k, v in training.items()]
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from diffusion_lm import DiffusionLMPipeline",
        "",
        'pipe = DiffusionLMPipeline.from_pretrained("<this folder or repo id>")',
        'print(pipe(["your prompt"]))  # the saved generation_config.json; any setting can be overridden per call',
        "```",
        "",
        "Install the package from its source (`pip install \"git+<the diffusion-lm repository URL>\"`, or `pip install "
        "-e .` in a clone); "
        "the weights are safetensors and load with `AutoModel` once `diffusion_lm.text` is imported.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: str | os.PathLike, config: Any, metrics: dict | None = None,
                     training: dict | None = None) -> Path:
    """Write README.md into ``folder`` (via a temporary file and a rename)."""
    return write_text_atomic(Path(folder) / "README.md", model_card(config, metrics, training))
