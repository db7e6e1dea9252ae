"""Classifier guidance on KJV -> WEB: control success against scale, next to the quality cost.

Two controls, each with labels derived by a rule from the training pairs and a classifier trained by
``training.train_classifier`` on the model's noisy response embeddings:
  - length: "short" (1-12 words), "medium" (13-24), "long" (>= 25); each test prompt asks for the class
    its reference is NOT in (the shortest one it is furthest from), success = the output's word count lands in it;
  - content: "yahweh" / "other" (does the response contain "Yahweh"); test prompts whose reference lacks it ask for
    "yahweh", success = the output contains it. The prompt predicts this label (KJV's "LORD" becomes "Yahweh"), so a
    classifier that reads the prompt is sure from it alone and gives guidance no gradient: this one is prompt-blind,
    p(c | z_t, t) (``train_classifier --no-prompt``).
For each scale: success rate, BLEU and chrF against the references. Writes results.json and guidance.png.

    python bench/guidance_text.py --model runs/bench_bible/ours/model --out runs/guidance_bible
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tasks import task_files, test_pairs

ROOT = Path(__file__).resolve().parents[1]


SCALES = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]


def length_class(text: str) -> str:
    """short 1-12 words, medium 13-24, long 25+; an empty output is in no class (it never counts as short)."""
    n = len(text.split())
    return "empty" if n == 0 else "short" if n <= 12 else "medium" if n <= 24 else "long"


def content_class(text: str) -> str:
    return "yahweh" if "yahweh" in text.lower() else "other"


CONTROLS = {  # name: (rule, the class each test prompt asks for, classifier options)
    "length": (length_class, lambda ref: {"short": "long", "medium": "short", "long": "short"}[length_class(ref)],
               ["--no-prompt"]),  # blind to the prompt: one that reads it gives guidance little gradient (issue 26)
    "content": (content_class, lambda ref: "yahweh", ["--no-prompt"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "guidance_bible")
    parser.add_argument("--test-size", type=int, default=150)
    parser.add_argument("--classifier-steps", type=int, default=1500)
    parser.add_argument("--scales", type=float, nargs="+", default=SCALES)
    parser.add_argument("--controls", nargs="+", choices=list(CONTROLS), default=list(CONTROLS))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffusion_lm.common.atomic import write_json_atomic, write_jsonl_atomic
    from diffusion_lm.text.classifier import ResponseClassifier
    from diffusion_lm.text.pipeline import DiffusionLMPipeline
    from diffusion_lm.training.evaluation import text_metrics
    from diffusion_lm.training.train_classifier import main as train_classifier

    pipe = DiffusionLMPipeline.from_pretrained(args.model)
    cfg = pipe.model.config
    paths, _, _ = task_files("bible", args.out)
    train_rows = [json.loads(line) for line in open(paths["train"], encoding="utf-8")]
    test = test_pairs(paths["test"], pipe.tokenizer, cfg.max_prompt_length, cfg.max_response_length,
                      10 * args.test_size)
    earlier = args.out / "results.json"
    results = json.loads(earlier.read_text()) if earlier.exists() else {"model": str(args.model), "controls": {}}
    for name in args.controls:
        rule, target_of, options = CONTROLS[name]
        data = args.out / f"{name}.jsonl"
        write_jsonl_atomic(data, [{**r, "label": rule(r["response"])} for r in train_rows])
        folder = args.out / f"classifier_{name}{'_blind' if '--no-prompt' in options else ''}"
        if not (folder / "config.json").exists():
            assert train_classifier(["--model", str(args.model), "--data", str(data), "--out", str(folder),
                                     "--steps", str(args.classifier_steps), "--threads", "1", *options]) == 0
        clf = ResponseClassifier.from_pretrained(folder)
        rows = [r for r in test if rule(r["response"]) != target_of(r["response"])][: args.test_size]
        prompts, refs = [r["prompt"] for r in rows], [r["response"] for r in rows]
        targets = [target_of(r) for r in refs]
        curve = []
        for scale in args.scales:
            texts = pipe(prompts, batch_size=50, seed=0, classifier=clf, classes=targets, classifier_scale=scale)
            success = sum(rule(t) == c for t, c in zip(texts, targets)) / len(texts)
            empty = sum(not t.strip() for t in texts) / len(texts)
            curve.append({"scale": scale, "success": success, "empty": empty, **text_metrics(texts, refs),
                          "examples": texts[:3]})
            print(name, scale,
                  {k: round(v, 3) for k, v in curve[-1].items() if k in ("success", "empty", "bleu", "chrf")},
                  flush=True)
        results["controls"][name] = {"verses": len(rows),
                                     "classifier": json.loads((folder / "training.json").read_text()),
                                     "curve": curve}
    write_json_atomic(args.out / "results.json", results)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, res) in zip(axes, results["controls"].items()):
        scales = [c["scale"] for c in res["curve"]]
        ax.plot(scales, [100 * c["success"] for c in res["curve"]], "o-", label="control success %")
        ax.plot(scales, [c["bleu"] for c in res["curve"]], "s--", label="BLEU vs reference")
        ax.plot(scales, [100 * c.get("empty", 0.0) for c in res["curve"]], ":", color="grey", label="empty outputs %")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("classifier scale w")
        ax.set_title(f"{name} control ({res['verses']} verses)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "guidance.png", dpi=110)


if __name__ == "__main__":
    main()
