"""What several of diffusion_lm's packages share (the text model, the 2D toy models, the digits models):
atomic writes (``atomic``), the sinusoidal timestep embedding (``layers``), the small models' transformers
base (``pretrained``) and matplotlib figures saved atomically (``plotting``). The diffusion core
(``diffusion_lm.core``) depends on none of it."""
