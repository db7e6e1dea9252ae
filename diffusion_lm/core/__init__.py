"""The continuous diffusion core: schedules, parameterisations, samplers, guidance, likelihood, losses.

Every name here is public API; equation numbers in comments refer to ``docs/THEORY.md``.
"""

from .denoiser import Denoiser, Point
from .dpm_solvers import dpm_solver, dpm_solver_pp, unipc
from .grids import GRIDS, make_grid
from .guidance import classifier_free, classifier_guidance, guidance_weight
from .likelihood import bits_per_dim, log_likelihood
from .losses import WEIGHTINGS, dsm_loss, flow_matching_loss, loss_weight, sample_time
from .ode_solvers import euler, heun, rk45, solve_ode
from .parameterization import PREDICTIONS, convert
from .sampling import METHODS, SAMPLERS, register_sampler, sample, sampler_options
from .schedules import FlowSchedule, Schedule, VESchedule, VPSchedule, schedule_from_config
from .sde_solvers import (
    annealed_langevin,
    ddim,
    ddpm,
    euler_maruyama,
    langevin,
    langevin_corrector,
    predictor_corrector,
)

__all__ = [
    "GRIDS",
    "METHODS",
    "PREDICTIONS",
    "WEIGHTINGS",
    "Denoiser",
    "FlowSchedule",
    "Point",
    "Schedule",
    "VESchedule",
    "VPSchedule",
    "annealed_langevin",
    "bits_per_dim",
    "classifier_free",
    "classifier_guidance",
    "guidance_weight",
    "convert",
    "ddim",
    "ddpm",
    "dpm_solver",
    "dpm_solver_pp",
    "dsm_loss",
    "euler",
    "euler_maruyama",
    "flow_matching_loss",
    "heun",
    "langevin",
    "langevin_corrector",
    "log_likelihood",
    "loss_weight",
    "make_grid",
    "predictor_corrector",
    "rk45",
    "sample",
    "sampler_options",
    "register_sampler",
    "SAMPLERS",
    "sample_time",
    "schedule_from_config",
    "solve_ode",
    "unipc",
]
