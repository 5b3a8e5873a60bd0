"""Training methods by name. A method module provides:

  init_state(config, key) -> state          a flax.struct dataclass with a `step` field
  train_step(config, state, images) -> (state, metrics)   one step on a uint8 NHWC batch
  image_shape(config) -> (R, R, C)          what the data must be resized to
  sample_latents(config, key, n) -> z
  generate(config, state, z) -> outputs     jittable; what the sample sheets are made from
  sheets(config, host_outputs) -> [(name, images in [-1, 1], columns or None)]

Optional, for evaluation (gans.evaluate); without them the metrics see generate()'s output as
one image set against the data at image_shape():

  eval_sets(config, outputs) -> {name: images in [-1, 1]}   jittable; '' is the headline set,
      every other name an extra set scored with FID only and reported as fid_<name> (MSG-GAN:
      one per lower output scale)
  real_eval_sets(config, images) -> {name: images}   the same names from a batch of real
      images in [-1, 1] at image_shape(), e.g. the reals downsampled to each scale
"""
import importlib

from gans.errors import UserError

METHODS = {'msggan': 'gans.methods.msggan'}


def get(name):
  if name not in METHODS:
    raise UserError(f'unknown method {name!r}; choose one of {", ".join(METHODS)}')
  return importlib.import_module(METHODS[name])
