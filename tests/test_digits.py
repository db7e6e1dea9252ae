"""Digits data, models and measurements (fast): exact round trips, shapes, guidance at scale 0, the judge."""

import pytest
import torch

pytest.importorskip("sklearn")

from diffusion_lm.core import sample  # noqa: E402
from diffusion_lm.images.classifier import NoisyClassifier, NoisyClassifierConfig, log_prob_grad  # noqa: E402
from diffusion_lm.images.digits import LEVELS, bin_centres, dequantize, load_digits_split, quantize  # noqa: E402
from diffusion_lm.images.evaluate import Judge, diversity, generate, guided_model, within_class_distance  # noqa: E402
from diffusion_lm.images.plots import tile  # noqa: E402
from diffusion_lm.images.unet import DigitsUNet, DigitsUNetConfig, ResBlock  # noqa: E402

from .toy_helpers import one_thread  # noqa: E402, F401


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    model = DigitsUNet(DigitsUNetConfig(channels=8))
    with torch.no_grad():  # the output layers start at zero; give them weights so the test sees the network
        model.out[-1].weight.normal_(0, 0.1)
        for block in model.modules():
            if isinstance(block, ResBlock):
                block.conv2.weight.normal_(0, 0.1)
    return model.eval()


def test_split_is_stratified_disjoint_and_reproducible(split):
    train, test = split
    assert len(train) + len(test) == 1797 and train.levels.shape[1:] == (1, 8, 8)
    assert int(train.levels.min()) == 0 and int(train.levels.max()) == LEVELS - 1
    for c in range(10):
        share = float((test.labels == c).sum()) / float((train.labels == c).sum() + (test.labels == c).sum())
        assert abs(share - 0.2) < 0.01
    flat = lambda s: {tuple(row.tolist()) + (int(y),) for row, y in zip(s.levels.flatten(1), s.labels)}  # noqa: E731
    assert len(flat(train) & flat(test)) <= 2  # the data has a few duplicate images
    again, _ = load_digits_split()
    assert torch.equal(again.levels, train.levels)


def test_dequantisation_stays_in_its_bin():
    levels = torch.arange(LEVELS).repeat(200)[:, None, None, None].expand(-1, 1, 8, 8)
    x = dequantize(levels, torch.Generator().manual_seed(0))
    assert float(x.min()) >= -1.0 and float(x.max()) < 1.0
    assert torch.equal(quantize(x), levels)
    assert torch.equal(quantize(bin_centres(levels)), levels)
    width = 2.0 / LEVELS
    torch.testing.assert_close(bin_centres(levels)[0, 0, 0, 0], torch.tensor(-1.0 + width / 2))


def test_unet_and_classifier_shapes_labels_and_round_trip(unet, tmp_path):
    x, t = torch.randn(6, 1, 8, 8), torch.rand(6)
    labels = torch.tensor([0, 1, 2, 3, 9, 10])
    out = unet(x, t, labels)
    assert out.shape == x.shape
    assert not torch.allclose(out, unet(x, t, torch.full((6,), 10)))  # the label matters
    with pytest.raises(ValueError, match="labels must be"):
        unet(x, t, torch.tensor([0, 1, 2, 3, 4, 11]))
    unet.save_pretrained(tmp_path / "unet")
    torch.testing.assert_close(DigitsUNet.from_pretrained(tmp_path / "unet")(x, t, labels), out, rtol=0, atol=0)
    clf = NoisyClassifier(NoisyClassifierConfig(channels=8))
    assert clf(x, t).shape == (6, 10)
    clf.save_pretrained(tmp_path / "clf")
    torch.testing.assert_close(NoisyClassifier.from_pretrained(tmp_path / "clf")(x, t), clf(x, t), rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "unet").iterdir()) == ["config.json", "model.safetensors"]


def test_guidance_at_scale_zero_is_the_unguided_model(unet):
    labels = torch.arange(10)
    clf = NoisyClassifier(NoisyClassifierConfig(channels=8))
    x_T = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    plain = sample(unet.conditional(labels), x_T, unet.schedule, method="dpm_solver++", steps=5, t_end=0.0)
    cfg = generate(unet, labels, guidance="cfg", scale=0.0, steps=5, x_T=x_T)
    assert torch.equal(cfg, plain)
    uncond = sample(unet.unconditional(10), x_T, unet.schedule, method="dpm_solver++", steps=5, t_end=0.0)
    guided = generate(unet, labels, guidance="classifier", scale=0.0, classifier=clf, steps=5, x_T=x_T)
    assert torch.equal(guided, uncond)
    assert not torch.equal(generate(unet, labels, guidance="cfg", scale=2.0, steps=5, x_T=x_T), plain)
    with pytest.raises(ValueError, match="needs the noisy classifier"):
        guided_model(unet, labels, "classifier", 1.0)


def test_classifier_free_guidance_combines_the_two_predictions(unet):
    labels, x, t = torch.arange(10), torch.randn(10, 1, 8, 8), torch.full((10,), 0.5)
    cond, uncond = unet(x, t, labels), unet(x, t, torch.full((10,), 10))
    torch.testing.assert_close(guided_model(unet, labels, "cfg", 3.0)(x, t), 4.0 * cond - 3.0 * uncond)  # (62)


def test_log_prob_grad_matches_finite_differences():
    torch.manual_seed(2)
    clf = NoisyClassifier(NoisyClassifierConfig(channels=8))  # float32: steps of 1e-2 are far above its rounding
    labels = torch.tensor([3, 7])
    x, t = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.full((2,), 0.3, dtype=torch.float64)
    grad = log_prob_grad(clf, labels)(x, t)
    logp = lambda y: torch.log_softmax(clf(y, t.float()).double(), -1)[torch.arange(2), labels]  # noqa: E731
    for pixel in [(0, 0, 3, 4), (1, 0, 6, 1)]:
        e = torch.zeros_like(x)
        e[pixel] = 1e-2
        with torch.no_grad():
            fd = (logp(x + e) - logp(x - e)) / 2e-2
        assert abs(float(fd[pixel[0]]) - float(grad[pixel])) < 2e-3 + 0.02 * abs(float(grad[pixel]))


def test_judge_reads_real_digits_and_diversity_is_relative_to_data(split):
    train, test = split
    judge = Judge(train)
    assert judge.accuracy(test.levels, test.labels) > 0.97
    assert diversity(test.levels, test.labels, test) == pytest.approx(1.0)
    same = test.levels[:1].expand(20, -1, -1, -1)
    assert within_class_distance(bin_centres(same), torch.zeros(20, dtype=torch.int64)) == 0.0


def test_tile_places_each_image_in_its_cell():
    levels = torch.arange(6)[:, None, None, None].expand(6, 1, 8, 8) * 3
    canvas = tile(levels, rows=2)
    assert canvas.shape == (2 * 9 - 1, 3 * 9 - 1)
    assert float(canvas[9 + 2, 2 * 9 + 5]) == pytest.approx(15 / 16)  # row 1, column 2 holds image 5 (level 15)
    assert float(canvas[8, 0]) == 1.0  # the gap
