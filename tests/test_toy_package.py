"""Import hygiene of the 2D and image modules: no plotting or scikit-learn at import time.

(scipy is not checked: transformers' PreTrainedModel imports it whenever it is installed.)
"""

import subprocess
import sys


def test_toy_and_image_modules_import_without_heavy_optional_libraries():
    code = (
        "import sys\n"
        "import diffusion_lm.toy.consistency, diffusion_lm.toy.datasets, diffusion_lm.toy.metrics\n"
        "import diffusion_lm.toy.plots, diffusion_lm.toy.pretrained, diffusion_lm.toy.ssm, diffusion_lm.toy.training\n"
        "import diffusion_lm.images.classifier, diffusion_lm.images.digits, diffusion_lm.images.evaluate\n"
        "import diffusion_lm.images.plots, diffusion_lm.images.unet\n"
        "heavy = [m for m in ('matplotlib', 'sklearn', 'diffusers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0, result.stderr
