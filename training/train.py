"""Train or fine-tune a diffusion-lm text model on prompt/response data.

    python -m training.train --config configs/tiny.yaml [--section.key value ...]
    accelerate launch -m training.train --config configs/demo.yaml --optim.lr 5e-4
    accelerate launch --num_processes 2 --cpu -m training.train --config configs/tiny.yaml

Every YAML key can be overridden with its dotted name (values are parsed as YAML). Shortcuts:
``--resume_from_checkpoint latest|PATH``, ``--push_to_hub REPO_ID``, ``--init_from PATH_OR_REPO``,
``--mixed_precision bf16|fp16|no``. Outputs in ``output_dir``: ``checkpoints/``, ``metrics.jsonl``,
``curves.png``, TensorBoard logs, and ``model/`` (``DiffusionLMPipeline.from_pretrained`` loads it).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .checkpointing import clean_partial, load_checkpoint, resolve_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, load_config, to_dict
from .data import BatchStream, collate, load_raw, response_repeat_share, tokenize
from .ema import EMA
from .evaluation import generation_metrics, text_metrics, validation_loss
from .logs import MetricsLog, plot_curves
from .runtime import GracefulStop, available_trackers, flat_config, has_accelerator, set_threads

if TYPE_CHECKING:
    from accelerate import Accelerator

logger = logging.getLogger("training")
SHORTCUTS = {"--resume_from_checkpoint": "--checkpoint.resume_from_checkpoint"}


def lr_lambda(cfg) -> callable:
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it at ``max_steps``."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_tokenizer(config: TrainConfig, train_raw, out: Path, is_main: bool, wait):
    """The encoder's or a pretrained tokenizer, or one trained on the training text (saved for resumes)."""
    from transformers import AutoTokenizer

    from diffusion_lm import train_tokenizer

    if config.model.get("embedding_source", "random") != "random":
        return None  # build_model loads the encoder's own
    if config.tokenizer.pretrained:
        return AutoTokenizer.from_pretrained(config.tokenizer.pretrained)
    saved = out / "tokenizer"
    if not saved.exists() and is_main:
        spec, pf, rf = config.tokenizer.train, config.data.prompt_field, config.data.response_field
        if hasattr(train_raw, "__len__"):  # map-style: whole columns
            head = train_raw.select(range(min(len(train_raw), 200_000)))
            texts = [t for col in (head[pf], head[rf]) for t in col if isinstance(t, str)]
        else:
            texts = [t for row in train_raw.take(200_000) for t in (row.get(pf), row.get(rf)) if isinstance(t, str)]
        tok = train_tokenizer(texts, spec.kind, spec.vocab_size, spec.lowercase)
        tok.save_pretrained(saved)
    wait()
    return AutoTokenizer.from_pretrained(saved)


