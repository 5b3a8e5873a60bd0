"""Training methods by name. A method module provides:

  init_state(config, key) -> state          a flax.struct dataclass with a `step` field
  train_step(config, state, images) -> (state, metrics)   one step on a uint8 NHWC batch
  image_shape(config) -> (R, R, C)          what the data must be resized to
  sample_latents(config, key, n) -> z
  generate(config, state, z) -> outputs     jittable; what the sample sheets are made from
  sheets(config, host_outputs) -> [(name, images in [-1, 1], columns or None)]
"""
import importlib

from gans.errors import UserError

METHODS = {'msggan': 'gans.methods.msggan'}


def get(name):
  if name not in METHODS:
    raise UserError(f'unknown method {name!r}; choose one of {", ".join(METHODS)}')
  return importlib.import_module(METHODS[name])
