"""Frozen networks other models are scored or regularised with: a classifier the project trained
(loaded by its workdir) and the perceptual-loss feature nets (VGG19 or that classifier's convs).

Parameters are loaded on the host, once per workdir (cached), and passed around as arrays; the
functions applying them need only the classifier's config, cached with them.

A training run never saves them: the trainer passes them to the step as an argument (see
Method.frozen) and records each one's array_digest in the run's config (a `Net.digest` field,
e.g. reg.pl_net_digest), so a resume that would train on with other weights is refused
(record_digests here, the comparison in gans.checkpoint).
"""
import functools
import hashlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gans.errors import UserError
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


def classifier_probabilities(workdir: str, params, x):
  """The frozen classifier's class probabilities (softmax) of float images in [-1, 1], or one
  independent sigmoid per attribute for a multi-label one (classifier.attributes: CelebA)."""
  from gans.methods import classifier as method  # pylint: disable=g-import-not-at-top
  logits = classifier_features(workdir, params, x)[0]
  multilabel = bool(method.attribute_names(classifier(workdir)[0]))
  return jax.nn.sigmoid(logits) if multilabel else jax.nn.softmax(logits)


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


def array_digest(tree) -> str:
  """A digest of a pytree of arrays' paths, dtypes, shapes and bytes (a network's parameters)."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f'{jax.tree_util.keystr(path)} {a.dtype} {a.shape}'.encode())
    h.update(a.tobytes())
  return h.hexdigest()[:20]


class Net(NamedTuple):
  """A frozen network as a method uses it: its parameters (host arrays), the config field that
  names the file or workdir they come from, and the config field their digest is recorded in."""
  params: Any
  source: str  # dotted config field: 'reg.pl_vgg_weights'
  digest: str  # dotted config field: 'reg.pl_net_digest'


def params(nets: dict) -> dict:
  """{name: params} of {name: Net}: what a method's train_step takes as `frozen`."""
  return {name: net.params for name, net in nets.items()}


def _field(config, dotted):
  for part in dotted.split('.'):
    config = config.get(part) if config is not None else None
  return config


def load(reg: ml_collections.ConfigDict, g_divisor: int, image_shape) -> dict:
  """{'sl': classifier, 'pl': feature net} (Nets) of the networks config.reg uses, on the host."""
  nets = {}
  if reg.sl:
    nets['sl'] = Net(classifier(reg.sl_classifier)[1], 'reg.sl_classifier',
                     'reg.sl_classifier_digest')
  if reg.pl_content or reg.pl_style:
    if reg.pl_net == 'classifier':
      pl, source = classifier(reg.pl_classifier)[1], 'reg.pl_classifier'
    elif reg.pl_net == 'vgg19':
      pl, source = vgg.load_params(reg.pl_vgg_weights), 'reg.pl_vgg_weights'
    else:
      x = jnp.zeros((1,) + tuple(image_shape))
      with jax.ensure_compile_time_eval():  # concrete even when first called under jit
        pl = vgg.VGG19(width_divisor=g_divisor).init(jax.random.PRNGKey(0), x)['params']
      source = 'reg.pl_net'
    nets['pl'] = Net(jax.device_get(pl), source, 'reg.pl_net_digest')
  return nets


def short(digest) -> str:
  return (digest or 'none')[:10]


def record_digests(config: ml_collections.ConfigDict, nets: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with each net's digest field set to the array_digest of its params
  (`config` itself when there are no nets).

  A digest field already set (pinned by the user, or kept from a run's saved config) must be
  the digest of what was loaded now: otherwise a UserError names the file and both digests.
  The comparison with a checkpoint's recorded digests is gans.checkpoint's (at restore).
  """
  if not nets:
    return config
  out = config.copy_and_resolve_references()
  for net in nets.values():
    digest, pinned = array_digest(net.params), _field(config, net.digest)
    if pinned and pinned != digest:
      raise UserError(f'{net.source}={_field(config, net.source)!r} has digest {short(digest)}, '
                      f'but {net.digest} pins {short(pinned)}: point {net.source} at the file '
                      f'the digest was recorded from, or clear the pin (--config.{net.digest}=)')
    block, leaf = net.digest.rsplit('.', 1)
    with out.unlocked():
      _field(out, block)[leaf] = digest
  return out