def train(config: TrainConfig, train_dataset=None, eval_dataset=None) -> dict:
    """Run training as configured; ``train_dataset``/``eval_dataset`` (a ``datasets.Dataset`` or rows)
    replace ``config.data``'s source. Returns the final metrics and output paths."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from diffusion_lm import build_model
    from diffusion_lm.text.configuration import LEARNED_LOGITS_MAX_VOCAB
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    out = Path(config.output_dir)
    if config.push_to_hub:  # before any work: a run that ends in an upload needs a login and the Hub
        from diffusion_lm.text.hub import HubError, check_hub_access

        try:
            user = check_hub_access(config.push_to_hub)
        except HubError as err:
            raise ConfigError(f"--push_to_hub {config.push_to_hub}: {err} Nothing was trained.") from None
        logger.info("the Hub accepts %s: the model will be pushed to %s at the end", user, config.push_to_hub)
    trackers = available_trackers(config.trackers)
    # cpu=True when there is no GPU: then a multi-process launch (accelerate's multi-process config, torchrun)
    # joins one gloo process group instead of starting independent single-process runs
    accelerator = Accelerator(mixed_precision=config.mixed_precision, log_with=trackers or None, project_dir=str(out),
                              step_scheduler_with_optimizer=False, cpu=not has_accelerator())
    main = accelerator.is_main_process
    threads = set_threads(config.num_threads, accelerator)
    logging.basicConfig(level=logging.INFO if main else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("accelerate", "datasets", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    set_seed(config.seed)
    o = config.optim
    logger.info("world size %d (%s): per-process batch %d x %d accumulation step%s x %d process%s = effective batch %d",
                accelerator.num_processes, accelerator.distributed_type.value, o.batch_size, o.grad_accum,
                "s" * (o.grad_accum > 1), accelerator.num_processes, "es" * (accelerator.num_processes > 1),
                effective_batch(o, accelerator))
    if accelerator.device.type == "cpu":
        logger.info("%d torch thread%s per process (num_threads)", threads, "s" * (threads > 1))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        for partial in clean_partial(out):
            logger.warning("removed %s, left by a checkpoint save that did not finish", partial)
    accelerator.wait_for_everyone()

    # ----------------------------------------------------------------- model, tokenizer, data
    with accelerator.main_process_first():  # a bundled data set is built once, by the main process
        train_raw, val_raw = load_raw(config.data, config.seed, train_dataset, eval_dataset)
    if config.init_from:
        base = DiffusionLMPipeline.from_pretrained(config.init_from)
        model, tok = base.model.train(), base.tokenizer
        logger.info("fine-tuning %s (its model and tokenizer settings replace the config's)", config.init_from)
    else:
        tok = build_tokenizer(config, train_raw, out, main, accelerator.wait_for_everyone)
        model, tok = build_model(config.model_config(), tok, seed=config.seed)
    mcfg = model.config
    with accelerator.main_process_first():
        slots = (mcfg.max_prompt_length, mcfg.max_response_length)
        train_ds, train_report = tokenize(train_raw, tok, config.data, *slots, "train")
        val_ds, val_report = tokenize(val_raw, tok, config.data, *slots, "validation")
    val_ds = _materialise(val_ds, config.eval)
    config = _repeat_block_from_data(config, train_ds, tok)
    val_text = _validation_text(val_raw, config, tok, mcfg, config.eval.generate)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %.2fM trainable parameters, table %s x %s (sigma_E %.4f); %s training rows%s",
                n_params / 1e6, mcfg.vocab_size, mcfg.embedding_dim, mcfg.embedding_scale,
                len(train_ds) if hasattr(train_ds, "__len__") else "streamed", _report_note(train_report))

    if "learned_logits" not in config.model and not mcfg.encoder_init:
        logger.info("learned_logits (O1): %s (a vocabulary of %d tokens; on up to %d; set model.learned_logits to "
                    "decide)", "on" if mcfg.learned_logits else "off", mcfg.vocab_size, LEARNED_LOGITS_MAX_VOCAB)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(o))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    raw_model = accelerator.unwrap_model(model)
    ema = EMA(raw_model, o.ema_decay) if o.ema_decay else None

    start_step, state = 0, {}
    resume = resolve_checkpoint(out, config.checkpoint.resume_from_checkpoint)
    if resume is not None:
        state = load_checkpoint(accelerator, resume, ema)
        start_step = state["step"]
        logger.info("resumed from %s at step %d", resume, start_step)
    elif config.checkpoint.resume_from_checkpoint not in (None, "latest"):
        raise ConfigError(f"no checkpoint at {config.checkpoint.resume_from_checkpoint}.")
    elif main and (previous := _previous_run(out)):
        logger.warning("%s holds a previous run (%s); this run starts from step 0 and will replace it. "
                       "To continue that run instead, pass --resume_from_checkpoint latest.", out, previous)
    log = MetricsLog(out / "metrics.jsonl", resume_step=start_step if resume is not None else None) if main else None
    if trackers:
        accelerator.init_trackers(config.run_name or out.name, config=flat_config(to_dict(config)))

    # ----------------------------------------------------------------- the loop
    per_process = o.batch_size
    stream = BatchStream(train_ds, per_process * accelerator.num_processes, config.seed, config.data.shuffle_buffer)
    batches = stream(start_step * o.grad_accum)
    eval_model = copy.deepcopy(raw_model).eval()
    copy_scores = text_metrics(val_text[0], val_text[1]) if val_text[0] else {}
    progress = _progress(main, start_step, o.max_steps)
    train_seconds, tokens, last = 0.0, 0, {}
    model.train()
    stopped_at = None
    from tqdm.contrib.logging import logging_redirect_tqdm

    with GracefulStop() as stop, logging_redirect_tqdm():
        clipping_groups = raw_model.clipping_groups()
        for step in range(start_step + 1, o.max_steps + 1):
            t0 = time.perf_counter()
            for micro in range(o.grad_accum):
                rows = next(batches)
                lo = accelerator.process_index * per_process
                mine = {k: v[lo : lo + per_process] for k, v in rows.items()}
                batch = collate(mine, mcfg.pad_token_id, mcfg.max_response_length)
                batch = batch.to(accelerator.device)
                tokens += int(batch.prompt_mask.sum()) + batch.response_ids.numel()
                sync = micro == o.grad_accum - 1
                with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                    loss = model(**batch.as_kwargs()).loss
                    accelerator.backward(loss / o.grad_accum)
            if o.grad_clip:
                clip_gradients(accelerator, clipping_groups, o.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(raw_model)
            train_seconds += time.perf_counter() - t0
            if step % config.log_every == 0 or step == o.max_steps:
                last = {"loss": float(accelerator.reduce(loss.detach(), "mean")), "lr": scheduler.get_last_lr()[0],
                        "tokens_per_s": accelerator.num_processes * tokens / max(train_seconds, 1e-9)}
                _record(accelerator, log, step, last)
                progress.set_postfix(loss=f"{last['loss']:.4f}")
            if step % config.eval.every == 0 or step == o.max_steps:
                last.update(_evaluate(accelerator, config, raw_model, eval_model, ema, tok, val_ds, val_text,
                                      copy_scores, step, log, train_seconds))
            last_step = step == o.max_steps or stop.requested or step == config.stop_at_step
            if step % config.checkpoint.every == 0 or last_step:
                save_checkpoint(accelerator, out, step, ema, {"epoch_batches": stream.batches_per_epoch},
                                config.checkpoint.keep)
            progress.update(1)
            if stop.requested or step == config.stop_at_step:
                logger.warning("stopping after the checkpoint of step %d (%s)", step,
                               "signal" if stop.requested else "stop_at_step")
                stopped_at = step
                break
    progress.close()
    if stopped_at is not None:
        accelerator.end_training()
        return {"stopped_at": stopped_at}

    # ----------------------------------------------------------------- the result
    result = {"step": o.max_steps, "train_seconds": round(train_seconds, 2),
              **{k: v for k, v in last.items() if k != "lr"}, **{f"copy_{k}": v for k, v in copy_scores.items()}}
    if main:
        _weights_for_eval(raw_model, eval_model, ema)
        if length_fit_steps(o) and eval_model.length_predictor is not None:
            result.update(_fit_length(config, eval_model, train_ds, val_ds, accelerator.device))
        pipe = DiffusionLMPipeline(eval_model, tok, config.generation_config())  # it generates as evaluation did
        pipe.card["examples"] = val_text[0][:3]  # the card's (and the app's) example prompts
        card = {"steps": o.max_steps, "effective_batch_size": effective_batch(o, accelerator),
                "per_process_batch_size": o.batch_size, "processes": accelerator.num_processes,
                "grad_accum": o.grad_accum, "lr": o.lr, "ema_decay": o.ema_decay, "data": config.data.dataset,
                "train_files": config.data.train_files, "init_from": config.init_from,
                "mixed_precision": config.mixed_precision}
        pipe.save_pretrained(out / "model", metrics=_card_metrics(result), training=card)
        result["model_dir"] = str(out / "model")
        figure = plot_curves(log.rows(), out / "curves.png", title=config.run_name or out.name)
        if figure:
            result["curves"] = str(figure)
        if config.push_to_hub:
            result.update(_push(pipe, config, _card_metrics(result), card, out / "model"))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def length_fit_steps(o) -> int:
    """``optim.length_fit_steps``, or when unset twice the training steps, at most 2000."""
    return min(2 * o.max_steps, 2000) if o.length_fit_steps is None else o.length_fit_steps


def effective_batch(o, accelerator) -> int:
    """Rows per optimiser step across every process: per-process batch x accumulation x processes."""
    return o.batch_size * o.grad_accum * accelerator.num_processes


def _push(pipe, config, metrics: dict, card: dict, folder: Path) -> dict:
    """Upload the saved model; a failure keeps the run's result and says where the model is and how to upload it."""
    from diffusion_lm.text.hub import HubError

    try:
        return {"hub_commit": pipe.push_to_hub(config.push_to_hub, private=config.hub_private, metrics=metrics,
                                               training=card)}
    except HubError as err:
        logger.error("%s The trained model is saved in %s; upload it when the Hub is back with "
                     "`huggingface-cli upload %s %s`.", err, folder, config.push_to_hub, folder)
        return {"hub_error": str(err)}


