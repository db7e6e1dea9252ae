"""Package hygiene: importing has no side effects."""

import subprocess
import sys


def test_import_has_no_side_effects():
    code = (
        "import sys, torch\n"
        "import diffusion_lm, diffusion_lm.core, diffusion_lm.toy\n"
        "assert not torch.cuda.is_initialized(), 'CUDA initialised at import'\n"
        "heavy = [m for m in ('matplotlib', 'diffusers', 'tensorboard', 'sklearn', 'sacrebleu', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr


def test_public_api_is_importable_from_core():
    import diffusion_lm.core as core

    for name in ("VPSchedule", "VESchedule", "FlowSchedule", "convert", "sample", "classifier_free",
                 "classifier_guidance", "log_likelihood", "bits_per_dim", "dsm_loss", "flow_matching_loss", "langevin"):
        assert hasattr(core, name), name
