"""Long digits run (``-m slow``): guided samples are read as their class; guidance at scale 0 is the unguided model."""

import pytest
import torch

pytest.importorskip("sklearn")

from diffusion_lm.core import sample  # noqa: E402
from diffusion_lm.images.evaluate import class_labels, generate  # noqa: E402
from diffusion_lm.images.unet import DigitsUNet  # noqa: E402
from training import train_digits  # noqa: E402


@pytest.mark.slow
def test_guided_digits_reach_90_percent_class_accuracy(tmp_path):
    metrics = train_digits.main([
        "--steps", "1200", "--classifier-steps", "400", "--per-class", "20", "--cfg-scales", "0,2",
        "--classifier-scales", "4", "--classifier-sample-steps", "50", "--bpd-images", "0", "--threads", "2",
        "--out", str(tmp_path),
    ])
    assert metrics["judge_test_accuracy"] > 0.97
    cfg = {row["scale"]: row["accuracy"] for row in metrics["cfg"]}
    assert cfg[2.0] >= 0.9, metrics["cfg"]
    assert metrics["classifier"][0]["accuracy"] >= 0.9, metrics["classifier"]

    # guidance at scale 0 is the unguided conditional model, to the bit
    unet = DigitsUNet.from_pretrained(tmp_path / "unet").eval()
    labels = class_labels(3)
    x_T = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = sample(unet.conditional(labels), x_T, unet.schedule, method="dpm_solver++", steps=25,
                   prediction=unet.prediction, t_end=0.0)
    assert torch.equal(generate(unet, labels, guidance="cfg", scale=0.0, x_T=x_T), plain)
