"""Prompt/response data for training: load any ``datasets`` source, drop bad rows (counted), tokenise, batch.

Batches are a pure function of (seed, batch index): the i-th global batch of an epoch is a slice of a
permutation seeded by (seed, epoch), so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffusion_lm.text.batching import PairBatch, pad_prompts, pad_responses

from .config import ConfigError, DataConfig

logger = logging.getLogger(__name__)

PROBLEMS = {"missing": "a missing prompt or response field", "empty": "an empty prompt or response",
            "too_long": "a prompt or response longer than the model's slots"}


@dataclass
class DataReport:
    """How many rows a split had, how many were kept, and why the others were dropped (with an example each)."""

    split: str
    total: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.counts.values())

    def add(self, problem: str, row: dict) -> None:
        self.counts[problem] += 1
        self.examples.setdefault(problem, {k: (v[:80] if isinstance(v, str) else v) for k, v in row.items()})

    truncated: int = 0

    def reasons(self) -> str:
        return "; ".join(f"{n} with {PROBLEMS[p]} (e.g. {self.examples[p]})" for p, n in self.counts.items())

    def summary(self) -> str:
        return f"{self.split}: skipped {self.dropped} of {self.total} rows: {self.reasons()}"

    def note(self) -> str:
        """One line for the run's log: how many rows were used, skipped and truncated."""
        parts = [f"{self.total - self.dropped} of {self.total} rows used"]
        if self.dropped:
            parts.append(f"{self.dropped} skipped (see the warning above)")
        if self.truncated:
            parts.append(f"{self.truncated} truncated to the model's slots (data.truncate)")
        return ", ".join(parts)


def load_raw(cfg: DataConfig, seed: int, train_dataset: Any = None, eval_dataset: Any = None):
    """(train, validation) datasets of raw rows. A missing validation split is held out of train."""
    import datasets

    if train_dataset is not None:
        train = (train_dataset if isinstance(train_dataset, (datasets.Dataset, datasets.IterableDataset))
                 else datasets.Dataset.from_list(list(train_dataset)))
        validation = eval_dataset
        if validation is not None and not isinstance(validation, (datasets.Dataset, datasets.IterableDataset)):
            validation = datasets.Dataset.from_list(list(validation))
    else:
        if cfg.dataset in ("json", "csv", "parquet"):  # each split on its own: their columns may differ
            train = _load_files(cfg.dataset, cfg.train_files, cfg.streaming, "train")
            validation = (_load_files(cfg.dataset, cfg.validation_files, cfg.streaming, "validation")
                          if cfg.validation_files else None)
        else:
            splits = datasets.load_dataset(cfg.dataset, cfg.dataset_config, streaming=cfg.streaming)
            if cfg.train_split not in splits:
                raise ConfigError(f"{cfg.dataset} has no split {cfg.train_split!r}; it has {list(splits)} "
                                  "(set data.train_split).")
            train = splits[cfg.train_split]
            validation = splits[cfg.validation_split] if cfg.validation_split in splits else None
    _check_columns(train, cfg)
    if validation is None:
        train, validation = _hold_out(train, cfg, seed)
    else:
        _check_columns(validation, cfg)
    if cfg.max_train_samples is not None:
        train = (train.take(cfg.max_train_samples) if _is_streaming(train)
                 else train.select(range(min(cfg.max_train_samples, len(train)))))
    return train, validation


def _load_files(kind: str, files: list[str], streaming: bool, split: str):
    """One split from local files; the project's own data sets (data/generated/<name>/) are built when missing."""
    import datasets

    from .build_data import bundled_split

    key = f"data.{split}_files"
    for path in files:
        if not Path(path).exists():
            if bundled_split(path) is None:
                raise ConfigError(f"{key}: {path} does not exist; give the path of a {kind} file with "
                                  f"prompt/response rows (or build the bundled data: "
                                  f"python -m training.build_data --help).")
            bundled_split(path)()  # builds the data set the path belongs to
    for path in files:
        if Path(path).stat().st_size == 0 or (kind == "json" and not Path(path).read_text(encoding="utf-8").strip()):
            raise ConfigError(f"{key}: {path} is empty; it needs prompt/response rows (json: one object per line, "
                              'such as {"prompt": "...", "response": "..."}).')
        if kind == "json":
            _check_json_lines(Path(path), key)
    try:
        return datasets.load_dataset(kind, data_files={split: files}, streaming=streaming)[split]
    except Exception as err:  # a malformed file: name it
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(f"{key}: could not read {', '.join(files)} as {kind} ({type(err).__name__}: {reason}); "
                          "each line must be a JSON object (json) or each row a record with the prompt and "
                          "response columns.") from None


