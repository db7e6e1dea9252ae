"""How a length-conditioned model (L2) should choose among its length candidates: the rules, against the oracle.

The default call rolls out each of the length classifier's k most likely lengths and keeps the one
``Rollout.length_score`` rates highest (log p(n | x_p) plus the denoiser's per-slot log-probabilities at t = 1).
On the written tasks the right answer is among the candidates far more often than it is chosen
(docs/benchmarks.md, "Where ours loses"). For the same rollouts (same seed, the model's saved settings) this
scores all k candidates (the default call's ``length_candidate_ratio`` aside) by each rule and reports exact match
of the rule's pick and the oracle (any candidate exact). The rules, with the network evaluations each adds per
candidate:

  - ``t1`` (the default): the t = 1 score, one pass; ``t1 two passes``: as it was, a second pass self-conditioned;
  - ``prior``: log p(n | x_p) alone (none: the same pick as one candidate);
  - ``bound S``: minus the likelihood bound (N1) of the candidate with S Monte Carlo samples, length term included (S);
  - ``confidence``: the mean log-probability of the final rounding's tokens (no extra evaluation).

    python bench/length_choice.py --model runs/inflect/model --test data/generated/inflect/test.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tasks import test_pairs


def candidate_scores(pipe, prompts: list[str], k: int, samples: list[int], seed: int) -> dict:
    """The k candidates' ids (B, k, N) and each rule's score (B, k) for one batch of prompts."""
    from diffusion_lm.text.batching import encode_prompts
    from diffusion_lm.text.generation import Controls, _sample
    from diffusion_lm.text.likelihood import nll_bound

    model, s = pipe.model, pipe.generation_config.updated(length_candidates=k)
    batch = encode_prompts(pipe.tokenizer, prompts, model.config.max_prompt_length)
    b = len(prompts)
    log_n = model.length_logits(batch.prompt_ids, batch.prompt_mask).float().log_softmax(-1)
    prior, top = log_n.topk(k, -1)  # (B, k) each
    rep = lambda x: x.repeat_interleave(k, 0)  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    controls = Controls(repeat_block=pipe.repeat_block)
    s = s.updated(refine_iterations=1)  # keeps the final rounding's confidence; the ids are the plain rounding's
    ids, rollout = _sample(model, rep(batch.prompt_ids), rep(batch.prompt_mask), s, controls, top.reshape(-1), None,
                           None, generator=gen, callback=None, progress=False)
    state = gen.get_state()  # both t = 1 rules read the same noise
    scores = {"t1": rollout.length_score(ids, gen).view(b, k)}
    gen.set_state(state)
    scores["t1 two passes"] = _two_pass_score(rollout, ids, gen).view(b, k)
    scores["prior"] = prior
    past = rollout.past
    conf = rollout.last_confidence.clamp_min(1e-12).log().masked_fill(past, 0.0)
    scores["confidence"] = (conf.sum(-1) / (~past).sum(-1).clamp_min(1)).view(b, k)
    for n in samples:
        bound = nll_bound(model, rep(batch.prompt_ids), rep(batch.prompt_mask), ids, n,
                          torch.Generator().manual_seed(seed + 1))
        scores[f"bound {n}"] = -bound.nats.float().view(b, k)
    return {"ids": ids.view(b, k, -1), "scores": scores}


def _two_pass_score(rollout, ids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The t = 1 score as it was until 2026-12: ``Rollout.plain``'s two passes (the second fed the first's estimate)."""
    model = rollout.model
    noise = torch.randn((*ids.shape, model.config.embedding_dim), generator=generator).to(ids.device)
    logits = rollout.plain(float(model.schedule.sigma(1.0)) * noise, torch.ones(ids.shape[0], device=ids.device))[1]
    log_p = logits.float().log_softmax(-1).gather(-1, ids[..., None]).squeeze(-1).masked_fill(rollout.past, 0.0)
    log_n = model.length_logits(rollout.prompt_ids, rollout.prompt_mask).float().log_softmax(-1)
    return log_n.gather(-1, rollout.lengths[:, None]).squeeze(-1) + log_p.sum(-1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--test-size", type=int, default=400)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--samples", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    rows = test_pairs(args.test, pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length, args.test_size)
    refs = [r["response"].split() for r in rows]
    results = {}
    with torch.no_grad():
        for k in args.k:
            hits: dict[str, list[bool]] = {}
            for start in range(0, len(rows), args.batch_size):
                chunk = rows[start:start + args.batch_size]
                out = candidate_scores(pipe, [r["prompt"] for r in chunk], k, args.samples, args.seed + start)
                texts = [pipe.decode(row) for row in out["ids"]]  # (b,) lists of k texts
                exact = torch.tensor([[t.split() == refs[start + i] for t in cands] for i, cands in enumerate(texts)])
                hits.setdefault("oracle", []).extend(exact.any(-1).tolist())
                for name, score in out["scores"].items():
                    pick = score.argmax(-1)
                    hits.setdefault(name, []).extend(exact[torch.arange(len(chunk)), pick].tolist())
            results[k] = {name: 100.0 * sum(h) / len(h) for name, h in hits.items()}
            print(f"k = {k}: " + ", ".join(f"{name} {v:.1f}" for name, v in results[k].items()), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"model": str(args.model), "items": len(rows), "exact_match": results},
                                       indent=2))


if __name__ == "__main__":
    main()
