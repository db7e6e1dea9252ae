"""diffusion-lm: continuous (embedding-space) diffusion language models and the diffusion core beneath them."""

__version__ = "0.1.0"
