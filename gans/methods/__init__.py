"""Training methods by name. A method module provides:

  TINY_MODEL: dict                          model fields of the `tiny` variant (config.make_tiny)
  PROGRESS: tuple of metric names           shown on the progress line
  defaults() -> ConfigDict                  the method's fields, on top of config.base_defaults
  validate(config)                          UserError on an impossible value of those fields
  sources(config) -> source or pytree of sources   what the steps draw from, one stream each
  example_spec(config) -> the same structure, one example's ShapeDtypeStructs at each source
  init_state(config, key) -> state          a flax.struct dataclass with a `step` field
  train_step(config, state, batch) -> (state, metrics)   one step; batch is structured like
                                            sources(config), with a batch axis on every array

and, when it trains a generator (everything but the classifier):

  sample_latents(config, key, n) -> z
  generate(config, state, z) -> outputs     jittable; what the sample sheets are made from
  sheets(config, host_outputs) -> [(name, images in [-1, 1], columns or None)]

and optionally:

  evaluate(config, state) -> {name: float}  held-out scores, logged at every checkpoint
  figures(config, state, workdir) -> [paths]   the method's own figures (BEGAN's convergence
                                            curve, coupled pair sheets, walks and translations),
                                            for eval.py --figures,
                                            into workdir/figures/; replaces the generic slerp
                                            interpolation (sheets and curves are drawn anyway)
  flops(config) -> (reference, necessary)   FLOPs per image of one step, for gans.bench

and, for sample-quality metrics (gans.evaluate; without them the metrics see generate()'s output
as one image set, against sources(config), which must then be one image source):

  eval_sets(config, outputs) -> {name: images in [-1, 1]}   jittable; '' is the headline set,
      every other name an extra set scored with FID only and reported as fid_<name> (MSG-GAN:
      one per lower output scale)
  real_eval_sets(config, images) -> {name: images}   the same names from a batch of real
      images in [-1, 1] at image_shape(), e.g. the reals downsampled to each scale
  eval_domains(config) -> names             a generator of several image domains (CoGAN's a
      and b): each name is a key of sources(config), the metrics are computed per domain
      against that stream and reported with _<name> appended, and the two hooks above take
      the domain as a third argument
"""
import importlib

from gans.errors import UserError

METHODS = {
    'msggan': 'gans.methods.msggan',
    'classifier': 'gans.methods.classifier',
    'began': 'gans.methods.began',
    'cogan': 'gans.methods.coupled',  # CoGAN and SCoGAN: one module, different defaults
    'scogan': 'gans.methods.coupled',
}


def get(name):
  if name not in METHODS:
    raise UserError(f'unknown method {name!r}; choose one of {", ".join(METHODS)}')
  return importlib.import_module(METHODS[name])


def makes_samples(method):
  return hasattr(method, 'generate')
