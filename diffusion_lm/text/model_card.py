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
    "self_conditioning", "time_warping", "length_prediction", "length_relative", "length_fertility", "objective",
)


def model_card(config: Any, metrics: dict | None = None, training: dict | None = None,
               examples: list[str] | None = None) -> str:
    """Markdown with YAML front matter: what the model is, how it was trained, its metrics and how to use it;
    ``examples`` become the front matter's ``widget`` prompts (the Hub's and the app's examples)."""
    params = {k: getattr(config, k) for k in CARD_KEYS if hasattr(config, k)}
    widget = ["widget:", *(f"- text: {json.dumps(e, ensure_ascii=False)}" for e in examples)] if examples else []
    lines = [
        "---",
        "library_name: diffusion-lm",
        "pipeline_tag: text2text-generation",
        "tags:",
        "- diffusion",
        "- diffusion-lm",
        "- text-generation",
        *widget,
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
    lines += [f"| {k} | `{json.dumps(v, sort_keys=True) if isinstance(v, dict) else v}` |" for k, v in params.items()]
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


def read_card_sections(folder: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The Training and Metrics tables and the widget's example prompts of the model card in ``folder`` (README.md),
    as written by ``model_card``: ``{"training": {...}, "metrics": {...}, "examples": [...]}``, each empty when the
    card has none. Table values are the table's text."""
    path = Path(folder) / "README.md"
    sections: dict[str, Any] = {"training": {}, "metrics": {}, "examples": []}
    if not path.exists():
        return sections
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("- text: ") and current is None:
            sections["examples"].append(json.loads(line[len("- text: "):]))
        elif line.startswith("## "):
            current = line[3:].strip().lower() if line[3:].strip().lower() in sections else None
        elif current and line.startswith("| ") and not line.startswith(("| setting |", "| metric |", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 2:
                sections[current][cells[0]] = cells[1][1:-1] if current == "training" and cells[1].startswith("`") \
                    else cells[1]
    return sections


def write_model_card(folder: str | os.PathLike, config: Any, metrics: dict | None = None,
                     training: dict | None = None, examples: list[str] | None = None) -> Path:
    """Write README.md into ``folder`` (via a temporary file and a rename)."""
    return write_text_atomic(Path(folder) / "README.md", model_card(config, metrics, training, examples))
