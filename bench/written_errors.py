"""Where a model loses on a written task (g2p, inflect): length, position, sampling and the length model.

For a trained ours model, the task's test file (the first ``--test-size`` pairs that fit its slots, as in
``bench/text_vs_ar.py``) and optionally the peers' outputs on the same pairs (``--peers``: text_vs_ar's
results.json, or a JSON object of name -> texts), measures for every model:
  - exact match split by whether the output has the reference's length in tokens;
  - the share wrong at each response slot j, aligned by position (a missing token is wrong), over all items and
    over those of the right length;
and for ours:
  - oracle exact match: the share of items where any of k samples (``num_samples=k, return_all=True``; k = 4 and
    12 by default, each k from a seed of its own) is exact, with the default length choice, and over every
    length candidate too (k samples at each of the length model's top ``length_candidates`` lengths);
  - the share of items whose true length is the length model's top-1, or among its top-3 (``model.length_logits``).
Ours generates with its saved generation settings (text_vs_ar's ddim eta=1 10-step row). Writes
``<out>/written_errors.json`` and ``<out>/written_errors.md``.

    python bench/written_errors.py --model runs/h2h_g2p/ours/model --test data/generated/g2p/test.jsonl \\
        --peers runs/h2h_g2p/results.json --out runs/h2h_g2p/errors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tasks import test_pairs

ROOT = Path(__file__).resolve().parents[1]


def peer_outputs(path: Path | None, prompts: list[str]) -> dict[str, list[str]]:
    """name -> texts from text_vs_ar's results.json (its peer rows' outputs) or a plain JSON object of texts."""
    if path is None:
        return {}
    data = json.loads(path.read_text())
    if "ar" in data:
        saved = data.get("prompts", [])
        if saved[: len(prompts)] != prompts[: len(saved)]:
            raise SystemExit(f"{path} was scored on other test pairs than these; pass the same --test and --test-size.")
        data = {f"{r.get('model', 'GPT-2')}, {r['budget']}": r["outputs"] for r in data["ar"] if "outputs" in r}
    bad = [name for name, texts in data.items() if len(texts) < len(prompts)]
    if bad:
        raise SystemExit(f"{', '.join(bad)}: fewer outputs than the {len(prompts)} test pairs.")
    return {name: list(texts[: len(prompts)]) for name, texts in data.items()}


def length_split(hyps: list[list[int]], refs: list[list[int]]) -> dict[str, float]:
    """Exact match overall, the share of the right length, and exact match within right / wrong length, in percent."""
    right = [len(h) == len(r) for h, r in zip(hyps, refs)]
    exact = [h == r for h, r in zip(hyps, refs)]
    share = lambda xs, mask: 100.0 * sum(x for x, m in zip(xs, mask) if m) / max(sum(mask), 1)
    return {"exact_match": 100.0 * sum(exact) / len(refs), "right_length": 100.0 * sum(right) / len(refs),
            "exact_given_right_length": share(exact, right),
            "exact_given_wrong_length": share(exact, [not r for r in right]), "items": len(refs)}


def _wrong_at(pairs: list[tuple[list[int], list[int]]], j: int) -> float | None:
    """Percent of (hypothesis, reference) pairs whose token j differs (or is missing from the hypothesis)."""
    return 100.0 * sum(len(h) <= j or h[j] != r[j] for h, r in pairs) / len(pairs) if pairs else None


def position_errors(hyps: list[list[int]], refs: list[list[int]]) -> list[dict]:
    """Per slot j of the reference: how many items have one, and the share wrong there (over all; right length)."""
    rows = []
    for j in range(max(map(len, refs))):
        at = [(h, r) for h, r in zip(hyps, refs) if len(r) > j]
        same = [(h, r) for h, r in at if len(h) == len(r)]
        rows.append({"slot": j + 1, "items": len(at), "wrong": _wrong_at(at, j), "items_right_length": len(same),
                     "wrong_right_length": _wrong_at(same, j)})
    return rows


def oracle(groups: list[list[str]], refs: list[str]) -> float:
    """Percent of items where any text of its group is exact."""
    return 100.0 * sum(any(t.strip() == r.strip() for t in g) for g, r in zip(groups, refs)) / len(refs)


@torch.no_grad()
def length_model(pipe, prompts: list[str], ref_ids: list[list[int]], top: int) -> tuple[torch.Tensor, dict[str, float]]:
    """The length model's top ``top`` lengths per prompt (B, top), and how often its top-1 / top-3 hold the truth."""
    from diffusion_lm.text.batching import encode_prompts

    batch = encode_prompts(pipe.tokenizer, prompts, pipe.model.config.max_prompt_length).to(pipe.device)
    ranked = pipe.model.length_logits(batch.prompt_ids, batch.prompt_mask).argsort(-1, descending=True).cpu()
    truth = torch.tensor([len(r) for r in ref_ids])[:, None]
    hit = lambda k: 100.0 * float((ranked[:, :k] == truth).any(-1).float().mean())
    return ranked[:, :top], {"top1": hit(1), "top3": hit(3),
                             "mean_abs_error_top1": float((ranked[:, :1] - truth).abs().float().mean())}


