"""Position-dependent noise (A1, AR-Diffusion): the slot-time equation, DDIM over per-slot times against the core
sampler, and the text model trained and sampled with each response slot at its own time."""

import pytest
import torch

from diffusion_lm.core import VPSchedule, sample
from diffusion_lm.core.slot_ddim import ddim_per_slot
from diffusion_lm.text.batching import encode_pairs
from diffusion_lm.text.slot_times import slot_fractions, slot_grid, slot_times
from diffusion_lm.toy import GaussianMixture

from .text_helpers import generate, reverse_pairs, tiny_model

SCHEDULE = VPSchedule.linear()


def test_slot_times_follow_the_equation():
    """(A1) t_j(s) = clip((1 + w) s - w (1 - j / n), t_min, 1): all noise at s = 1, all clean at s = 0, earlier slots
    cleaner, each slot reaching t_min at s = w (1 - j / n) / (1 + w), and w = 0 the plain model."""
    lengths = torch.tensor([4, 8])
    fractions = slot_fractions(lengths, 2, 8, "cpu")
    torch.testing.assert_close(fractions[0, :4], torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64))
    w, t_min = 2.0, 1e-3
    assert torch.equal(slot_times(torch.ones(2), fractions, w, t_min), torch.ones(2, 8, dtype=torch.float64))
    assert torch.equal(slot_times(torch.zeros(2), fractions, w, t_min), torch.full((2, 8), t_min, dtype=torch.float64))
    s = torch.tensor([0.6, 0.6])
    t = slot_times(s, fractions, w, t_min)
    assert (t[:, 1:] >= t[:, :-1]).all() and t[1, 0] < t[1, 7]
    torch.testing.assert_close(t[1, 2], torch.tensor(3 * 0.6 - 2 * (1 - 2 / 8), dtype=torch.float64))
    for j in range(4):  # the progress at which slot j of the 4-token response is clean
        at = torch.tensor([w * (1 - j / 4) / (1 + w)] * 2, dtype=torch.float64)
        assert abs(float(slot_times(at, fractions, w, 0.0)[0, j])) < 1e-12
    torch.testing.assert_close(slot_times(s, fractions, 0.0, t_min), torch.full((2, 8), 0.6, dtype=torch.float64))
    grid = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    assert slot_grid(grid, fractions, w, t_min).shape == (3, 2, 8)
    assert slot_fractions(None, 2, 8, "cpu")[0, 4] == 0.5


def _per_slot(model):
    """A model of 2D points called on (B, N, 2) states with times (B, N): every slot an independent draw."""
    def fn(x, t):
        b, n, d = x.shape
        return model(x.reshape(b * n, d), t.reshape(b * n).to(x.dtype)).reshape(b, n, d)
    return fn