def _evaluate(accelerator, config, raw_model, eval_model, ema, tok, val_ds, val_text, copy_scores, step, log,
              train_seconds: float = 0.0) -> dict:
    """Validation losses and generation metrics with the EMA weights, on the main process; ``train_minutes``
    is the optimisation time so far (evaluations excluded) of this process's run."""
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    metrics: dict = {"train_minutes": train_seconds / 60}
    if accelerator.is_main_process:
        _weights_for_eval(raw_model, eval_model, ema)
        e = config.eval
        metrics.update(validation_loss(eval_model, val_ds, eval_model.config.pad_token_id, e.loss_batches, e.batch_size,
                                       accelerator.device, seed=config.seed))
        prompts, refs = val_text
        if prompts:
            pipe = DiffusionLMPipeline(eval_model, tok, config.generation_config())
            scores, rows = generation_metrics(pipe, prompts, refs, e.batch_size, e.examples)
            metrics.update(scores)
            metrics.update({f"copy_{k}": v for k, v in copy_scores.items() if k in ("bleu", "chrf")})
            for row in rows:
                logger.info("step %d | %s -> %s (reference: %s)", step, row["prompt"], row["generated"],
                            row["reference"])
        _record(accelerator, log, step, metrics)
        logger.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    accelerator.wait_for_everyone()
    return metrics


