"""Classifier guidance of the text model: a classifier on noisy response embeddings steers the rollout."""

import json
import random

import pytest

from diffusion_lm.text.classifier import ResponseClassifier
from diffusion_lm.text.generation_config import GenerationConfig
from diffusion_lm.text.pipeline import DiffusionLMPipeline
from training.train_classifier import main as train_classifier_main

from .text_helpers import WORDS, tiny_model

PROMPTS = ["w1 w2 w3", "w4 w5", "w6 w7 w8", "w9 w10", "w11 w12 w13", "w14"] * 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model saved as a pipeline, and a classifier trained by the CLI on "does the response start with w5"."""
    folder = tmp_path_factory.mktemp("guidance")
    # untrained: its length head may pick n = 0
    # temperature 1.0 and the joint denoiser, the settings the thresholds below were set at (the default is 0.5 since
    # issue 23: the sharper estimates steer less, 0 -> 37.5% starting with w5 at scale 30 instead of >= 40%; this random
    # encoder-decoder (E2, the default since) starts none of these responses with w5, guided at 30 or not: its
    # estimates of the first slot barely follow the state the classifier's gradient moves)
    pipe = DiffusionLMPipeline(*tiny_model(seed=1, self_conditioning=True, length_prediction=False,
                                           prompt_attention="joint"), GenerationConfig(temperature=1.0))
    pipe.save_pretrained(folder / "model")
    rng = random.Random(0)
    with open(folder / "labelled.jsonl", "w") as f:
        for _ in range(600):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
            f.write(json.dumps({"prompt": " ".join(rng.choice(WORDS) for _ in range(3)), "response": " ".join(words),
                                "starts": "w5" if words[0] == "w5" else "other"}) + "\n")
            if rng.random() < 0.5:  # balance the classes
                words[0] = "w5"
                f.write(json.dumps({"prompt": "w1", "response": " ".join(words), "starts": "w5"}) + "\n")
    code = train_classifier_main(["--model", str(folder / "model"), "--data", str(folder / "labelled.jsonl"),
                                  "--label_field", "starts", "--out", str(folder / "clf"), "--steps", "300",
                                  "--hidden-size", "32", "--num-heads", "2", "--threads", "1"])
    assert code == 0
    return DiffusionLMPipeline.from_pretrained(folder / "model"), ResponseClassifier.from_pretrained(folder / "clf")


def test_scale_zero_is_the_unguided_model_bit_for_bit(trained):
    pipe, clf = trained
    assert pipe(PROMPTS, num_steps=5) == pipe(PROMPTS, num_steps=5, classifier=clf, classes="w5", classifier_scale=0.0)


def test_guidance_steers_the_first_word(trained):
    pipe, clf = trained
    starts = lambda texts: sum(t.split()[:1] == ["w5"] for t in texts) / len(texts)
    plain = starts(pipe(PROMPTS, num_steps=10, seed=1))
    guided = starts(pipe(PROMPTS, num_steps=10, seed=1, classifier=clf, classes="w5", classifier_scale=30.0))
    assert guided >= plain + 0.4, (plain, guided)


def test_guidance_input_errors(trained, tmp_path):
    pipe, clf = trained
    with pytest.raises(ValueError,
                       match=r"does not know the class\(es\) \['w6'\]; it was trained on \['other', 'w5'\]"):
        pipe(PROMPTS[:1], classifier=clf, classes="w6", classifier_scale=1.0)
    with pytest.raises(ValueError, match="needs classes"):
        pipe(PROMPTS[:1], classifier=clf, classifier_scale=1.0)
    other = DiffusionLMPipeline(*tiny_model(seed=2))
    with pytest.raises(ValueError, match="trained with another diffusion model"):
        other(PROMPTS[:1], classifier=clf, classes="w5", classifier_scale=1.0)
    assert train_classifier_main(["--model", str(tmp_path / "missing"), "--data", str(tmp_path / "x.jsonl"),
                                  "--out", str(tmp_path / "c")]) != 0


def test_a_prompt_blind_classifier_ignores_the_prompt_and_round_trips(tmp_path):
    import torch

    from diffusion_lm.text.classifier import ResponseClassifierConfig

    clf = ResponseClassifier(ResponseClassifierConfig(class_names=["a", "b"], embedding_dim=16, max_prompt_length=8,
                                                      max_response_length=8, hidden_size=32, num_heads=2,
                                                      use_prompt=False))
    z, t = torch.randn(3, 8, 16), torch.rand(3)
    mask = torch.ones(3, 8, dtype=torch.bool)
    out = clf(torch.randn(3, 8, 16), mask, z, t)
    torch.testing.assert_close(out, clf(torch.randn(3, 8, 16), mask, z, t))
    clf.save_pretrained(tmp_path / "blind")
    assert ResponseClassifier.from_pretrained(tmp_path / "blind").config.use_prompt is False
    seeing = ResponseClassifier(ResponseClassifierConfig(class_names=["a", "b"], embedding_dim=16, max_prompt_length=8,
                                                         max_response_length=8, hidden_size=32, num_heads=2))
    assert not torch.allclose(seeing(torch.randn(3, 8, 16), mask, z, t), seeing(torch.randn(3, 8, 16), mask, z, t))
