"""A small set of fingerprints held fixed across the restructuring into diffusion_lm/text (values computed with the
code as it stood at 69ddb73, before the move, and again after it): core samplers on an exact mixture, the text
model's losses, and pipeline outputs of a small model for several settings. ``bench/fingerprints.py`` checks 147
more, byte for byte; these are rounded, so that another CPU's last bits do not fail them."""

import pytest
import torch

from diffusion_lm import DiffusionLMPipeline
from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.toy import GaussianMixture

from .text_helpers import reverse_pairs, tiny_model

SAMPLES = {
    "ddim": [1.233427, -0.524388, 0.236848, 0.73807, -0.812202, 0.18293, -1.479517, 0.989065, -0.18669, -1.381306,
             0.840224, -0.378458],
    "dpm_solver++": [1.006293, 0.402432, -0.947693, 1.048082, -0.82109, -0.129641, 0.291167, 1.484764, -1.002448,
                     0.57527, -0.452729, 0.279503],
    "unipc": [0.961292, 0.472657, -1.036752, 1.040686, -0.816559, -0.138149, 0.29198, 1.473865, -0.993394, 0.564962,
              -0.452018, 0.275622],
}
# the model as first fingerprinted: L2 alone (L4 is newer), the response after the prompt, every slot in the losses
# and the table's logits alone, in the joint denoiser (P1, H1, O1 and E2 are newer)
FIRST_TAKEN = {"length_fertility": False, "response_positions": "after_prompt", "learned_logits": False,
               "prompt_attention": "joint", "objective": {"hold_length": False}}
PROMPTS = ["w1 w2 w3", "w4 w5 w6 w7", "w8 w9", "w3 w3 w1"]
TEXTS = [
    ({}, ["", "w3", "", ""]),
    ({"method": "dpm_solver++", "num_steps": 6}, ["", "[UNK]", "", ""]),
    ({"length": [3, 4, 2, 5]}, ["w12 w5 w18", "w12 w5 w9 w6", "[UNK] w11", "w12 w18 w12 w16 w13"]),
    ({"response_template": "w1 [FILL:2] w3"}, ["w1 w5 w18 w3", "w1 w5 w9 w3", "w1 w11 w16 w3", "w1 w18 w12 w3"]),
    ({"block_adjacent_repeats": True, "temperature": 0.5}, ["", "w19", "", ""]),
]


@pytest.mark.parametrize("method", list(SAMPLES))
def test_core_samplers_on_the_exact_mixture(method):
    means = torch.tensor([[1.0, -0.5, 0.3], [-1.2, 0.8, 0.0], [0.2, 1.5, -1.0]], dtype=torch.float64)
    stds = torch.tensor([[0.3, 0.5, 0.2], [0.4, 0.2, 0.6], [0.25, 0.35, 0.3]], dtype=torch.float64)
    mixture = GaussianMixture(means, stds, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    schedule = VPSchedule.sqrt()
    x1 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = sample(mixture.model(schedule, "x0"), x1, schedule, method=method, steps=12, prediction="x0",
               generator=torch.Generator().manual_seed(1), **({"eta": 0.5} if method == "ddim" else {}))
    torch.testing.assert_close(x.flatten(), torch.tensor(SAMPLES[method], dtype=torch.float64), rtol=0, atol=2e-6)


def test_the_text_models_losses():
    model, tok = tiny_model(**FIRST_TAKEN)  # the fingerprinted model
    pairs = reverse_pairs(16, 5)
    batch = encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
    out = model.train()(**batch.as_kwargs(), generator=torch.Generator().manual_seed(6))
    got = [float(v.detach()) for v in (out.loss, out.loss_x0, out.loss_round, out.loss_length)]
    assert got == pytest.approx([8.3122, 0.98827, 3.6921, 3.6319], rel=1e-4)


@pytest.mark.parametrize("settings, texts", TEXTS, ids=["ddim", "dpm_solver++", "length", "template", "repeats"])
def test_pipeline_outputs(settings, texts):
    pipe = DiffusionLMPipeline(*tiny_model(**FIRST_TAKEN))
    # temperature 1.0 and offset 2: the defaults when these were computed (0.5 and 3 since issue 23); the
    # fingerprints hold the code
    assert pipe(PROMPTS, **{"num_steps": 10, "temperature": 1.0, "log_snr_offset": 2.0, **settings}) == texts
