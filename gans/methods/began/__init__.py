"""BEGAN: an autoencoder D, the k_t equilibrium controller and the convergence measure M.

  config.py    defaults (carpedm20/BEGAN-tensorflow's recipe) and validation
  step.py      the state, the models, the lr schedules, train_step, generate, sheets, flops
  figures.py   the M curve, interpolations, the gamma figure (eval.py --figures, --gamma)
"""
from gans import methods
from gans.methods.began.config import defaults, validate
from gans.methods.began import figures
from gans.methods.began.figures import gamma_figure
from gans.methods.began.step import (eval_sets, example_spec, flops, generate, image_shape,
                                     init_state, sample_latents, sheets, sources, train_step)

PROGRESS = ('M', 'k')
TINY_MODEL = dict(resolution=8, n=8, h=8, z=8)

METHOD = methods.Method(
    name='began', defaults=defaults, validate=validate, tiny_model=TINY_MODEL, progress=PROGRESS,
    # training, on one stream of images
    sources=sources, example_spec=example_spec, init_state=init_state, train_step=train_step,
    flops=flops,
    # the generator: samples, sheets of them with D's reconstructions, the metrics' image set
    image_shape=image_shape, sample_latents=sample_latents, generate=generate, sheets=sheets,
    eval_sets=eval_sets, figures=figures.figures)
__all__ = ['METHOD', 'defaults', 'gamma_figure', 'validate']
