"""Training configuration: plain YAML loaded into typed dataclasses and validated before any work starts.

Command-line overrides use the same dotted keys as the YAML file: ``--optim.lr 3e-4``,
``--data.train_files '[a.jsonl, b.jsonl]'``, ``--model.self_conditioning true``. Values are parsed as YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the key and the fix."""


# Settings of DiffusionLMConfig that training derives (from the tokenizer and the table), never the YAML file, and
# its objective group, which the YAML file sets in a section of its own (``objective:``).
DERIVED_MODEL_KEYS = ("vocab_size", "embedding_scale", "pad_token_id", "tokenizer_fingerprint", "encoder_config",
                      "objective")


def model_keys() -> dict[str, Any]:
    """The ``model:`` keys a config may set: ``DiffusionLMConfig``'s own arguments (one source), with their types."""
    import inspect

    from diffusion_lm import DiffusionLMConfig

    hints = typing.get_type_hints(DiffusionLMConfig.__init__)
    params = inspect.signature(DiffusionLMConfig.__init__).parameters
    return {name: hints.get(name, Any) for name, p in params.items()
            if name not in ("self", "kwargs") and name not in DERIVED_MODEL_KEYS and p.kind is p.POSITIONAL_OR_KEYWORD}


def check_model_section(data: Any) -> dict:
    """Type-check the ``model:`` mapping against ``DiffusionLMConfig``'s arguments; unknown keys are errors."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"model must be a mapping, got {type(data).__name__}.")
    keys = model_keys()
    from diffusion_lm import TrainingObjective

    moved = sorted(set(data) & set(TrainingObjective.fields()))
    if moved:
        raise ConfigError(f"{', '.join('model.' + k for k in moved)} belong{'s' * (len(moved) == 1)} to the training "
                          f"objective now: set {', '.join('objective.' + k for k in moved)} instead.")
    from diffusion_lm.text.configuration import REMOVED

    for key in sorted(set(data) & set(REMOVED)):
        raise ConfigError(f"model.{key}={data[key]!r}: {key} was an option of diffusion-lm 0.1 that was measured and "
                          f"removed (docs/options.md, 'Options removed'); delete the key: every model now uses "
                          f"{REMOVED[key]!r}.")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join('model.' + k for k in unknown)} in "
                          f"model; valid keys: {', '.join(sorted(keys))} (the arguments of DiffusionLMConfig).")
    return {k: _coerce(v, keys[k], f"model.{k}") for k, v in data.items()}


def typed_section(data: Any, cls: type, section: str) -> dict:
    """A ``section:`` mapping type-checked against the fields of dataclass ``cls``; unknown keys are errors."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{section} must be a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(f'{section}.{k}' for k in unknown)} in {section}; valid keys: "
                          f"{', '.join(sorted(hints))}.")
    return {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in data.items()}


def check_objective_section(data: Any) -> dict:
    """Type-check the ``objective:`` mapping against ``TrainingObjective``'s fields."""
    from diffusion_lm import TrainingObjective

    return typed_section(data, TrainingObjective, "objective")


@dataclass
class TrainTokenizerConfig:
    kind: Literal["wordlevel", "wordpiece", "bpe", "sentencepiece"] = "wordpiece"
    vocab_size: int = 8000
    lowercase: bool = False


@dataclass
class TokenizerConfig:
    """A pretrained tokenizer (name or path), or one trained on the training text. With an encoder
    embedding source the encoder's own tokenizer is used and this section must stay empty."""

    pretrained: str | None = None
    train: TrainTokenizerConfig | None = None


@dataclass
class DataConfig:
    """Any ``datasets.load_dataset`` source: a Hub dataset name, or json/csv/parquet with local files."""

    dataset: str = "json"
    train_files: list[str] | None = None
    validation_files: list[str] | None = None
    dataset_config: str | None = None
    train_split: str = "train"
    validation_split: str | None = "validation"
    validation_fraction: float = 0.05
    validation_size: int | None = None
    prompt_field: str = "prompt"
    response_field: str = "response"
    streaming: bool = False
    shuffle_buffer: int = 10_000
    strict: bool = False
    truncate: bool = False  # cut over-long prompts and responses to the model's slots (counted), not skip them
    max_train_samples: int | None = None
    num_proc: int | None = None


@dataclass
class OptimConfig:
    lr: float = 2e-3  # g2p, 2000 steps: 30.8% exact match against 21.3% at 3e-4 (docs/options.md)
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 100
    max_steps: int = 1000
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    batch_size: int = 64
    grad_accum: int = 1
    ema_decay: float | None = 0.999
    # (L2) batches for the length classifier alone after training (training/length_fit.py); None: 2 x max_steps,
    # at most 2000 (g2p +0.5 to +1.2 points of exact match, 58 -> 67-70% of lengths right)
    length_fit_steps: int | None = None
    length_fit_lr: float = 1e-3  # its peak learning rate


@dataclass
class EvalConfig:
    """Periodic evaluation; generations use the ``generation:`` settings, which are saved with the model."""

    every: int = 500
    loss_batches: int = 8
    generate: int = 64
    examples: int = 4
    batch_size: int = 64