def _check_json_lines(path: Path, key: str) -> None:
    """Name the first line of a JSON-lines file that is not one JSON object (datasets' own error names none)."""
    from diffusion_lm.common.jsonl import json_lines

    try:
        for _ in json_lines(path):
            pass
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def _is_streaming(ds) -> bool:
    import datasets

    return isinstance(ds, datasets.IterableDataset)


def _check_columns(ds, cfg: DataConfig) -> None:
    columns = ds.column_names
    if columns is None:  # some streaming sources only know their columns once read
        return
    for role, name in (("prompt", cfg.prompt_field), ("response", cfg.response_field)):
        if name not in columns:
            raise ConfigError(f"the {getattr(ds, 'split', None) or 'training'} data has no {role} column {name!r}; "
                              f"set data.{role}_field to one of {columns} (both splits must use the same names).")


def _hold_out(train, cfg: DataConfig, seed: int):
    if _is_streaming(train):
        n = cfg.validation_size or 1000
        return train.skip(n), train.take(n)
    n = cfg.validation_size or max(1, round(cfg.validation_fraction * len(train)))
    if n >= len(train):
        raise ConfigError(f"cannot hold out {n} validation rows from {len(train)}; "
                          "lower data.validation_fraction or add data.validation_files.")
    parts = train.train_test_split(test_size=n, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def tokenize(ds, tokenizer: Any, cfg: DataConfig, max_prompt: int, max_response: int, split: str):
    """Add ``prompt_ids``/``response_ids`` through ``datasets.map`` (batched, cached) and drop bad rows.

    Returns the clean dataset and a :class:`DataReport`; for a streaming dataset the report fills
    as rows are read. With ``data.strict`` any bad row is an error.
    """
    report = DataReport(split)
    pf, rf = cfg.prompt_field, cfg.response_field

    def encode(rows: dict) -> dict:
        prompts, responses = rows.get(pf), rows.get(rf)
        n = len(next(iter(rows.values())))
        prompts = prompts if prompts is not None else [None] * n
        responses = responses if responses is not None else [None] * n
        out = {"prompt_ids": [], "response_ids": [], "problem": [], "truncated": []}
        texts_p = [p if isinstance(p, str) else "" for p in prompts]
        texts_r = [r if isinstance(r, str) else "" for r in responses]
        ids_p = tokenizer(texts_p, add_special_tokens=False)["input_ids"]
        ids_r = tokenizer(texts_r, add_special_tokens=False)["input_ids"]
        for p, r, ip, ir in zip(prompts, responses, ids_p, ids_r):
            if not isinstance(p, str) or not isinstance(r, str):
                problem = "missing"
            elif not p.strip() or not r.strip():
                problem = "empty"
            elif (len(ip) > max_prompt or len(ir) > max_response) and not cfg.truncate:
                problem = "too_long"
            else:
                problem = ""
            cut = len(ip) > max_prompt or len(ir) > max_response
            out["prompt_ids"].append(ip[:max_prompt])
            out["response_ids"].append(ir[:max_response])
            out["problem"].append(problem)
            out["truncated"].append(bool(cut and not problem))
        return out

    keep = ["prompt_ids", "response_ids", "problem", "truncated"]
    drop = [c for c in (ds.column_names or []) if c not in keep]
    kwargs = {} if _is_streaming(ds) else {"num_proc": cfg.num_proc, "desc": f"tokenising {split}"}
    encoded = ds.map(encode, batched=True, remove_columns=drop, **kwargs)
    if _is_streaming(ds):
        def counted(row):
            report.total += 1
            report.truncated += bool(row["truncated"])
            if row["problem"]:
                report.add(row["problem"], {"prompt_ids": row["prompt_ids"][:10],
                                            "response_ids": row["response_ids"][:10]})
            return not row["problem"]

        return encoded.filter(counted).remove_columns("truncated"), report
    problems = encoded["problem"]
    report.total = len(problems)
    report.truncated = sum(encoded["truncated"])
    for i, problem in enumerate(problems):
        if problem:
            row = ds[i]
            report.add(problem, {pf: row.get(pf), rf: row.get(rf)})
    if report.dropped:
        if cfg.strict:
            fixes = "clean the data, or set data.strict false to skip such rows"
            if report.counts.get("too_long"):
                fixes += ", or data.truncate true to cut over-long ones to the model's slots"
            raise ConfigError(f"{report.split}: {report.dropped} of {report.total} rows are unusable and data.strict "
                              f"is on: {report.reasons()}. Nothing was trained; {fixes}.")
        logger.warning(report.summary())
    clean = encoded.filter(lambda p: not p, input_columns="problem",
                           **({"num_proc": cfg.num_proc} if cfg.num_proc else {}))
    if len(clean) == 0:
        raise ConfigError(f"{split}: no usable rows left ({report.summary()}).")
    return clean.remove_columns(["problem", "truncated"]), report


def collate(rows: dict[str, list], pad_id: int, response_length: int) -> PairBatch:
    """A batch from columns ``prompt_ids`` and ``response_ids`` (lists of token lists)."""
    prompt_ids, prompt_mask = pad_prompts(rows["prompt_ids"], pad_id)
    return PairBatch(prompt_ids, prompt_mask, pad_responses(rows["response_ids"], response_length, pad_id))


class BatchStream:
    """Global batches of ``global_batch`` rows, from batch index ``start`` on, forever (epoch after epoch).

    A map-style dataset is read through a per-epoch permutation seeded by (seed, epoch); a streaming one
    through ``IterableDataset.shuffle(seed, buffer)`` with ``set_epoch``, skipping the rows already used.
    """

    def __init__(self, ds, global_batch: int, seed: int, shuffle_buffer: int = 10_000):
        self.ds, self.global_batch, self.seed, self.shuffle_buffer = ds, global_batch, seed, shuffle_buffer
        if not _is_streaming(ds) and len(ds) < global_batch:
            raise ConfigError(f"the training set has {len(ds)} rows, fewer than one global batch of {global_batch}; "
                              "lower optim.batch_size.")

    @property
    def batches_per_epoch(self) -> int | None:
        return None if _is_streaming(self.ds) else len(self.ds) // self.global_batch

    def __call__(self, start: int = 0) -> Iterator[dict[str, list]]:
        if _is_streaming(self.ds):
            yield from self._stream(start)
            return
        per_epoch = self.batches_per_epoch
        index = start
        while True:
            epoch, offset = divmod(index, per_epoch)
            order = torch.randperm(len(self.ds), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for b in range(offset, per_epoch):
                yield self.ds[order[b * self.global_batch : (b + 1) * self.global_batch].tolist()]
                index += 1

    def _stream(self, start: int) -> Iterator[dict[str, list]]:
        skip, epoch = start * self.global_batch, 0
        while True:
            shuffled = self.ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
            shuffled.set_epoch(epoch)
            batch: list[dict] = []
            read = 0
            for row in shuffled:
                read += 1
                if skip > 0:
                    skip -= 1
                    continue
                batch.append(row)
                if len(batch) == self.global_batch:
                    yield {k: [r[k] for r in batch] for k in ("prompt_ids", "response_ids")}
                    batch = []
            if read == 0:
                raise ValueError("the streaming training set yielded no usable rows.")
            epoch += 1


def response_repeat_share(train_ds, tokenizer: Any, rows: int = 20_000) -> float | None:
    """The share of the first ``rows`` training responses in which a token repeats its left neighbour's word
    (``diffusion_lm.text.repeats.repeat_share``), or None for a streamed data set (not read ahead)."""
    from diffusion_lm.text.repeats import RepeatBlock, repeat_share

    if _is_streaming(train_ds):
        return None
    responses = train_ds.select(range(min(rows, len(train_ds))))["response_ids"]
    return repeat_share(responses, RepeatBlock.of(tokenizer), tokenizer.pad_token_id)