def ours_oracles(pipe, prompts: list[str], refs: list[str], default: list[str], candidates: torch.Tensor,
                 samples: list[int]) -> dict:
    """Oracle exact match among k samples per prompt: the default length choice, and every length candidate too
    (``default``, the one-sample outputs, joins the single-sample group)."""
    out = {"length_candidates": candidates.shape[1]}
    at_length = [pipe(prompts, length=candidates[:, c].tolist(), batch_size=100, seed=0)
                 for c in range(candidates.shape[1])]
    out["oracle_1_sample_all_lengths"] = oracle([list(g) for g in zip(default, *at_length)], refs)
    for i, k in enumerate(samples, 1):
        seed = 1000 * i
        chosen = pipe(prompts, num_samples=k, return_all=True, batch_size=100, seed=seed)
        out[f"oracle_{k}"] = oracle(chosen, refs)
        spread = [pipe(prompts, length=candidates[:, c].tolist(), num_samples=k, return_all=True, batch_size=100,
                       seed=seed + c)
                  for c in range(candidates.shape[1])]
        out[f"oracle_{k}_all_lengths"] = oracle([[t for g in gs for t in g] for gs in zip(chosen, *spread)], refs)
        print(f"oracle over {k} samples: {out[f'oracle_{k}']:.1f}, with every length candidate "
              f"{out[f'oracle_{k}_all_lengths']:.1f}", flush=True)
    return out


def markdown(result: dict) -> str:
    """Short tables of the diagnostics."""
    models = result["models"]
    lines = [f"## Where the models lose ({result['items']} test pairs of {result['test']})", "",
             "| model | exact % | right length % | exact if right length % | exact if wrong length % |",
             "|---|---|---|---|---|"]
    for name, m in models.items():
        s = m["length_split"]
        lines.append(f"| {name} | {s['exact_match']:.1f} | {s['right_length']:.1f} | "
                     f"{s['exact_given_right_length']:.1f} | "
                     f"{s['exact_given_wrong_length']:.1f} |")
    slots = [p["slot"] for p in next(iter(models.values()))["positions"] if p["items"] >= 10]
    lines += ["", "Share wrong at response slot j, aligned by position (all items / right length only), slots with >= "
                  "10 items:",
              "", "| model | " + " | ".join(map(str, slots)) + " |", "|---|" + "---|" * len(slots)]
    cell = lambda v: "-" if v is None else f"{v:.0f}"
    for name, m in models.items():
        by = {p["slot"]: p for p in m["positions"]}
        lines.append(f"| {name} | " + " | ".join(f"{cell(by[j]['wrong'])} / {cell(by[j]['wrong_right_length'])}"
                                                 for j in slots) + " |")
    o, n = result["oracle"], result["length_model"]
    lines += ["", f"Ours: oracle exact match (any sample exact), {o['length_candidates']} length candidates:", "",
              "| samples | default length choice % | every length candidate % |", "|---|---|---|",
              f"| 1 | {models['ours']['length_split']['exact_match']:.1f} | {o['oracle_1_sample_all_lengths']:.1f} |"]
    lines += [f"| {k} | {o[f'oracle_{k}']:.1f} | {o[f'oracle_{k}_all_lengths']:.1f} |" for k in result["samples"]]
    lines += ["", (f"Length model: true length is its top-1 for {n['top1']:.1f}% of the items, in its top-3 for "
                   f"{n['top3']:.1f}% (mean |top-1 - true| = {n['mean_abs_error_top1']:.2f} tokens).")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a trained ours model folder")
    parser.add_argument("--test", type=Path, required=True, help="the task's test JSONL")
    parser.add_argument("--peers", type=Path, default=None, help="text_vs_ar's results.json or a JSON object name -> "
                                                                 "texts")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--samples", type=int, nargs="+", default=[4, 12])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    if pipe.model.length_predictor is None:
        raise SystemExit(f"{args.model} does not predict lengths (length_prediction=False); this script reads its "
                         "length model.")
    m = pipe.model.config
    test = test_pairs(args.test, pipe.tokenizer, m.max_prompt_length, m.max_response_length, args.test_size)
    prompts, refs = [r["prompt"] for r in test], [r["response"] for r in test]
    ids = lambda texts: pipe.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ref_ids = ids(refs)
    outputs = {"ours": pipe(prompts, batch_size=100, seed=0), **peer_outputs(args.peers, prompts)}
    models = {name: {"length_split": length_split(ids(texts), ref_ids),
                     "positions": position_errors(ids(texts), ref_ids)}
              for name, texts in outputs.items()}
    candidates, lengths = length_model(pipe, prompts, ref_ids, max(1, pipe.generation_config.length_candidates))
    result = {"model": str(args.model), "test": str(args.test), "items": len(test), "samples": args.samples,
              "generation_config": pipe.generation_config.to_dict(), "models": models, "length_model": lengths,
              "oracle": ours_oracles(pipe, prompts, refs, outputs["ours"], candidates, args.samples),
              "ours_outputs": outputs["ours"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "written_errors.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (args.out / "written_errors.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