def _fit_length(config: TrainConfig, model, train_ds, val_ds, device) -> dict:
    """(L2) the saved model's length classifier fitted alone for ``optim.length_fit_steps`` batches of fresh
    training rows (training/length_fit.py); logs its validation accuracy before and after."""
    from .length_fit import fit_length_classifier, length_accuracy

    o, e = config.optim, config.eval
    pad, slots = model.config.pad_token_id, model.config.max_response_length
    stream = BatchStream(train_ds, o.batch_size, config.seed + 1, config.data.shuffle_buffer)
    batches = (collate(rows, pad, slots).to(device) for rows in stream())
    n = min(len(val_ds), e.loss_batches * e.batch_size)
    val = [collate(val_ds[i : min(n, i + e.batch_size)], pad, slots).to(device) for i in range(0, n, e.batch_size)]
    steps = length_fit_steps(o)
    logger.info("fitting the length classifier alone for %d steps (optim.length_fit_steps)", steps)
    before = length_accuracy(model, val) if val else None
    fitted = fit_length_classifier(model, batches, steps, o.length_fit_lr, progress=True)
    if before is None:
        return fitted
    after = length_accuracy(model, val)
    logger.info("length classifier: validation accuracy %.1f%% -> %.1f%% in %.0f s (the last evaluation's generation "
                "metrics were measured before the fit)", 100 * before, 100 * after, fitted["length_fit_seconds"])
    return {**fitted, "val_length_accuracy_before_fit": before, "val_length_accuracy": after}


def _previous_run(out: Path) -> str:
    """What an earlier run left in ``out`` (its checkpoints, its saved model), or '' if nothing."""
    root = out / "checkpoints"
    found = sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if root.exists() else []
    parts = [f"checkpoints up to {found[-1].name}"] if found else []
    if (out / "model" / "config.json").exists():
        parts.append("a saved model")
    return " and ".join(parts)


def _weights_for_eval(raw_model, eval_model, ema) -> None:
    eval_model.load_state_dict(raw_model.state_dict())
    if ema is not None:
        ema.copy_to(eval_model)


