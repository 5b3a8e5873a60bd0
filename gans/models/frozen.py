"""Frozen networks other models are scored or regularised with: a classifier the project trained
(loaded by its workdir) and the perceptual-loss feature nets (VGG19 or that classifier's convs).

Parameters are loaded on the host, once per workdir (cached), and passed around as arrays; the
functions applying them need only the classifier's config, cached with them.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections

from gans.models import classifier as classifier_models
from gans.models import vgg

UNTRAINED = 'untrained'  # smoke-test stand-in for a trained classifier workdir


@functools.lru_cache(maxsize=None)
def classifier(workdir: str):
  """(classifier config, params) of a trained classifier workdir, or an untrained stand-in."""
  from gans.methods import classifier as method  # pylint: disable=g-import-not-at-top
  if workdir == UNTRAINED:
    config = method.defaults()
    config.model.update(method.TINY_MODEL)
    with jax.ensure_compile_time_eval():  # concrete even when first called under jit: cached
      return config, jax.device_get(method.init_state(config, jax.random.PRNGKey(0)).params)
  loaded = method.load_frozen(workdir)
  return loaded.config, loaded.params


def classifier_features(workdir: str, params, x):
  """(logits, [ReLU conv maps, first to last]) of the frozen classifier on float images in
  [-1, 1] of any size and channel count."""
  from gans.methods import classifier as method  # pylint: disable=g-import-not-at-top
  config = classifier(workdir)[0]
  x = classifier_models.adapt(x, config.model.resolution, config.model.image_channels)
  logits, taps = method.build_model(config).apply({'params': params}, x, features=True)
  return logits, [taps[name] for name in classifier_models.CONV_TAPS]


def perceptual_features(reg: ml_collections.ConfigDict, g_divisor: int, params, x):
  """(style maps, content map) of PL's feature net (config.reg.pl_net): VGG19 (spec §3.5) or
  the classifier's convs (the first conv of each block for style, the last conv for content)."""
  if reg.pl_net == 'classifier':
    maps = classifier_features(reg.pl_classifier, params, x)[1]
    return maps[::2], maps[-1]
  divisor = g_divisor if reg.pl_net == 'untrained_vgg19' else 1
  out = vgg.VGG19(width_divisor=divisor).apply({'params': params}, x)
  return [out[n] for n in vgg.STYLE_LAYERS], out[vgg.CONTENT_LAYER]


def load_params(reg: ml_collections.ConfigDict, g_divisor: int, image_shape) -> dict:
  """{'sl': classifier params, 'pl': feature-net params} of the networks config.reg uses."""
  frozen = {}
  if reg.sl:
    frozen['sl'] = classifier(reg.sl_classifier)[1]
  if reg.pl_content or reg.pl_style:
    if reg.pl_net == 'classifier':
      frozen['pl'] = classifier(reg.pl_classifier)[1]
    elif reg.pl_net == 'vgg19':
      frozen['pl'] = vgg.load_params(reg.pl_vgg_weights)
    else:
      x = jnp.zeros((1,) + tuple(image_shape))
      frozen['pl'] = vgg.VGG19(width_divisor=g_divisor).init(jax.random.PRNGKey(0), x)['params']
  return frozen
