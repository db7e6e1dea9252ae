"""Fingerprints of what the package computes, on fixed seeds: a restructuring must leave every one unchanged.

    python bench/fingerprints.py --out runs/fingerprints/before.json
    python bench/fingerprints.py --out runs/fingerprints/after.json --compare runs/fingerprints/before.json

Each entry is the SHA-256 of the raw bytes of a result (tensors) or of its text (responses):
  - the core samplers on an exact Gaussian mixture, every method; guidance; the core losses and likelihood;
  - the text model's losses (several configurations), its likelihood bound, length scores and diagnostics;
  - the weights of a small model after a short training run (``training.train`` on configs/tiny.yaml);
  - that model's pipeline outputs: the default call, every sampler, templates, classifier guidance, lengths,
    classifier-free guidance, several samples with MBR, and a distillation loss.
One thread, CPU; the comparison is byte for byte on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import torch


def digest(value) -> str:
    """SHA-256 of a tensor's bytes (with its dtype and shape), of text, or of a nested list/tuple/dict of them."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:20]


def _feed(h, value) -> None:
    if isinstance(value, torch.Tensor):
        h.update(f"{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for k in sorted(value):
            h.update(str(k).encode())
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        for v in value:
            _feed(h, v)
    elif value is None:
        h.update(b"None")
    else:
        h.update(repr(value).encode())


def core_prints() -> dict[str, str]:
    from diffusion_lm.core import (
        METHODS,
        VPSchedule,
        classifier_free,
        dsm_loss,
        flow_matching_loss,
        guidance_weight,
        log_likelihood,
        sample,
    )
    from diffusion_lm.core.schedules import FlowSchedule
    from diffusion_lm.toy import GaussianMixture

    out = {}
    means = torch.tensor([[1.0, -0.5, 0.3], [-1.2, 0.8, 0.0], [0.2, 1.5, -1.0]], dtype=torch.float64)
    stds = torch.tensor([[0.3, 0.5, 0.2], [0.4, 0.2, 0.6], [0.25, 0.35, 0.3]], dtype=torch.float64)
    mix = GaussianMixture(means, stds, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    schedule = VPSchedule.sqrt()
    x1 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for method in METHODS:
        steps = 8 if method in ("langevin", "pc", "rk45") else 12
        kwargs = {"eta": 0.5} if method == "ddim" else {}
        x = sample(mix.model(schedule, "x0"), x1.clone(), schedule, method=method, steps=steps, prediction="x0",
                   generator=torch.Generator().manual_seed(1), **kwargs)
        out[f"core.sample.{method}"] = digest(x)
    cond, uncond = mix.model(schedule, "eps"), mix.component(0).model(schedule, "eps")
    x = sample(classifier_free(cond, uncond, guidance_weight(2.0)), x1.clone(), schedule, method="ddim", steps=10)
    out["core.guidance.classifier_free"] = digest(x)
    data = mix.sample(128, torch.Generator().manual_seed(2))
    for prediction in ("eps", "x0", "v"):
        for weighting in ("none", "snr", "likelihood"):
            loss = dsm_loss(mix.model(schedule, prediction), data, schedule, prediction=prediction, weighting=weighting,
                            generator=torch.Generator().manual_seed(3))
            out[f"core.dsm_loss.{prediction}.{weighting}"] = digest(loss)
    flow = FlowSchedule()
    out["core.flow_matching_loss"] = digest(flow_matching_loss(mix.model(flow, "velocity"), data, flow,
                                                               generator=torch.Generator().manual_seed(4)))
    out["core.log_likelihood"] = digest(log_likelihood(mix.model(schedule, "eps"), data[:8], schedule))
    return out


# ---------------------------------------------------------------------------------------------- the text model
# The API-specific calls live in these adapters; a restructuring changes only them.


def api() -> dict:
    """The names the fingerprints call, from wherever the package keeps them."""
    from diffusion_lm import (
        DiffusionLMConfig,
        DiffusionLMPipeline,
        Rollout,
        TrainingObjective,
        build_model,
        train_tokenizer,
    )
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.classifier import ResponseClassifier, ResponseClassifierConfig, base_fingerprint
    from diffusion_lm.text.diagnostics import token_accuracy_by_time
    from diffusion_lm.text.distillation import distillation_loss, teacher_trajectories
    from diffusion_lm.text.generation import generate_ids
    from diffusion_lm.text.generation_config import GenerationConfig
    from diffusion_lm.text.likelihood import nll_bound
    from diffusion_lm.text.synthetic import synthetic_pairs

    names = (DiffusionLMConfig, DiffusionLMPipeline, Rollout, build_model, train_tokenizer, encode_pairs,
             ResponseClassifier, ResponseClassifierConfig, base_fingerprint, token_accuracy_by_time, distillation_loss,
             teacher_trajectories, generate_ids, GenerationConfig, nll_bound, synthetic_pairs, TrainingObjective)
    return {getattr(f, "__name__", str(f)): f for f in names}


def tiny_text_model(a, seed: int = 0, **overrides):
    tok = a["train_tokenizer"]([" ".join(f"w{i}" for i in range(20))] * 3, kind="wordlevel", vocab_size=64)
    settings = dict(embedding_dim=16, hidden_size=32, num_heads=4, num_layers=2, max_prompt_length=8,
                    max_response_length=8, **L2_ALONE)
    settings.update(overrides)
    if "hold_length" in a["TrainingObjective"].fields():  # (H1) on by default since; code before it has no such key
        settings["objective"] = {"hold_length": False, **settings.get("objective", {})}
    model, tok = a["build_model"](a["DiffusionLMConfig"](**settings), tok, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model, tok


# The models fingerprinted since 69ddb73 score lengths with L2 alone and place the response after the prompt in a joint
# denoiser; L4, P1, O1 and E2 (on by default since) and the length fit after training are pinned off, so that a commit
# before them and one after compare the same computation (code from before P1 accepts
# response_positions="after_prompt" and drops it).
L2_ALONE = {"length_fertility": False, "response_positions": "after_prompt", "learned_logits": False,
            "prompt_attention": "joint"}
FIT_OFF = ["--optim.length_fit_steps", "0"]


MODEL_VARIANTS = {
    "default": {},
    "no_length": {"length_prediction": False},
    "relative_length": {"length_relative": True},
    "no_self_conditioning": {"self_conditioning": False},
    "cached_prompt": {"prompt_attention": "cached"},
    "encoder_decoder": {"prompt_attention": "encoder_decoder"},
    "no_time_warp": {"time_warping": False},
    "prompt_dropout": {"prompt_dropout": 0.2},
    "learned_positions": {"position_embedding": "learned"},
}


def text_model_prints(a) -> dict[str, str]:
    out = {}
    pairs = a["synthetic_pairs"](64, "reverse", vocab=20, seed=5)
    for name, overrides in MODEL_VARIANTS.items():
        model, tok = tiny_text_model(a, **overrides)
        batch = a["encode_pairs"](tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            res = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(6))
            parts = [res.loss, res.loss_x0, res.loss_round, res.loss_length, res.x0_pred]
            out[f"text.loss.{name}.{mode}"] = digest(parts)
        model.eval()
        bound = a["nll_bound"](model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, num_samples=4,
                               generator=torch.Generator().manual_seed(7))
        out[f"text.nll.{name}"] = digest([bound.nats, bound.stderr, bound.prior, bound.diffusion, bound.reconstruction,
                                          bound.length])
        rows = a["token_accuracy_by_time"](model, batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                           [0.1, 0.5, 0.9])
        out[f"text.diagnostics.{name}"] = digest([(r.accuracy, r.content_accuracy, r.x0_rms) for r in rows])
        ids = generate_adapter(a, model, batch, seed=8)
        out[f"text.generate.{name}"] = digest(ids)
        if model.config.length_prediction:
            lengths = (batch.response_ids != model.config.pad_token_id).sum(-1)
            score = length_score_adapter(a, model, batch, batch.response_ids, lengths, seed=9)
            out[f"text.length_score.{name}"] = digest(score)
    return out


# The generation defaults of the code these fingerprints were first taken with (temperature 0.5 and offset 3 since
# issue 23), pinned wherever a call would take the default, so that a default changed on purpose changes no
# fingerprint.
PINNED = {"temperature": 1.0, "log_snr_offset": 2.0}


def generate_adapter(a, model, batch, seed: int, **settings):
    return a["generate_ids"](model, batch, a["GenerationConfig"](**{**PINNED, **settings}),
                             generator=torch.Generator().manual_seed(seed))


def length_score_adapter(a, model, batch, ids, lengths, seed: int):
    rollout = a["Rollout"](model, a["GenerationConfig"](**PINNED), batch.prompt_ids, batch.prompt_mask, lengths=lengths)
    with torch.no_grad():
        return rollout.length_score(ids, torch.Generator().manual_seed(seed))


def trained_prints(a, root: Path) -> dict[str, str]:
    """A short ``training.train`` run on configs/tiny.yaml, its weights, and its pipeline's outputs."""
    from accelerate.state import AcceleratorState

    from diffusion_lm.training.build_data import ensure
    from diffusion_lm.training.config import load_config
    from diffusion_lm.training.train import train

    out = {}
    ensure("synthetic")
    args = ["--output_dir", str(root / "tiny"), "--optim.max_steps", "120", "--eval.every", "60", "--checkpoint.every",
            "60", "--trackers", "[]", "--num_threads", "1", "--generation.temperature", "1.0",
            "--generation.log_snr_offset", "2.0"]
    from diffusion_lm.training.config import OptimConfig

    if hasattr(OptimConfig(), "length_fit_steps"):  # code from before the option has no fit to turn off
        args += FIT_OFF + ["--model.length_fertility", "false"]
    if hasattr(a["DiffusionLMConfig"](), "response_positions"):  # code from before P1 and H1 has no such keys
        args += ["--model.response_positions", "after_prompt", "--objective.hold_length", "false"]
    if hasattr(a["DiffusionLMConfig"](), "learned_logits"):  # code from before O1 has no such key
        args += ["--model.learned_logits", "false"]
    args += ["--model.prompt_attention", "joint"]  # (E2) the default since
    config = load_config(Path("configs/tiny.yaml"), args)
    result = train(config)
    AcceleratorState._reset_state(reset_partial_state=True)
    out["train.result"] = digest({k: v for k, v in result.items() if k in ("loss", "val_loss", "bleu", "exact_match")})
    pipe = a["DiffusionLMPipeline"].from_pretrained(root / "tiny" / "model")
    out["train.weights"] = digest({k: v for k, v in pipe.model.state_dict().items()})
    out.update(pipeline_prints(a, pipe))
    model, tok = tiny_text_model(a)  # untrained (perturbed) weights: outputs that differ between settings
    untrained = a["DiffusionLMPipeline"](model.eval(), tok, a["GenerationConfig"](**PINNED))
    out.update(pipeline_prints(a, untrained, prefix="untrained"))
    return out


PROMPTS = ["w1 w2 w3", "w4 w5 w6 w7", "w8 w9", "w10 w11 w12 w13 w14", "w3 w3 w1", "w15 w16 w17 w18 w19 w0"]


def pipeline_prints(a, pipe, prefix: str = "pipe") -> dict[str, str]:
    """Every call's texts and, through the callback, every step's state and estimate."""
    from diffusion_lm.text.generation_config import text_samplers

    out = {}

    def call(**kw):
        states = []
        texts = pipe(PROMPTS, callback=lambda info: states.append((info["i"], info["t"], info["x"], info["x0"])), **kw)
        return texts, states
    out["pipe.default"] = digest(call())
    for method in text_samplers():  # the ones a text model accepts (refused ones error by design since issue 26)
        steps = 6 if method in ("langevin", "pc") else 10
        eta = 0.0 if method != "ddim" else 1.0
        out[f"pipe.method.{method}"] = digest(call(method=method, num_steps=steps, eta=eta))
    out["pipe.ddim_eta0"] = digest(call(method="ddim", eta=0.0))
    for n in (1, 2, 20):
        out[f"pipe.steps.{n}"] = digest(call(num_steps=n))
    out["pipe.dpm_order3"] = digest(call(method="dpm_solver++", eta=0.0, order=3))
    out["pipe.grid_logsnr"] = digest(call(grid="logsnr"))
    variants = {"offset0": {"log_snr_offset": 0.0}, "temperature": {"temperature": 0.5}, "clamp": {"clamp": True},
                "repeats": {"block_adjacent_repeats": True}, "no_repeats": {"block_adjacent_repeats": False}}
    for name, kw in variants.items():
        out[f"pipe.{name}"] = digest(call(**kw))
    for k in (1, 2, 5):
        out[f"pipe.length_candidates.{k}"] = digest(call(length_candidates=k))
    out["pipe.length.5"] = digest(call(length=5))
    out["pipe.length.each"] = digest(call(length=[1, 2, 3, 4, 5, 6]))
    out["pipe.template"] = digest(call(response_template="w1 [FILL:2] w3"))
    out["pipe.template.each"] = digest(call(response_template=[f"[FILL] w{i} [FILL]" for i in range(6)]))
    out["pipe.samples"] = digest(call(num_samples=3, return_all=True))
    out["pipe.mbr"] = digest(call(num_samples=3, mbr=True))
    out["pipe.seed"] = digest(call(seed=3, batch_size=4))
    steps = []
    pipe(PROMPTS, batch_size=4, callback=lambda info: steps.append((info["i"], info["start"], info["x"])))
    out["pipe.callback_start"] = digest(steps)
    clf = classifier(a, pipe.model)
    out["pipe.classifier"] = digest(call(classifier=clf, classes="b", classifier_scale=4.0))
    out["pipe.classifier.each"] = digest(call(classifier=clf, classes=["a", "b"] * 3, classifier_scale=2.0))
    objective = pipe.model.config.objective
    pipe.model.config.objective = {**objective, "prompt_dropout": 0.1}  # the check reads it; the weights stay
    out["pipe.cfg"] = digest(call(guidance_scale=2.0))
    pipe.model.config.objective = objective
    out["distill"] = distill_print(a, pipe)
    return {k.replace("pipe.", prefix + ".", 1): v for k, v in out.items()}


def classifier(a, model):
    torch.manual_seed(11)
    cfg = model.config
    clf = a["ResponseClassifier"](a["ResponseClassifierConfig"](
        class_names=["a", "b"], embedding_dim=cfg.embedding_dim, max_prompt_length=cfg.max_prompt_length,
        max_response_length=cfg.max_response_length, hidden_size=32, num_layers=1, num_heads=4,
        base_fingerprint=a["base_fingerprint"](model), use_prompt=False))
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(12)))
    return clf.eval()


def distill_print(a, pipe) -> str:
    from diffusion_lm.text.batching import encode_prompts

    batch = encode_prompts(pipe.tokenizer, PROMPTS, pipe.model.config.max_prompt_length)
    settings = pipe.generation_config.updated(length_candidates=1)
    traj = a["teacher_trajectories"](pipe.model, batch, settings, 2, 4,
                                     torch.Generator().manual_seed(13), repeat_block=pipe.repeat_block)
    loss = a["distillation_loss"](pipe.model, traj, settings, pipe.repeat_block)
    return digest([traj.states, traj.times, traj.target_ids, loss.detach()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier run's JSON: report every difference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    a = api()
    prints = core_prints()
    prints.update(text_model_prints(a))
    with tempfile.TemporaryDirectory() as tmp:
        prints.update(trained_prints(a, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    print(f"{len(prints)} fingerprints -> {args.out}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = sorted(k for k in before if prints.get(k) != before[k])
        added = sorted(set(prints) - set(before))
        print(f"{len(before) - len(changed)} of {len(before)} unchanged; changed: {changed or 'none'}; new: "
              f"{added or 'none'}")


if __name__ == "__main__":
    main()
