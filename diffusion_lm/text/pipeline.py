"""``DiffusionLMPipeline``: prompts in, responses out; save, load and share model and tokenizer together."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..common.atomic import staged_directory
from .batching import encode_pairs, encode_prompts
from .generation import Controls, generate_ids
from .generation_config import FILE_NAME, GenerationConfig
from .hub import hub_call
from .likelihood import NLLBound, nll_bound
from .loading import HUB_KWARGS, load_model
from .mbr import mbr_select
from .model import DiffusionLMModel
from .model_card import read_card_sections, write_model_card
from .repeats import RepeatBlock
from .tokenization import tokenizer_fingerprint

# What a call fixes per prompt, beside the generation settings
CONTROLS = ("length", "response_template", "classifier", "classes", "classifier_scale")


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
        self.card: dict[str, Any] = {}  # its card's Training, Metrics and example prompts, kept on save

    @cached_property
    def repeat_block(self) -> RepeatBlock:
        """What ``block_adjacent_repeats`` reads of the tokenizer (its pauses and its word classes)."""
        return RepeatBlock.of(self.tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "DiffusionLMPipeline":
        self.model.to(device)
        return self

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        **kwargs: Any) -> "DiffusionLMPipeline":
        """Load model and tokenizer from a folder written by ``save_pretrained`` or a Hub repo id."""
        from transformers import AutoTokenizer

        model = load_model(DiffusionLMModel, path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in HUB_KWARGS})
        pipe = cls(model, tokenizer, _load_generation_config(path, model, kwargs))
        pipe.card = _card_sections(path, kwargs)
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, path: str | os.PathLike, metrics: dict | None = None,
                        training: dict | None = None) -> Path:
        """Write config.json, model.safetensors, generation_config.json, the tokenizer files and a model card README.md.

        The card's Training and Metrics tables are ``training`` and ``metrics``, or, where None, those of the card the
        pipeline was loaded with (``self.card``, with its example prompts), so a loaded model saved or pushed again
        keeps its numbers. The folder is assembled
        next to ``path`` and moved into place, so an interrupted save never leaves a half-written checkpoint.
        """
        path = Path(path)
        metrics = self.card.get("metrics") if metrics is None else metrics
        training = self.card.get("training") if training is None else training
        with staged_directory(path) as staging:
            self.model.save_pretrained(staging, safe_serialization=True)
            self.tokenizer.save_pretrained(staging)
            self.generation_config.save(staging)
            write_model_card(staging, self.model.config, metrics=metrics, training=training,
                             examples=self.card.get("examples"))
        return path

    def push_to_hub(
        self, repo_id: str, private: bool = False, token: str | None = None,
        commit_message: str = "Upload diffusion-lm model", metrics: dict | None = None, training: dict | None = None,
    ) -> str:
        """Save to a temporary folder and upload it to the Hub repo ``repo_id`` (created if missing); a missing login
        or an unreachable Hub is a ``HubError`` that says so (``save_pretrained`` keeps a local copy)."""
        from huggingface_hub import HfApi

        what = f"pushing to the Hub repository {repo_id!r}"
        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", metrics=metrics, training=training)
            hub_call(what, lambda: api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"))
            info = hub_call(what, lambda: api.upload_folder(repo_id=repo_id, folder_path=folder,
                                                             commit_message=commit_message, repo_type="model"))
        return str(getattr(info, "commit_url", info))

    def __call__(
        self,
        prompts: Sequence[str] | str,
        generation_config: GenerationConfig | None = None,
        *,
        seed: int = 0,
        batch_size: int = 32,
        return_all: bool = False,
        truncation: bool = False,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        **overrides: Any,
    ) -> list[str] | list[list[str]]:
        """Generate one response per prompt (all ``num_samples`` of them with ``return_all=True``).

        Args:
            prompts: a list of non-empty strings (a single string is accepted too).
            generation_config: how to sample (default: ``self.generation_config``, saved with the model).
            seed: responses are reproducible for the same seed and batch_size.
            truncation: cut over-long prompts instead of raising.
            progress: a progress bar over the batches.
            callback: called after every sampler step with ``{"i", "t", "x", "x0", "start"}`` (x0 the current
                estimate at unit scale, what ``model.rounding_logits`` takes, or None for samplers that report none;
                ``start`` the batch's first row among the prompts, each repeated ``num_samples`` times).
            overrides: any :class:`GenerationConfig` setting by name (``num_steps=20``, ``method="dpm_solver++"``,
                ``num_samples=5, mbr=True``, ...), and what the call fixes per prompt:

                - ``length``: for a length-conditioned model (L2), write exactly this many tokens (one number for
                  every prompt, or one per prompt) instead of the length the model predicts;
                - ``response_template``: infilling, text with ``[FILL]`` (one slot) or ``[FILL:n]`` (n slots) where
                  the model writes, the rest given (one template for every prompt, or one per prompt);
                - ``classifier``, ``classes``, ``classifier_scale``: classifier guidance (61) with a
                  ``ResponseClassifier`` trained on this model (``python -m training.train_classifier``) towards
                  ``classes`` (one name for every prompt, or one per prompt) at weight ``classifier_scale``.
        """
        controls = {k: overrides.pop(k) for k in CONTROLS if k in overrides}
        unknown = sorted(set(overrides) - set(GenerationConfig.names()))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; valid: the generation settings "
                             f"{', '.join(GenerationConfig.names())}, and {', '.join(CONTROLS)}.")
        settings = (generation_config or self.generation_config).updated(**overrides)
        prompts = self._check_call(prompts, batch_size)
        per_prompt = self._per_prompt(controls, len(prompts))
        n = settings.num_samples
        expanded = [p for p in prompts for _ in range(n)]
        batches = range(0, len(expanded), batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="generate")
        texts = []
        for start in batches:
            chunk = expanded[start : start + batch_size]
            rows = [(start + j) // n for j in range(len(chunk))]
            batch = encode_prompts(self.tokenizer, chunk, self.model.config.max_prompt_length, truncation)
            batch = batch.to(self.device)
            step = None if callback is None else (lambda info, start=start: callback({**info, "start": start}))
            ids = generate_ids(self.model, batch, settings, self._controls(per_prompt, rows, settings),
                               generator=torch.Generator().manual_seed(seed + start), callback=step)
            texts.extend(self.decode(ids))
        grouped = [texts[i * n : (i + 1) * n] for i in range(len(prompts))]
        if return_all:
            return grouped
        return [group[mbr_select(group)] if settings.mbr else group[0] for group in grouped]

    def score(self, prompts: Sequence[str], responses: Sequence[str], num_samples: int = 64, seed: int = 0,
              batch_size: int = 32, truncation: bool = False) -> NLLBound:
        """An upper bound on -log p(response | prompt) for each pair (N1): nats per pair (``.nats``), its Monte Carlo
        error (``.stderr``), and ``.nats_per_token`` over all of them. Responses must fit the response slots."""
        prompts = self._check_call(prompts, batch_size)
        if isinstance(responses, str) or len(responses) != len(prompts):
            raise ValueError(f"score needs one response per prompt: {len(prompts)} prompts, "
                             f"{1 if isinstance(responses, str) else len(responses)} responses.")
        cfg, parts = self.model.config, []
        generator = torch.Generator().manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            chunk = slice(start, start + batch_size)
            batch = encode_pairs(self.tokenizer, prompts[chunk], list(responses[chunk]), cfg.max_prompt_length,
                                 cfg.max_response_length, truncation).to(self.device)
            parts.append(nll_bound(self.model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, num_samples,
                                   generator))
        return NLLBound.concatenate(parts)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids (B, N) to text, dropping the pad token wherever the model emitted it."""
        pad = self.model.config.pad_token_id
        return [self.tokenizer.decode([i for i in row if i != pad], clean_up_tokenization_spaces=True).strip()
                for row in ids.tolist()]

    def _per_prompt(self, controls: dict[str, Any], count: int) -> dict[str, Any]:
        """The call's controls, one entry per prompt, checked: lengths, templates as (ids, given), class indices."""
        out: dict[str, Any] = {}
        if controls.get("length") is not None:
            out["lengths"] = self._lengths(controls["length"], count)
        if controls.get("response_template") is not None:
            out["templates"] = self._templates(controls["response_template"], count)
        if controls.get("classifier") is not None:
            out["classifier"] = controls["classifier"]
            out["classes"] = self._classes(controls["classifier"], controls.get("classes"), count)
            out["classifier_scale"] = controls.get("classifier_scale", 0.0)
        return out

    def _controls(self, per_prompt: dict[str, Any], rows: list[int], settings: GenerationConfig) -> Controls:
        """The ``Controls`` of one batch, whose row j is prompt ``rows[j]``."""
        c = Controls(repeat_block=self.repeat_block if settings.block_adjacent_repeats else None)
        if "templates" in per_prompt:
            c.response_ids = torch.stack([per_prompt["templates"][r][0] for r in rows]).to(self.device)
            c.given = torch.stack([per_prompt["templates"][r][1] for r in rows]).to(self.device)
        if "classifier" in per_prompt:
            c.classifier, c.classifier_scale = per_prompt["classifier"], per_prompt["classifier_scale"]
            c.classes = torch.stack([per_prompt["classes"][r] for r in rows])
        if "lengths" in per_prompt:
            c.lengths = torch.tensor([per_prompt["lengths"][r] for r in rows], device=self.device)
        return c

    def _templates(self, template, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One (ids, given) per prompt from ``response_template`` (see ``diffusion_lm.text.templates``)."""
        from .templates import encode_template

        given = [template] * count if isinstance(template, str) else list(template)
        if len(given) != count:
            raise ValueError(f"{len(given)} response templates for {count} prompts; give one template, or one per "
                             "prompt.")
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
        bad = any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= n for v in lengths)
        if len(lengths) != count or bad:
            raise ValueError(f"length must be an integer in [0, {n}] (max_response_length) or one per prompt "
                             f"({count}); "
                             f"got {length!r}.")
        return lengths

    def _check_call(self, prompts, batch_size) -> list[str]:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence) or len(prompts) == 0:
            raise ValueError("prompts must be a non-empty list of strings.")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(f"prompt {i} is a {type(prompt).__name__}, not a string; pass text.")
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty; every prompt needs some text.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        return list(prompts)


def _card_sections(path, kwargs: dict) -> dict[str, dict[str, str]]:
    """The Training and Metrics tables of the card beside the weights (a local folder or the Hub repo)."""
    folder = Path(path)
    if not folder.is_dir():
        try:
            from huggingface_hub import hf_hub_download

            hub = {k: v for k, v in kwargs.items() if k in HUB_KWARGS}
            folder = Path(hf_hub_download(str(path), "README.md", **hub)).parent
        except Exception:  # a repo without a card
            return {}
    return read_card_sections(folder)


def _load_generation_config(path, model: DiffusionLMModel, kwargs: dict) -> GenerationConfig:
    """generation_config.json beside the weights (a local folder or the Hub repo); checkpoints written before it
    existed keep the clamp setting their config.json carried."""
    legacy = {"clamp": bool(model.config.clamp_at_inference)} if hasattr(model.config, "clamp_at_inference") else {}
    folder = Path(path)
    if not folder.is_dir():
        try:
            from huggingface_hub import hf_hub_download

            hub = {k: v for k, v in kwargs.items() if k in HUB_KWARGS}
            folder = Path(hf_hub_download(str(path), FILE_NAME, **hub)).parent
        except Exception:  # no such file in the repo (an older checkpoint): the defaults
            return GenerationConfig(**legacy)
    return GenerationConfig.load(folder, legacy)
