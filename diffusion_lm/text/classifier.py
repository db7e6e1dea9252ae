"""p(c | z_t, t, prompt): a classifier on noisy response embeddings, for classifier guidance of the text model.

A small bidirectional transformer over [clean prompt rows ; noisy response z_t] (the diffusion model's
frozen table at unit scale), with learned positions, a segment embedding and the timestep embedding added
to every slot; the response slots' mean goes to a linear head over the classes. It is tied to the diffusion
model whose table and schedule it was trained with (``base_fingerprint``), and names its classes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PretrainedConfig

from ..common.pretrained import SmallPreTrainedModel
from .network import TimestepEmbedder


def base_fingerprint(model) -> str:
    """What ties a classifier to one diffusion model: its table, schedule and slots."""
    cfg = model.config
    digest = hashlib.sha256()
    digest.update(model.embedding_table.detach().cpu().float().numpy().tobytes())
    digest.update(repr((cfg.schedule, cfg.max_prompt_length, cfg.max_response_length, cfg.embedding_scale)).encode())
    return digest.hexdigest()[:16]


class ResponseClassifierConfig(PretrainedConfig):
    """Configuration of :class:`ResponseClassifier`.

    Args:
        class_names: the classes, in the order of the head's outputs.
        embedding_dim, max_prompt_length, max_response_length: the diffusion model's (its table width and slots).
        hidden_size, num_layers, num_heads: the classifier's transformer.
        base_fingerprint: ``base_fingerprint(diffusion_model)`` of the model it was trained with.
        use_prompt: False for p(c | z_t, t), blind to the prompt: for an attribute the prompt already predicts
            (a word the source verse implies), a classifier that reads the prompt is sure from it alone, and its
            gradient in z_t, which guidance follows, vanishes.
    """

    model_type = "diffusion-lm-classifier"

    def __init__(self, class_names: list[str] | None = None, embedding_dim: int = 64, max_prompt_length: int = 32,
                 max_response_length: int = 32, hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4,
                 base_fingerprint: str | None = None, use_prompt: bool = True, **kwargs: Any):
        self.class_names = list(class_names or ["0", "1"])
        self.embedding_dim, self.hidden_size = embedding_dim, hidden_size
        self.max_prompt_length, self.max_response_length = max_prompt_length, max_response_length
        self.num_layers, self.num_heads = num_layers, num_heads
        self.base_fingerprint, self.use_prompt = base_fingerprint, bool(use_prompt)
        super().__init__(**kwargs)
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be at least two distinct names, got {self.class_names}.")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads}).")


class ResponseClassifier(SmallPreTrainedModel):
    """logits of p(c | z_t, t, prompt): prompt (B, P, D) unit-scale rows, prompt_mask (B, P), z (B, N, D), t (B,)
    -> (B, C)."""

    config_class = ResponseClassifierConfig

    def __init__(self, config: ResponseClassifierConfig):
        super().__init__(config)
        h = config.hidden_size
        self.inp = nn.Linear(config.embedding_dim, h)
        self.time = TimestepEmbedder(h)
        self.position = nn.Embedding(config.max_prompt_length + config.max_response_length, h)
        self.segment = nn.Embedding(2, h)
        layer = nn.TransformerEncoderLayer(h, config.num_heads, 4 * h, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, len(config.class_names))
        self.post_init()

    def forward(self, prompt: Tensor, prompt_mask: Tensor, z: Tensor, t: Tensor) -> Tensor:
        if not self.config.use_prompt:
            prompt, prompt_mask = prompt[:, :0], prompt_mask[:, :0]
        p, n = prompt.shape[1], z.shape[1]
        x = self.inp(torch.cat([prompt, z], 1).to(self.inp.weight.dtype))  # (B, P + N, H)
        positions = torch.arange(p + n, device=z.device)
        segments = torch.cat([torch.zeros(p, dtype=torch.long), torch.ones(n, dtype=torch.long)]).to(z.device)
        x = x + self.position(positions) + self.segment(segments) + self.time(t.float())[:, None]
        keep = torch.cat([prompt_mask.bool(), torch.ones(z.shape[0], n, dtype=torch.bool, device=z.device)], 1)
        h = self.norm(self.encoder(x, src_key_padding_mask=~keep))
        return self.head(h[:, p:].mean(1))  # (B, C)

    def class_index(self, classes: list[str] | str) -> Tensor:
        """Indices of class names (a clear error for a class this classifier does not know)."""
        names = [classes] if isinstance(classes, str) else list(classes)
        unknown = [c for c in names if c not in self.config.class_names]
        if unknown:
            raise ValueError(f"this classifier does not know the class(es) {unknown}; it was trained on "
                             f"{self.config.class_names}.")
        return torch.tensor([self.config.class_names.index(c) for c in names], dtype=torch.long)

    def check_base(self, model) -> None:
        """Raise unless this classifier was trained on ``model``'s table, schedule and slots."""
        if self.config.base_fingerprint != base_fingerprint(model):
            raise ValueError("this classifier was trained with another diffusion model (its table, schedule or slots "
                             "differ); train one for this model with `python -m training.train_classifier --model "
                             "...`.")