def clip_gradients(accelerator: Accelerator, groups: list[list[torch.nn.Parameter]],
                   max_norm: float) -> list[torch.Tensor]:
    """Clip each group's gradient norm to ``max_norm`` on its own (the denoiser's is not scaled by the length
    classifier's); returns the norms before clipping, as tensors (no device sync on the training step)."""
    accelerator.unscale_gradients()
    return [torch.nn.utils.clip_grad_norm_(group, max_norm) for group in groups]


def _record(accelerator, log, step, values) -> None:
    if accelerator.is_main_process and values:
        log.write(step, **values)
    accelerator.log(values, step=step)


def _validation_text(val_raw, config, tok, mcfg, limit: int):
    """Prompts and references (text) of the first ``limit`` clean validation rows, for generation metrics."""
    if limit == 0:
        return [], []
    d = config.data
    prompts, refs = [], []
    streamed = not hasattr(val_raw, "__len__")
    rows = val_raw.take(limit * 4) if streamed else val_raw.select(range(min(len(val_raw), limit * 4)))
    for row in rows:
        p, r = row.get(d.prompt_field), row.get(d.response_field)
        if not (isinstance(p, str) and isinstance(r, str) and p.strip() and r.strip()):
            continue
        if len(tok(p, add_special_tokens=False)["input_ids"]) > mcfg.max_prompt_length:
            continue
        if len(tok(r, add_special_tokens=False)["input_ids"]) > mcfg.max_response_length:
            continue
        prompts.append(p)
        refs.append(r)
        if len(prompts) == limit:
            break
    return prompts, refs


def _repeat_block_from_data(config: TrainConfig, train_ds, tok) -> TrainConfig:
    """(B1) on by default where the training responses rarely repeat a word (under ``REPEAT_SHARE_LIMIT`` of them),
    off where they do; a ``generation:`` section that sets ``block_adjacent_repeats`` decides for itself."""
    from diffusion_lm.text.repeats import REPEAT_SHARE_LIMIT

    if "block_adjacent_repeats" in config.generation:
        return config
    share = response_repeat_share(train_ds, tok)
    if share is None:
        return config
    block = share < REPEAT_SHARE_LIMIT
    logger.info("block_adjacent_repeats: %s (%.2f%% of training responses repeat a word in a row; the bar is on below "
                "%.0f%%; set generation.block_adjacent_repeats to decide)", "on" if block else "off", 100 * share,
                100 * REPEAT_SHARE_LIMIT)
    return dataclasses.replace(config, generation={**config.generation, "block_adjacent_repeats": block})


def _materialise(val_ds, e):
    import datasets

    if isinstance(val_ds, datasets.IterableDataset):
        return datasets.Dataset.from_list(list(val_ds.take(e.loss_batches * e.batch_size)))
    return val_ds


def _report_note(report) -> str:
    return f" ({report.note()})" if report.total else ""


def _card_metrics(result: dict) -> dict:
    keys = ("val_loss", "bleu", "chrf", "exact_match", "copy_bleu", "copy_chrf")
    return {k: round(result[k], 4) for k in keys if k in result}


def _progress(main: bool, start: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", disable=not main, dynamic_ncols=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML file (see configs/)")
    args, rest = parser.parse_known_args(argv)
    rest = [SHORTCUTS.get(a.split("=")[0], a.split("=")[0]) + (("=" + a.split("=", 1)[1]) if "=" in a else "")
            for a in rest]
    try:
        config = load_config(args.config, rest)
        result = train(config)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:  # one final report, not one per rank
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()})
        hint = distill_hint(config, result)
        if hint:
            print(hint)
    return 1 if "hub_error" in result else 0


def distill_hint(config, result: dict) -> str | None:
    """What to run for a one-evaluation default call (D2), for a model trained on local JSON lines: the command
    that distils it (docs/benchmarks.md, "Speed of the default call")."""
    files = config.data.train_files
    if "model_dir" not in result or config.data.dataset != "json" or not files:
        return None
    model = Path(result["model_dir"])
    return ("For a default call about 10x faster (one step, one length candidate), distil the model; a student is as "
            "good as the teacher answers it learns from, so raise --prompts on a large data set (docs/benchmarks.md, "
            "\"Speed of the default call\", has the settings measured per task):\n"
            f"  python -m training.distill --teacher {model} --data {files[0]} --out {model.parent / 'fast'}")


if __name__ == "__main__":
    sys.exit(main())
