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


def test_every_command_module_runs_as_python_dash_m():
    """Each module of training/ and inference/ with a ``main`` is a command: ``python -m training.demo --help`` (what
    ``make demo`` runs, without the flag) must reach its argument parser, not import the module and exit 0 silently."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = sorted(f"{folder}.{path.stem}" for folder in ("training", "inference")
                     for path in (root / folder).glob("*.py") if "\ndef main(" in path.read_text())
    assert {"training.demo", "training.train", "inference.generate"} <= set(modules)
    code = (
        "import contextlib, io, runpy, sys\n"
        f"for name in {modules!r}:\n"
        "    sys.argv, out = [name, '--help'], io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            runpy.run_module(name, run_name='__main__', alter_sys=True)\n"
        "        code = None\n"
        "    except SystemExit as stop:\n"
        "        code = stop.code\n"
        "    said = out.getvalue()\n"
        "    assert code == 0 and 'usage' in said.lower(), f'{name}: exit {code}, printed {said!r}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=240,
                            env={"PATH": "", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
