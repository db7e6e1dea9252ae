"""Train a classifier p(c | z_t, t, prompt) on a diffusion model's noisy response embeddings, for guidance.

    python -m training.train_classifier --model runs/demo/model --data labelled.jsonl --label_field label \\
        --out runs/demo/classifier [--steps 1500 --batch-size 64 --lr 1e-3]

The data are JSON lines with the prompt, the response and a label (any string; the classes are the
labels seen, sorted). Each step noises the responses with the model's own schedule at t ~ U(t_eps, 1)
(118) and takes the cross-entropy of the label. Rows that do not fit the model's slots are skipped (counted).
Prints held-out accuracy at a few noise levels and saves a ``ResponseClassifier`` (safetensors + JSON,
written atomically) that ``pipe(..., classifier=..., classes=..., classifier_scale=...)`` takes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .jsonl import read_fields, report
from .threads import require_positive, run_command


def read_labelled(path: Path, prompt_field: str, response_field: str, label_field: str) -> list[tuple[str, str, str]]:
    """(prompt, response, label) rows of a JSON-lines file, with errors that name the file, line and field."""
    return read_fields(path, (prompt_field, response_field, label_field),
                       "--prompt_field / --response_field / --label_field")


def noisy_batch(model, batch, generator: torch.Generator):
    """(prompt rows, prompt mask, z_t, t) for a tokenised batch: t ~ U(t_eps, 1), z_t = alpha x0 + sigma eps (118)."""
    cfg = model.config
    x0 = model.embed(batch.response_ids).float()
    t_eps = cfg.training_objective.t_eps
    t = t_eps + (1 - t_eps) * torch.rand(x0.shape[0], generator=generator)
    alpha, sigma = model.schedule.alpha(t).float()[:, None, None], model.schedule.sigma(t).float()[:, None, None]
    z = alpha * x0 + sigma * torch.randn(x0.shape, generator=generator)
    return model.embed(batch.prompt_ids).float(), batch.prompt_mask, z, t


def train_classifier(args: argparse.Namespace) -> dict:
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.classifier import ResponseClassifier, ResponseClassifierConfig, base_fingerprint
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    model, tok, cfg = pipe.model.eval(), pipe.tokenizer, pipe.model.config
    rows = read_labelled(args.data, args.prompt_field, args.response_field, args.label_field)
    fits = lambda text, n: len(tok(text, add_special_tokens=False)["input_ids"]) <= n
    kept = [r for r in rows if fits(r[0], cfg.max_prompt_length) and fits(r[1], cfg.max_response_length)]
    if len(kept) < len(rows):
        print(f"skipped {len(rows) - len(kept)} of {len(rows)} rows longer than the model's slots", file=sys.stderr)
    classes = sorted({r[2] for r in kept})
    if len(classes) < 2:
        raise ValueError(f"the data have {len(classes)} distinct label(s) in {args.label_field!r}; "
                         "a classifier needs two or more.")
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(kept), generator=generator).tolist()
    held = [kept[i] for i in order[: max(1, len(kept) // 10)]]
    train = [kept[i] for i in order[len(held):]]
    torch.manual_seed(args.seed)
    clf = ResponseClassifier(ResponseClassifierConfig(
        class_names=classes, embedding_dim=cfg.embedding_dim, max_prompt_length=cfg.max_prompt_length,
        max_response_length=cfg.max_response_length, hidden_size=args.hidden_size, num_layers=args.num_layers,
        num_heads=args.num_heads, base_fingerprint=base_fingerprint(model), use_prompt=not args.no_prompt))
    opt = torch.optim.AdamW(clf.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    encode = lambda part: encode_pairs(tok, [r[0] for r in part], [r[1] for r in part], cfg.max_prompt_length,
                                       cfg.max_response_length)
    label = lambda part: torch.tensor([classes.index(r[2]) for r in part])
    clf.train()
    bar = tqdm(range(args.steps), desc="train classifier")
    for _ in bar:
        idx = torch.randint(0, len(train), (args.batch_size,), generator=generator).tolist()
        part = [train[i] for i in idx]
        with torch.no_grad():
            inputs = noisy_batch(model, encode(part), generator)
        loss = torch.nn.functional.cross_entropy(clf(*inputs), label(part))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    clf.eval()
    accuracy = {}
    with torch.no_grad():
        batch, target = encode(held), label(held)
        prompt, mask = model.embed(batch.prompt_ids).float(), batch.prompt_mask
        for t in (0.1, 0.5, 0.8, 0.95):
            tt = torch.full((len(held),), t)
            x0 = model.embed(batch.response_ids).float()
            z = (model.schedule.alpha(tt).float()[:, None, None] * x0
                 + model.schedule.sigma(tt).float()[:, None, None] * torch.randn(x0.shape, generator=generator))
            accuracy[str(t)] = float((clf(prompt, mask, z, tt).argmax(-1) == target).float().mean())
    clf.save_pretrained(args.out)
    result = {"classes": classes, "train_rows": len(train), "held_out_rows": len(held),
              "held_out_accuracy_by_t": accuracy}
    return report(Path(args.out) / "training.json", result)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the diffusion model (folder or Hub id) the classifier guides")
    p.add_argument("--data", type=Path, required=True, help="JSON lines with prompt, response and label fields")
    p.add_argument("--label_field", default="label")
    p.add_argument("--prompt_field", default="prompt")
    p.add_argument("--response_field", default="response")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--no-prompt", action="store_true",
                   help="a classifier blind to the prompt, p(c | z_t, t): for attributes the prompt already predicts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    return require_positive(p, p.parse_args(argv), "steps", "batch_size")


def main(argv=None) -> int:
    return run_command(train_classifier, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
