"""Class-conditional diffusion on scikit-learn's 8x8 digits, with classifier-free and classifier guidance.

    python -m training.train_digits --out outputs/digits               # train both models, then evaluate
    python -m training.train_digits --eval-only --out outputs/digits   # evaluate the saved checkpoints

Trains a small U-Net by denoising score matching (38) with label dropout (the null label with
probability --label-dropout, for classifier-free guidance (58)-(62)) and a noisy classifier on x_t
(52) for classifier guidance (53)-(57). Then samples --per-class digits of every class at each
guidance scale, scores them with a separate judge (an SVM trained on clean digits) and a diversity
ratio, and computes the test set's bits per dimension (uniform dequantisation, 17 levels).
Writes unet/ and classifier/ (safetensors + JSON), metrics.json and the PNG grids to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffusion_lm.common.atomic import write_json_atomic
from diffusion_lm.core import METHODS, VPSchedule, dsm_loss
from diffusion_lm.images.classifier import NoisyClassifier, NoisyClassifierConfig, noisy_classifier_loss
from diffusion_lm.images.digits import dequantize, load_digits_split, quantize
from diffusion_lm.images.evaluate import Judge, class_labels, diversity, generate, heldout_bits_per_dim
from diffusion_lm.images.unet import DigitsUNet, DigitsUNetConfig
from diffusion_lm.toy.training import fit

from .threads import run_on_threads

SCHEDULES = {"cosine": VPSchedule.cosine, "linear": VPSchedule.linear}


def _scales(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"need comma-separated scales >= 0, got {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="U-Net optimiser steps")
    p.add_argument("--classifier-steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--schedule", choices=tuple(SCHEDULES), default="cosine")
    p.add_argument("--prediction", choices=("eps", "x0", "v"), default="v",
                   help="v keeps x0 = alpha x - sigma v well conditioned near t = 1, where alpha_1 ~ 1e-4 (cosine)")
    p.add_argument("--method", choices=METHODS, default="dpm_solver++",
                   help="sampler for the conditional model and classifier-free guidance")
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--classifier-method", choices=METHODS, default="ddpm",
                   help="sampler under classifier guidance (ODE samplers collapse there for w > 1)")
    p.add_argument("--classifier-sample-steps", type=int, default=100)
    p.add_argument("--per-class", type=int, default=50, help="generated digits per class and guidance scale")
    p.add_argument("--cfg-scales", type=_scales, default=_scales("0,0.5,1,2,4,8"))
    p.add_argument("--classifier-scales", type=_scales, default=_scales("0,1,2,4,8"))
    p.add_argument("--bpd-images", type=int, default=-1, help="test images for bits/dim (-1: all, 0: skip)")
    p.add_argument("--eval-only", action="store_true", help="load --out/unet and --out/classifier instead of training")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/digits"))
    args = p.parse_args(argv)
    if min(args.steps, args.classifier_steps, args.batch_size, args.channels, args.sample_steps,
           args.classifier_sample_steps, args.per_class) < 1:
        p.error("--steps, --classifier-steps, --batch-size, --channels, --sample-steps, --classifier-sample-steps "
                "and --per-class must be >= 1")
    if not 0.0 <= args.label_dropout < 1.0 or args.lr <= 0:
        p.error("--label-dropout must lie in [0, 1) and --lr be > 0")
    if args.eval_only and not (args.out / "unet").is_dir():
        p.error(f"--eval-only needs a trained model in {args.out / 'unet'}; train without --eval-only first")
    return args


def train(args, train_split) -> tuple[DigitsUNet, NoisyClassifier, dict]:
    schedule = SCHEDULES[args.schedule]()
    unet = DigitsUNet(DigitsUNetConfig(channels=args.channels, label_dropout=args.label_dropout,
                                       prediction=args.prediction, schedule=schedule.config()))
    classifier = NoisyClassifier(NoisyClassifierConfig(channels=args.channels, schedule=schedule.config()))
    null = unet.null_label

    def batch(n: int, gen: torch.Generator):
        idx = torch.randint(len(train_split), (n,), generator=gen)
        return dequantize(train_split.levels[idx], gen), train_split.labels[idx]

    def unet_loss(model, xy, gen):
        x0, y = xy
        dropped = torch.rand(len(y), generator=gen) < args.label_dropout
        y = torch.where(dropped, torch.full_like(y, null), y)
        return dsm_loss(lambda x, t: model(x, t, y), x0, schedule, prediction=unet.prediction, generator=gen)

    gen = torch.Generator().manual_seed(args.seed)
    log_unet = fit(unet, batch, unet_loss, steps=args.steps, batch_size=args.batch_size, lr=args.lr, generator=gen,
                   desc="train U-Net")
    log_clf = fit(classifier, batch, lambda m, xy, g: noisy_classifier_loss(m, *xy, schedule, generator=g),
                  steps=args.classifier_steps, batch_size=args.batch_size, lr=args.lr, generator=gen,
                  desc="train noisy classifier")
    unet.save_pretrained(args.out / "unet")
    classifier.save_pretrained(args.out / "classifier")
    return unet, classifier, {"unet_seconds": round(log_unet["seconds"], 1), "unet_final_loss": log_unet["final_loss"],
                              "classifier_seconds": round(log_clf["seconds"], 1),
                              "classifier_final_loss": log_clf["final_loss"]}


def evaluate(args, unet: DigitsUNet, classifier: NoisyClassifier, train_split, test_split) -> dict:
    from tqdm.auto import tqdm

    judge = Judge(train_split)
    labels = class_labels(args.per_class)
    metrics = {"judge_test_accuracy": judge.accuracy(test_split.levels, test_split.labels),
               "per_class": args.per_class, "method": args.method, "sample_steps": args.sample_steps,
               "classifier_method": args.classifier_method, "classifier_sample_steps": args.classifier_sample_steps}
    grids = {}
    settings = [("cfg", w) for w in args.cfg_scales] + [("classifier", w) for w in args.classifier_scales]
    for guidance, scale in tqdm(settings, desc="guided sampling"):
        start = time.time()
        method, steps = ((args.classifier_method, args.classifier_sample_steps) if guidance == "classifier"
                         else (args.method, args.sample_steps))
        x = generate(unet, labels, guidance=guidance, scale=scale, classifier=classifier, method=method, steps=steps,
                     generator=torch.Generator().manual_seed(args.seed + 1))
        levels = quantize(x)
        metrics.setdefault(guidance, []).append({
            "scale": scale, "accuracy": judge.accuracy(levels, labels),
            "diversity": diversity(levels, labels, test_split), "seconds": round(time.time() - start, 1)})
        shown = levels.reshape(10, args.per_class, 1, 8, 8)[:, :10].reshape(-1, 1, 8, 8)  # 10 per class
        grids.setdefault(guidance, {})[f"w = {scale:g}"] = shown
    if args.bpd_images:
        n = len(test_split) if args.bpd_images < 0 else min(args.bpd_images, len(test_split))
        subset = type(test_split)(test_split.levels[:n], test_split.labels[:n])
        start = time.time()
        gen = torch.Generator().manual_seed(args.seed + 2)
        metrics["test_bits_per_dim"] = {"images": n, **heldout_bits_per_dim(unet, subset, generator=gen),
                                        "conditional": heldout_bits_per_dim(unet, subset, conditional=True,
                                                                            generator=gen),
                                        "seconds": round(time.time() - start, 1)}
    metrics["pictures"] = [str(p) for p in _draw(args, grids, metrics)]
    return metrics


def _draw(args, grids: dict, metrics: dict) -> list[Path]:
    from diffusion_lm.common.plotting import pyplot as _pyplot
    from diffusion_lm.common.plotting import save_figure
    from diffusion_lm.images.plots import plot_digit_grids

    names = {"cfg": f"classifier-free guidance ({args.method}, {args.sample_steps} steps)",
             "classifier": f"classifier guidance ({args.classifier_method}, {args.classifier_sample_steps} steps)"}
    pictures = [plot_digit_grids(panels, args.out / f"digits_{kind}.png", title=f"{names[kind]}: rows are classes 0-9")
                for kind, panels in grids.items()]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for kind in grids:
        rows = metrics[kind]
        axes[0].plot([r["scale"] for r in rows], [r["accuracy"] for r in rows], "o-", label=names[kind])
        axes[1].plot([r["scale"] for r in rows], [r["diversity"] for r in rows], "o-", label=names[kind])
    axes[0].axhline(0.9, color="0.6", lw=0.8, ls="--")
    axes[0].set(xlabel="guidance scale w", ylabel="class accuracy (judge)", ylim=(0, 1.02))
    axes[1].axhline(1.0, color="0.6", lw=0.8, ls="--")
    axes[1].set(xlabel="guidance scale w", ylabel="within-class distance / data's")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    pictures.append(save_figure(fig, args.out / "guidance_tradeoff.png"))
    return pictures


def main(argv=None) -> dict:
    return run_on_threads(run, parse_args(argv))


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    train_split, test_split = load_digits_split(seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.eval_only:
        unet, log = DigitsUNet.from_pretrained(args.out / "unet"), {}
        classifier = NoisyClassifier.from_pretrained(args.out / "classifier")
    else:
        unet, classifier, log = train(args, train_split)
    unet.eval()
    classifier.eval()
    metrics = {"train_images": len(train_split), "test_images": len(test_split), **log,
               **evaluate(args, unet, classifier, train_split, test_split)}
    write_json_atomic(args.out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