def test_ddim_per_slot_steps_each_slot_on_its_own_grid_as_the_core_ddim_does():
    """With an exact mixture denoiser every slot is an independent 2D sample, so stepping slot 0 on one grid and slot 1
    on another must equal the core ``ddim`` run on each slot alone with its grid (eta = 0: the same ODE steps)."""
    mixture = GaussianMixture.ring(8, radius=2.0, std=0.1)
    exact = mixture.model(SCHEDULE, prediction="x0")
    x = torch.randn(64, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid_a = torch.linspace(1.0, 1e-3, 9, dtype=torch.float64)
    grid_b = torch.tensor([1.0, 1.0, 1.0, 0.8, 0.5, 0.3, 0.1, 0.01, 1e-3], dtype=torch.float64)  # waits two steps
    ts = torch.stack([grid_a, grid_b], -1)[:, None].expand(-1, 64, -1)  # (K + 1, B, N)
    out = ddim_per_slot(_per_slot(exact), x, ts, SCHEDULE, eta=0.0)
    alone_a = sample(exact, x[:, 0], SCHEDULE, method="ddim", grid=grid_a, prediction="x0", eta=0.0)
    alone_b = sample(exact, x[:, 1], SCHEDULE, method="ddim", grid=torch.cat([grid_b[2:3], grid_b[3:]]),
                     prediction="x0", eta=0.0)
    torch.testing.assert_close(out[:, 0], alone_a, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out[:, 1], alone_b, rtol=1e-9, atol=1e-9)


def test_ddim_per_slot_with_shared_times_is_the_stochastic_core_ddim():
    mixture = GaussianMixture.ring(8, radius=2.0, std=0.1)
    exact = mixture.model(SCHEDULE, prediction="x0")
    x = torch.randn(32, 3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grid = torch.linspace(1.0, 1e-3, 6, dtype=torch.float64)
    ts = grid[:, None, None].expand(-1, 32, 3)
    out = ddim_per_slot(_per_slot(exact), x, ts, SCHEDULE, eta=1.0, generator=torch.Generator().manual_seed(5))
    ref = sample(lambda y, t: _per_slot(exact)(y, t[:, None].expand(-1, 3)), x, SCHEDULE, method="ddim", grid=grid,
                 prediction="x0", eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="ts must be"):
        ddim_per_slot(_per_slot(exact), x, grid, SCHEDULE)


@pytest.mark.parametrize("attention", ["joint", "cached"])
def test_per_slot_times_that_agree_give_the_one_time_denoiser(attention):
    model, tok = tiny_model(prompt_attention=attention, length_prediction=False)
    pairs = reverse_pairs(5, 0)
    batch = encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
    z, t = torch.randn(5, 8, 16), torch.rand(5)
    cache = model.encode_prompt(batch.prompt_ids, batch.prompt_mask)
    one = model.predict(batch.prompt_ids, batch.prompt_mask, z, t, prompt_cache=cache)[0]
    per_slot = model.predict(batch.prompt_ids, batch.prompt_mask, z, t[:, None].expand(-1, 8), prompt_cache=cache)[0]
    torch.testing.assert_close(per_slot, one, rtol=1e-5, atol=1e-5)
    later = t[:, None].expand(-1, 8).clone()
    later[:, 4:] = 1.0  # the time a slot is told changes what the network writes there
    assert not torch.allclose(model.predict(batch.prompt_ids, batch.prompt_mask, z, later, prompt_cache=cache)[0], one)


def test_training_noises_each_slot_at_its_own_time():
    """Each response slot is noised at t_j(s) of (A1) for the s the step draws, and the denoiser is told t_j."""
    model, tok = tiny_model(position_noise_skew=2.0)
    model.train()
    pairs = reverse_pairs(6, 0)
    batch = encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
    seen = []
    original = model.denoiser.forward
    model.denoiser.forward = lambda *a, **k: seen.append(a[3]) or original(*a, **k)
    out = model(**batch.as_kwargs(), generator=torch.Generator().manual_seed(0))
    lengths = (batch.response_ids != model.config.pad_token_id).sum(-1)
    want = slot_times(out.t, slot_fractions(lengths, 6, 8, "cpu"), 2.0, model.config.training_objective.t_eps)
    assert seen and seen[-1].shape == (6, 8)  # the step's own evaluation: every example
    torch.testing.assert_close(seen[-1].double(), want, rtol=1e-6, atol=1e-6)
    for told in seen[:-1]:  # the self-conditioning estimate, for the examples chosen: their rows of the same times
        rows = iter(want)
        assert told.ndim == 2 and all(any(torch.allclose(row.double(), w, atol=1e-6) for w in rows) for row in told)


def test_a_skewed_model_samples_with_ddim_per_slot_and_refuses_other_samplers():
    model, tok = tiny_model(position_noise_skew=1.0)
    pairs = reverse_pairs(4, 0)
    batch = encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
    told = []
    ids = generate(model, batch, num_steps=4, length_candidates=1, lengths=torch.tensor([3, 5, 8, 2]),
                   callback=lambda info: told.append((info["t"], info["slot_t"])),
                   generator=torch.Generator().manual_seed(0))
    assert ids.shape == (4, 8) and len(told) == 4
    progress, slot_t = told[0]
    fractions = slot_fractions(torch.tensor([3, 5, 8, 2]), 4, 8, "cpu")
    assert isinstance(progress, float) and progress < 1.0
    torch.testing.assert_close(slot_t.cpu(), slot_times(torch.full((4,), progress, dtype=torch.float64), fractions,
                                                        1.0, model.config.training_objective.t_eps))
    assert slot_t[1, 4] > slot_t[1, 0]
    with pytest.raises(ValueError, match="position_noise_skew"):
        generate(model, batch, method="dpm_solver++", length_candidates=1)
    with pytest.raises(ValueError, match="position_noise_skew"):
        tiny_model(position_noise_skew=-1.0)


def test_what_needs_one_time_per_response_refuses_a_skewed_model():
    """The likelihood bound (N1) and step distillation (D1) are defined over one time per response: refused, with the
    reason; distilling the model's own call into one step (D2, all slots at t = 1) stays available."""
    from diffusion_lm.text.distillation import teacher_trajectories
    from diffusion_lm.text.generation_config import GenerationConfig
    from diffusion_lm.text.likelihood import nll_bound

    model, tok = tiny_model(position_noise_skew=1.0)
    pairs = reverse_pairs(3, 0)
    batch = encode_pairs(tok, [p for p, _ in pairs], [r for _, r in pairs], 8, 8)
    with pytest.raises(ValueError, match="position_noise_skew"):
        nll_bound(model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, num_samples=2)
    settings = GenerationConfig(num_steps=2, length_candidates=1)
    with pytest.raises(ValueError, match="D2"):
        teacher_trajectories(model, batch, settings, 1, 2, generator=torch.Generator().manual_seed(0))
    own_call = teacher_trajectories(model, batch, settings, 1, None, generator=torch.Generator().manual_seed(0))
    assert own_call is not None


@pytest.mark.slow
def test_a_skewed_model_learns_to_reverse_where_the_plain_one_has_not_yet():
    """Trained the same 400 steps on reversing word sequences, the A1 model writes the reversal (measured: 60.5% exact
    against 9% without A1; 46% against 3% at one step): a later slot written knowing the earlier ones."""
    from diffusion_lm.text.pipeline import DiffusionLMPipeline

    from .text_helpers import exact_match, train_steps

    scores = {}
    for skew in (0.0, 1.0):
        model, tok = tiny_model(seed=0, position_noise_skew=skew, hidden_size=64, num_layers=3)
        model = train_steps(model, tok, reverse_pairs(4000, 1), 400)
        scores[skew] = exact_match(DiffusionLMPipeline(model, tok), reverse_pairs(200, 99))
    assert scores[1.0] >= 0.4 and scores[1.0] >= scores[0.0] + 0.2, scores
