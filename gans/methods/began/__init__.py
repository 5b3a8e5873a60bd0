"""BEGAN: an autoencoder D, the k_t equilibrium controller and the convergence measure M.

  config.py    defaults (carpedm20/BEGAN-tensorflow's recipe) and validation
  step.py      the state, the models, the lr schedules, train_step, generate, sheets, flops
  figures.py   the M curve, interpolations, the gamma figure (eval.py --figures, --gamma)
"""
from gans import latents, methods
from gans.methods.began.config import defaults, validate
from gans.methods.began import figures
from gans.methods.began.figures import gamma_figure
from gans.methods.began.step import (apply_generator, eval_sets, example_spec, flops, generate,
                                     generator_variables, image_shape, init_state,
                                     sample_latents, sheets, sources, train_step)

PROGRESS = ('M', 'k')
TINY_MODEL = dict(resolution=8, n=8, h=8, z=8)


def latent_prior(config):
  del config
  return 'uniform'  # spec §9 decision 5


def truncated_latents(config, key, n, threshold):
  """Uniform latents conditioned on |z_i| <= threshold (gans/latents.py)."""
  return latents.truncate(latent_prior(config), key, sample_latents(config, key, n), threshold)


METHOD = methods.Method(
    name='began', defaults=defaults, validate=validate, tiny_model=TINY_MODEL, progress=PROGRESS,
    logged_at_step=PROGRESS,  # M and k at the logged step; their interval means as M_mean, k_mean
    # training, on one stream of images
    sources=sources, example_spec=example_spec, init_state=init_state, train_step=train_step,
    flops=flops,
    # the generator: samples, sheets of them with D's reconstructions, the metrics' image set
    image_shape=image_shape, sample_latents=sample_latents, generate=generate, sheets=sheets,
    eval_sets=eval_sets, figures=figures.figures,
    # what sample.py --export saves and gans.load_generator runs; truncation and walks
    generator_variables=generator_variables, apply_generator=apply_generator,
    latent_prior=latent_prior, truncated_latents=truncated_latents)
__all__ = ['METHOD', 'defaults', 'gamma_figure', 'validate']
