"""Time warping (W1): the isotonic fit, the density it draws t from, and the sampling grid uniform in it."""

import torch

from diffusion_lm.text.time_warp import WARP_MIN_HITS, WARP_UNIFORM, TimeWarp, isotonic_increasing


def test_isotonic_fit_matches_scikit_learn():
    from sklearn.isotonic import IsotonicRegression

    gen = torch.Generator().manual_seed(0)
    y = torch.linspace(0, 3, 200, dtype=torch.float64) + torch.randn(200, generator=gen, dtype=torch.float64)
    ours = isotonic_increasing(y)
    theirs = IsotonicRegression().fit_transform(range(200), y.numpy())
    torch.testing.assert_close(ours, torch.from_numpy(theirs), rtol=0, atol=1e-12)


def _trained_warp(loss_of_t, t_min=0.0, batches=400, batch=256):
    warp = TimeWarp(t_min, bins=50)
    gen = torch.Generator().manual_seed(1)
    for _ in range(batches):
        t = t_min + (1 - t_min) * torch.rand(batch, generator=gen, dtype=torch.float64)
        warp.update(t, loss_of_t(t))
    return warp


def test_density_is_uniform_until_every_bin_is_seen():
    warp = TimeWarp(0.0, bins=10)
    warp.update(torch.tensor([0.05, 0.15]), torch.tensor([1.0, 2.0]))
    assert not warp.ready
    torch.testing.assert_close(warp.bin_mass(), torch.full((10,), 0.1, dtype=torch.float64))


def test_draws_follow_the_slope_of_the_loss():
    """A loss that rises linearly on [0.6, 0.8] and is flat elsewhere: (W1) puts (1 - u) of the mass on that
    band (plus its uniform share), and draws of t land there at that rate. The slope is resolved to one bin
    (0.02): the band is widened by a bin on each side."""
    step = lambda t: ((t - 0.6) / 0.2).clamp(0, 1)
    warp = _trained_warp(step)
    assert warp.ready and warp.hits.min() >= WARP_MIN_HITS
    expected = (1 - WARP_UNIFORM) + WARP_UNIFORM * 0.24
    t = warp.sample(200_000, torch.Generator().manual_seed(2))
    share = float(((t > 0.58) & (t < 0.82)).double().mean())
    assert abs(share - expected) < 0.01, (share, expected)
    # flat pieces keep exactly their uniform share per unit of t
    low = float((t < 0.5).double().mean())
    assert abs(low - WARP_UNIFORM * 0.5) < 0.01, low


def test_sampling_grid_is_uniform_in_warped_time_and_runs_from_start_to_end():
    warp = _trained_warp(lambda t: t**3, t_min=1e-3)
    ts = warp.grid(8, 1.0, 0.0)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and torch.all(ts[1:] < ts[:-1])
    f = warp.warped_of_t(ts[:-1].clamp(min=1e-3))
    gaps = f[:-1] - f[1:]
    torch.testing.assert_close(gaps, torch.full_like(gaps, float(gaps.mean())), rtol=1e-9, atol=1e-12)


def test_inverse_of_the_warp():
    warp = _trained_warp(lambda t: torch.sigmoid(20 * (t - 0.7)), t_min=1e-3)
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(warp.warped_of_t(warp.t_of_warped(u)), u, rtol=0, atol=1e-9)


def test_model_trains_with_the_warp_and_saves_it(tmp_path):
    from diffusion_lm import DiffusionLMModel

    from .text_helpers import tiny_model

    model, tok = tiny_model(time_warping=True)
    assert model.time_warp is not None
    ids = torch.tensor(tok(["w1 w2 w3"] * 4, add_special_tokens=False)["input_ids"])
    resp = torch.zeros(4, 8, dtype=torch.long)
    resp[:, :3] = ids
    model.train()
    out = model(ids, torch.ones_like(ids, dtype=torch.bool), resp, generator=torch.Generator().manual_seed(0))
    assert model.time_warp.hits.sum() == 4  # every training example folded into the statistics
    model.save_pretrained(tmp_path)
    back = DiffusionLMModel.from_pretrained(tmp_path)
    torch.testing.assert_close(back.time_warp.loss, model.time_warp.loss)
    assert torch.isfinite(out.loss)