@dataclass
class CheckpointConfig:
    every: int = 500
    keep: int = 3
    resume_from_checkpoint: str | None = None


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    run_name: str | None = None
    seed: int = 0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    num_threads: int | None = None  # torch CPU threads per process; None: OMP_NUM_THREADS, else cores / processes
    init_from: str | None = None
    push_to_hub: str | None = None
    hub_private: bool = True
    log_every: int = 10
    stop_at_step: int | None = None
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    model: dict = field(default_factory=dict)  # DiffusionLMConfig's arguments: its defaults are the only ones
    objective: dict = field(default_factory=dict)  # TrainingObjective's fields: loss weights, t_eps, prompt dropout
    generation: dict = field(default_factory=dict)  # GenerationConfig's fields: how evaluation and the model sample
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def validate(self) -> "TrainConfig":
        """Reject impossible values; return self."""
        o, d, e, c, m = self.optim, self.data, self.eval, self.checkpoint, self.model
        _positive(o.lr, "optim.lr")
        _positive(o.max_steps, "optim.max_steps")
        _positive(o.batch_size, "optim.batch_size")
        _positive(o.grad_accum, "optim.grad_accum")
        _at_least(o.weight_decay, 0, "optim.weight_decay")
        _at_least(o.warmup_steps, 0, "optim.warmup_steps")
        if o.length_fit_steps is not None:
            _at_least(o.length_fit_steps, 0, "optim.length_fit_steps")
        _positive(o.length_fit_lr, "optim.length_fit_lr")
        if not 0 <= o.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio must lie in [0, 1], got {o.min_lr_ratio}.")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {o.betas}.")
        if o.grad_clip is not None:
            _positive(o.grad_clip, "optim.grad_clip")
        if o.ema_decay is not None and not 0 < o.ema_decay < 1:
            raise ConfigError(f"optim.ema_decay must lie in (0, 1) or be null (no EMA), got {o.ema_decay}.")
        for name in ("every", "loss_batches", "batch_size"):
            _positive(getattr(e, name), f"eval.{name}")
        _at_least(e.generate, 0, "eval.generate")
        _positive(c.every, "checkpoint.every")
        _positive(c.keep, "checkpoint.keep")
        _positive(self.log_every, "log_every")
        if self.num_threads is not None:
            _positive(self.num_threads, "num_threads")
        if not 0 < d.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must lie in (0, 1), got {d.validation_fraction}.")
        if d.dataset in ("json", "csv", "parquet") and not d.train_files:
            raise ConfigError(f"data.dataset is {d.dataset!r}: give data.train_files (a list of local files).")
        self.generation_config()
        self.model = check_model_section(m)
        self.objective = check_objective_section(self.objective)
        encoder = self.model.get("embedding_source", "random") != "random"
        if encoder and (self.tokenizer.pretrained or self.tokenizer.train):
            raise ConfigError("model.embedding_source is an encoder, which brings its own tokenizer: leave the "
                              "tokenizer section empty.")
        if not encoder and not self.init_from and not (self.tokenizer.pretrained or self.tokenizer.train):
            raise ConfigError("a random embedding table needs a tokenizer: set tokenizer.pretrained or "
                              "tokenizer.train.")
        if self.tokenizer.pretrained and self.tokenizer.train:
            raise ConfigError("set one of tokenizer.pretrained and tokenizer.train, not both.")
        if self.mixed_precision == "fp16":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("mixed_precision fp16 needs a CUDA GPU; on CPU use bf16 or no.")
        self.model_config()  # DiffusionLMConfig runs its own checks
        return self

    def model_config(self):
        from diffusion_lm import DiffusionLMConfig, TrainingObjective

        try:
            objective = TrainingObjective.from_dict(check_objective_section(self.objective))
        except ValueError as err:
            raise ConfigError(f"objective: {err}") from err
        try:
            return DiffusionLMConfig(**self.model, objective=objective)
        except ValueError as err:
            raise ConfigError(f"model: {err}") from err

    def generation_config(self):
        """The ``generation:`` section as a ``GenerationConfig`` (its dataclass fields are the valid keys)."""
        from diffusion_lm.text.generation_config import GenerationConfig

        values = typed_section(self.generation, GenerationConfig, "generation")
        try:
            return GenerationConfig().updated(**values) if values else GenerationConfig()
        except ValueError as err:
            raise ConfigError(f"generation: {err}") from err


def _positive(value, name):
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}.")


def _at_least(value, low, name):
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}.")


# ----------------------------------------------------------------------------- typed loading


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}; got {value!r}.")
        return value
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {value!r}.")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}.")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}.")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}.")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {type(value).__name__} {value!r}.")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {type(value).__name__} {value!r}.")
        return value
    return value


def from_dict(cls, data: Any, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    where = prefix or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(f'{prefix}.{k}' if prefix else k for k in unknown)} "
                          f"in {where}; valid keys: {', '.join(sorted(names))}.")
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**values)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--{dotted}: {k} is not a section.")
    node[keys[-1]] = value


def parse_overrides(args: list[str]) -> dict:
    """``["--optim.lr", "3e-4", "--model.dropout=0.1"]`` -> nested dict; values parsed as YAML."""
    tree: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key value.")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"--{key} needs a value.")
            value, i = args[i + 1], i + 1
        _set_dotted(tree, key.replace("-", "_"), yaml.safe_load(value) if value != "" else "")
        i += 1
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "schedule" else v
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file (optional), apply ``--key value`` overrides, type-check and validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist; see configs/ for examples.")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a YAML mapping of sections.")
    data = _merge(data, parse_overrides(overrides or []))
    return from_dict(TrainConfig, data).validate()


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
