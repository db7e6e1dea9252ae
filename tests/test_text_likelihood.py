"""The likelihood bound (N1): exact on cases whose answer is known in closed form."""

import math

import pytest
import torch

from diffusion_lm.core import VPSchedule
from diffusion_lm.text.likelihood import embedding_nll_bound, nll_bound


def _bayes_denoiser(table: torch.Tensor, schedule):
    """E[x0 | z_t] for slots drawn uniformly and independently from the rows of ``table``."""
    def x0_fn(z, t):
        alpha, sigma = schedule.alpha(t.double())[:, None, None, None], schedule.sigma(t.double())[:, None, None]
        logits = -(z.double()[..., None, :] - alpha * table).pow(2).sum(-1) / (2 * sigma**2)  # (B, N, V)
        return (logits.softmax(-1) @ table).float()
    return x0_fn


def test_bound_with_the_exact_denoiser_is_the_entropy_of_uniform_tokens():
    """Tokens uniform over 3 rows, 2 slots, the Bayes denoiser: the model is the data distribution, so the
    bound is tight and -log p(y) = 2 log 3 for every response, within Monte Carlo error."""
    schedule = VPSchedule.linear()
    table = torch.tensor([[1.2, 0.0], [-0.6, 1.0], [-0.6, -1.0]], dtype=torch.float64)
    ids = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # all 9 responses
    bound = embedding_nll_bound(_bayes_denoiser(table, schedule), ids, table, schedule, t_min=1e-3, num_samples=3000,
                                generator=torch.Generator().manual_seed(0))
    mean, err = bound.nats.mean(), bound.stderr.pow(2).mean().sqrt() / 3  # 9 independent estimates
    assert abs(mean - 2 * math.log(3)) < 4 * err + 0.02, (float(mean), float(err))
    assert float(err) < 0.1, "the check needs a precise estimate (about 3% of the answer)"


def test_a_wrong_denoiser_gives_a_looser_bound():
    schedule = VPSchedule.linear()
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    ids = torch.tensor([[0, 1], [1, 1]])
    exact = embedding_nll_bound(_bayes_denoiser(table, schedule), ids, table, schedule, 1e-3, 200,
                                torch.Generator().manual_seed(1))
    blind = embedding_nll_bound(lambda z, t: torch.zeros_like(z), ids, table, schedule, 1e-3, 200,
                                torch.Generator().manual_seed(1))
    assert (blind.nats > exact.nats + 3 * (blind.stderr + exact.stderr)).all()


def test_model_nll_on_a_one_token_vocabulary_is_the_prior_kl():
    """With one table row an interpolated model predicts that row exactly: no diffusion or rounding loss is
    left, and the bound is KL(N(alpha_1 e, sigma_1^2) || N(0, 1)) summed over slots and dimensions."""
    from diffusion_lm import DiffusionLMConfig, DiffusionLMModel

    config = DiffusionLMConfig(vocab_size=1, embedding_dim=4, hidden_size=16, num_layers=1, num_heads=2,
                               max_prompt_length=3, max_response_length=5, pad_token_id=0, self_conditioning=True,
                               length_prediction=False)  # (N1) alone
    row = torch.tensor([[0.5, -1.0, 1.5, 0.2]])
    config.embedding_scale = float(row.pow(2).mean().sqrt())
    model = DiffusionLMModel(config, row).eval()
    ids = torch.zeros(2, 5, dtype=torch.long)
    bound = nll_bound(model, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool), ids,
                      num_samples=8, generator=torch.Generator().manual_seed(0))
    e = (row / config.embedding_scale).double()
    a1, s1 = float(model.schedule.alpha(1.0)), float(model.schedule.sigma(1.0))
    kl = 5 * 0.5 * (a1**2 * e.pow(2) + s1**2 - 1 - math.log(s1**2)).sum()
    torch.testing.assert_close(bound.nats, torch.full((2,), float(kl), dtype=torch.float64), rtol=1e-6, atol=1e-6)
    assert float(bound.stderr.max()) < 1e-6 and bound.tokens.tolist() == [1.0, 1.0]


def test_num_samples_must_allow_an_error_estimate():
    schedule = VPSchedule.linear()
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        embedding_nll_bound(lambda z, t: z, torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 2), schedule, 1e-3, 1)


def test_pipe_score_is_the_bound_of_each_pair_from_text():
    """pipe.score(prompts, responses) tokenises the pairs and returns the bound (N1) per pair: the same numbers as the
    bound of the encoded batch with the same generator, and a clear error for mismatched lists."""
    from diffusion_lm.text.batching import encode_pairs
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    from .text_helpers import tiny_model

    model, tok = tiny_model(seed=2)
    pipe = DiffusionLMPipeline(model, tok)
    prompts, responses = ["w1 w2 w3", "w4 w5"], ["w3 w2 w1", "w5 w4"]
    bound = pipe.score(prompts, responses, num_samples=4, seed=3)
    batch = encode_pairs(tok, prompts, responses, 8, 8)
    direct = nll_bound(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, 4,
                       torch.Generator().manual_seed(3))
    torch.testing.assert_close(bound.nats, direct.nats)
    assert bound.nats.shape == (2,) and bound.nats_per_token == direct.nats_per_token
    in_two = pipe.score(prompts, responses, num_samples=4, seed=3, batch_size=1)
    assert in_two.nats.shape == (2,) and torch.isfinite(in_two.nats).all()
    with pytest.raises(ValueError, match="one response per prompt: 2 prompts, 1 responses"):
        pipe.score(prompts, ["w1"])
    with pytest.raises(ValueError, match="response 0 has 9 tokens; the model has 8 response slots"):
        pipe.score(["w1"], ["w1 " * 9])
