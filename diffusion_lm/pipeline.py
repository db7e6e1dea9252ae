"""``DiffusionLMPipeline``: prompts in, responses out; save, load and share model and tokenizer together."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from .common.atomic import staged_directory
from .data.batching import encode_prompts
from .generation import generate_ids
from .generation_config import GenerationConfig
from .hub import write_model_card
from .loading import HUB_KWARGS, load_model
from .mbr import mbr_select
from .modeling import DiffusionLMModel
from .tokenization import punctuation_mask, same_word_classes, tokenizer_fingerprint


class DiffusionLMPipeline:
    """A :class:`DiffusionLMModel` and the tokenizer that indexes its embedding table.

    >>> pipe = DiffusionLMPipeline.from_pretrained("path/or/repo-id")
    >>> pipe(["translate this"])                  # generation_config.json; e.g. num_steps=20 overrides it
    """

    def __init__(self, model: DiffusionLMModel, tokenizer: Any, generation_config: GenerationConfig | None = None):
        expected = model.config.tokenizer_fingerprint
        if expected is not None and tokenizer_fingerprint(tokenizer) != expected:
            raise ValueError(
                "this tokenizer does not match the checkpoint's embedding table (its vocabulary differs from "
                "the one the model was built with); load the tokenizer saved with the checkpoint."
            )
        if len(tokenizer) != model.config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but the embedding table {model.config.vocab_size} rows; "
                "use the tokenizer saved with the checkpoint."
            )
        if tokenizer.pad_token_id != model.config.pad_token_id:
            raise ValueError(f"tokenizer pad id {tokenizer.pad_token_id} != model pad id {model.config.pad_token_id}.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.generation_config = generation_config or GenerationConfig()

    @cached_property
    def repeat_block(self) -> dict[str, torch.Tensor]:
        """What ``block_adjacent_repeats`` reads of the tokenizer, as ``generate_ids`` takes it: ``punctuation`` (V,)
        bool, the pauses (``,;:`` and dashes) it looks past, and ``same_word`` (V,) long, tokens grouped by text up
        to case, which count as one word."""
        return {"punctuation": punctuation_mask(self.tokenizer), "same_word": same_word_classes(self.tokenizer)}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "DiffusionLMPipeline":
        self.model.to(device)
        return self

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any) -> "DiffusionLMPipeline":
        """Load model and tokenizer from a folder written by ``save_pretrained`` or a Hub repo id."""
        from transformers import AutoTokenizer

        model = load_model(DiffusionLMModel, path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in HUB_KWARGS})
        pipe = cls(model, tokenizer, _load_generation_config(path, model, kwargs))
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, path: str | os.PathLike, metrics: dict | None = None, training: dict | None = None) -> Path:
        """Write config.json, model.safetensors, generation_config.json, the tokenizer files and a model card README.md.

        The folder is assembled next to ``path`` and moved into place, so an interrupted save
        never leaves a half-written checkpoint.
        """
        path = Path(path)
        with staged_directory(path) as staging:
            self.model.save_pretrained(staging, safe_serialization=True)
            self.tokenizer.save_pretrained(staging)
            self.generation_config.save(staging)
            write_model_card(staging, self.model.config, metrics=metrics, training=training)
        return path

    def push_to_hub(
        self, repo_id: str, private: bool = False, token: str | None = None, commit_message: str = "Upload diffusion-lm model",
        metrics: dict | None = None, training: dict | None = None,
    ) -> str:
        """Save to a temporary folder and upload it to the Hub repo ``repo_id`` (created if missing)."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", metrics=metrics, training=training)
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message, repo_type="model")
        return str(getattr(info, "commit_url", info))

    def __call__(
        self,
        prompts: Sequence[str] | str,
        num_steps: int | None = None,
        method: str | None = None,
        eta: float | None = None,
        guidance_scale: float | None = None,
        num_samples: int = 1,
        mbr: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        return_all: bool = False,
        truncation: bool = False,
        clamp: bool | None = None,
        pad_boundary: bool | None = None,
        block_adjacent_repeats: bool | None = None,
        temperature: float | None = None,
        log_snr_offset: float | None = None,
        grid: str | None = None,
        order: int | None = None,
        length_candidates: int | None = None,
        length: int | Sequence[int] | None = None,
        progress: bool = False,
        response_template: str | Sequence[str] | None = None,
        classifier: Any = None,
        classes: str | Sequence[str] | None = None,
        classifier_scale: float = 0.0,
        callback: Any = None,
    ) -> list[str] | list[list[str]]:
        """Generate one response per prompt (or all ``num_samples`` of them with ``return_all=True``).

        Every sampling setting left as ``None`` comes from ``self.generation_config`` (saved with the model
        as generation_config.json; see :class:`GenerationConfig` for what each one does).

        Args:
            prompts: a list of non-empty strings (a single string is accepted too).
            num_steps, method, eta: the sampler (``ddim`` is Algorithm 2, ``eta`` its noise).
            guidance_scale: classifier-free guidance, 1 = off (needs a model trained with prompt dropout).
            num_samples, mbr: draw several responses per prompt and, with ``mbr``, return the
                minimum-Bayes-risk one (highest mean BLEU against the others), else the first.
            seed: responses are reproducible for the same seed and batch_size.
            truncation: cut over-long prompts instead of raising.
            response_template: infilling: text with ``[FILL]`` (one slot) or ``[FILL:n]`` (n slots) where the
                model writes, the rest given (one template for every prompt, or one per prompt); slots after
                the template's end are pad. E.g. ``"In the beginning [FILL:6] the earth."``
            classifier, classes, classifier_scale: classifier guidance (61) with a ``ResponseClassifier`` trained on
                this model (``python -m training.train_classifier``) towards ``classes`` (one name for every
                prompt, or one per prompt) at weight ``classifier_scale`` (0 = off).
            clamp, pad_boundary, block_adjacent_repeats, temperature, log_snr_offset, grid, order, length_candidates:
                see :class:`GenerationConfig`.
            length: for a length-conditioned model (L2), write exactly this many tokens (one number for every prompt,
                or one per prompt) instead of the length the model predicts.
            callback: called after every sampler step with ``{"i", "t", "x", "x0", "start"}`` (x0, the current
                estimate at unit scale (what ``model.rounding_logits`` takes), or None for samplers that report none; ``start``, the batch's first row
                among the expanded prompts); ``diffusion_lm.inference.app`` uses it to show the text settling.
        """
        settings = self.generation_config.updated(
            num_steps=num_steps, method=method, eta=eta, guidance_scale=guidance_scale, clamp=clamp, pad_boundary=pad_boundary,
            block_adjacent_repeats=block_adjacent_repeats, temperature=temperature, log_snr_offset=log_snr_offset, grid=grid, order=order,
            length_candidates=length_candidates)
        prompts = self._check_call(prompts, num_samples, batch_size)
        templates = self._templates(response_template, len(prompts))
        targets = self._classes(classifier, classes, len(prompts)) if classifier is not None else None
        lengths = self._lengths(length, len(prompts)) if length is not None else None
        texts = []
        expanded = [p for p in prompts for _ in range(num_samples)]
        batches = range(0, len(expanded), batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="generate")
        for start in batches:
            chunk = expanded[start : start + batch_size]
            batch = encode_prompts(self.tokenizer, chunk, self.model.config.max_prompt_length, truncation).to(self.device)
            known = {}
            if templates is not None:
                rows = [templates[(start + j) // num_samples] for j in range(len(chunk))]
                known = {"response_ids": torch.stack([r[0] for r in rows]).to(self.device),
                         "given": torch.stack([r[1] for r in rows]).to(self.device)}
            if targets is not None:
                known.update(classifier=classifier, classifier_scale=classifier_scale,
                             classes=torch.stack([targets[(start + j) // num_samples] for j in range(len(chunk))]))
            if settings.block_adjacent_repeats:
                known.update(self.repeat_block)
            if lengths is not None:
                known["lengths"] = torch.tensor([lengths[(start + j) // num_samples] for j in range(len(chunk))], device=self.device)
            if callback is not None:
                known["callback"] = lambda info, start=start: callback({**info, "start": start})
            ids = generate_ids(self.model, batch.prompt_ids, batch.prompt_mask, settings,
                               generator=torch.Generator().manual_seed(seed + start), **known)
            texts.extend(self.decode(ids))
        grouped = [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]
        if return_all:
            return grouped
        return [group[mbr_select(group)] if mbr else group[0] for group in grouped]

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids (B, N) to text, dropping the pad token wherever the model emitted it."""
        pad = self.model.config.pad_token_id
        return [self.tokenizer.decode([i for i in row if i != pad], clean_up_tokenization_spaces=True).strip() for row in ids.tolist()]

    def _templates(self, template, count: int) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """One (ids, given) per prompt from ``response_template`` (see ``diffusion_lm.templates``)."""
        if template is None:
            return None
        from .templates import encode_template

        given = [template] * count if isinstance(template, str) else list(template)
        if len(given) != count:
            raise ValueError(f"{len(given)} response templates for {count} prompts; give one template, or one per prompt.")
        cfg = self.model.config
        return [encode_template(self.tokenizer, t, cfg.max_response_length, cfg.pad_token_id) for t in given]

    def _classes(self, classifier, classes, count: int) -> torch.Tensor:
        """One class index per prompt, checked against the classifier (and the classifier against this model)."""
        classifier.check_base(self.model)
        if classes is None:
            raise ValueError(f"classifier guidance needs classes=...: one of {classifier.config.class_names} "
                             "for every prompt, or a list with one per prompt.")
        names = [classes] * count if isinstance(classes, str) else list(classes)
        if len(names) != count:
            raise ValueError(f"{len(names)} classes for {count} prompts; give one class, or one per prompt.")
        return classifier.to(self.device).eval().class_index(names)

    def _lengths(self, length, count: int) -> list[int]:
        """One response length per prompt from ``length`` (an int, or one per prompt), checked."""
        if not self.model.config.length_prediction:
            raise ValueError("length= needs a length-conditioned model (length_prediction=True); this one decides its "
                             "length in the rollout.")
        lengths = [length] * count if isinstance(length, int) else list(length)
        n = self.model.config.max_response_length
        if len(lengths) != count or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= n for v in lengths):
            raise ValueError(f"length must be an integer in [0, {n}] (max_response_length) or one per prompt ({count}); "
                             f"got {length!r}.")
        return lengths

    def _check_call(self, prompts, num_samples, batch_size) -> list[str]:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence) or len(prompts) == 0:
            raise ValueError("prompts must be a non-empty list of strings.")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(f"prompt {i} is a {type(prompt).__name__}, not a string; pass text.")
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty; every prompt needs some text.")
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        return list(prompts)


def _load_generation_config(path, model: DiffusionLMModel, kwargs: dict) -> GenerationConfig:
    """generation_config.json beside the weights (a local folder or the Hub repo); checkpoints written before it
    existed keep the clamp setting their config.json carried."""
    legacy = {"clamp": bool(model.config.clamp_at_inference)} if hasattr(model.config, "clamp_at_inference") else {}
    folder = Path(path)
    if not folder.is_dir():
        try:
            from huggingface_hub import hf_hub_download

            from .generation_config import FILE_NAME

            hub = {k: v for k, v in kwargs.items() if k in HUB_KWARGS}
            folder = Path(hf_hub_download(str(path), FILE_NAME, **hub)).parent
        except Exception:  # no such file in the repo (an older checkpoint): the defaults
            return GenerationConfig(**legacy)
    return GenerationConfig.load(folder, legacy)
