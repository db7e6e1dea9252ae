"""Package hygiene: importing has no side effects."""

import subprocess
import sys


def test_import_has_no_side_effects():
    code = (
        "import sys, torch\n"
        "import diffusion_lm, diffusion_lm.core, diffusion_lm.toy\n"
        "assert not torch.cuda.is_initialized(), 'CUDA initialised at import'\n"
        "heavy = [m for m in ('matplotlib', 'diffusers', 'tensorboard', 'sklearn', 'sacrebleu', 'datasets') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr


def test_public_api_is_importable_from_core():
    import diffusion_lm.core as core

    for name in ("VPSchedule", "VESchedule", "FlowSchedule", "convert", "sample", "classifier_free",
                 "classifier_guidance", "log_likelihood", "bits_per_dim", "dsm_loss", "flow_matching_loss", "langevin",
                 "langevin_corrector"):
        assert hasattr(core, name), name
    assert core.SAMPLERS["langevin"] is core.langevin is core.annealed_langevin  # method name = function name


def test_core_alone_does_not_import_transformers():
    """The diffusion core is usable without the text model's stack; the model names still load on first use."""
    code = (
        "import sys\n"
        "import diffusion_lm.core\n"
        "assert 'transformers' not in sys.modules, 'diffusion_lm.core imported transformers'\n"
        "import diffusion_lm\n"
        "assert 'transformers' not in sys.modules\n"
        "from transformers import AutoConfig\n"
        "config = diffusion_lm.DiffusionLMConfig()\n"
        "assert type(AutoConfig.for_model('diffusion-lm')) is type(config)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr


def test_training_and_inference_install_inside_the_package_namespace(tmp_path):
    """pip puts training/ and inference/ under diffusion_lm (no top-level `training` in site-packages), so
    `accelerate launch -m diffusion_lm.training.train` works outside the repository."""
    code = (
        "import importlib.util as u\n"
        "import diffusion_lm.training.train, diffusion_lm.inference.generate\n"
        "assert u.find_spec('training') is None and u.find_spec('inference') is None, 'top-level names installed'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PATH": "", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
