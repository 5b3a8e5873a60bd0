"""Coupled GANs: CoGAN (hard weight sharing) and SCoGAN (soft couplings), one method module.

Registered twice ('cogan', 'scogan'): the two differ only in their defaults. CoGAN shares the
generators' first and the discriminators' last blocks; SCoGAN shares nothing and pulls the two
generators together with the regularisers FR, SL, CC, PL or the weight-similarity baseline
(spec coupled.md §3.5), each with its own weight (0 = off), combinable with sharing.

One step = one D update then `g_steps` G updates (spec §4 #5-6), each with its own z. Both
games are summed into one loss per network and differentiated once: a shared parameter gets the
gradients of both domains' losses, and a coupling term added to both generators' losses (as the
reference does, each generator updated from its own loss only) gets exactly the reference's
per-generator gradient, since neither adversarial loss depends on the other generator. Frozen
networks (SL's classifier, PL's feature net) live in the state, so a resumed run uses exactly
the weights it started with, and are never differentiated.

Hooks beyond the method API: evaluate() logs pixel / classifier pair agreement at every
checkpoint; figures(config, state, workdir) writes pair sheets, slerp walks and cross-domain
translations into workdir/figures/ (for eval.py).
"""
import functools
import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gans import config as config_lib
from gans import methods
from gans import figures as figures_lib
from gans import health, layers, parallel, regularizers
from gans.data import feeding, pairs
from gans.metrics import agreement
from gans.models import classifier as classifier_models
from gans.models import cogan as models
from gans.models import vgg

PROGRESS = ('d_loss', 'g_loss')
TINY_MODEL = dict(g_divisor=32, d_divisor=8, latent_size=16)
RESOLUTIONS = {'digits32': (32,), 'digits28': (28,), 'faces': (64, 128)}
UNTRAINED = 'untrained'  # smoke-test stand-in for a frozen network (see defaults)


def defaults(method='cogan') -> ml_collections.ConfigDict:
  """CoGAN on digits/negative digits at 32x32 (spec §4 defaults); SCoGAN: nothing shared."""
  c = config_lib.base_defaults(method)
  c.model = ml_collections.ConfigDict()
  c.model.arch = 'digits32'  # 'digits32' (§4 #1), 'digits28' (official), 'faces' (64/128)
  c.model.resolution = 32
  c.model.image_channels = 1  # §4 #3: 1 when both domains are grey, else 3
  c.model.latent_size = 100
  c.model.g_divisor = 1  # every G (and CC encoder) channel count / this: CPU configs, tiny
  c.model.d_divisor = 1  # every D channel count / this
  c.model.g_shared = 4 if method == 'cogan' else 0  # first G blocks shared (0 = independent)
  c.model.d_shared = 3 if method == 'cogan' else 0  # last D blocks shared
  c.model.weight_init = 'normal'  # §4 #11: normal (N(0,.02), bias .1), he (28x28), normal0
  c.model.prelu_init = 0.25  # §4 #10: per-channel slopes
  c.model.d_dropout = False  # faces D: SCoGAN's dropouts (§4 #15); digits D always has FC 0.5
  c.model.sample_mode = 'running'  # samples with BN running averages; 'batch': batch statistics
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.latent_dist = 'uniform'  # §4 #4: Uniform[-1, 1]; or 'normal'
  c.g_steps = 1  # §4 #16: G updates per D update (andrewliao11 uses 2)
  c.label_smoothing = 0.0  # one-sided: D's real target is 1 - this (§4 #16: off)
  c.d_bn = 'separate'  # §4 #8: real and fake in separate D calls; 'mixed': one BN batch (Caffe)

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 2e-4
  c.optim.d_lr = 2e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.weight_decay = 5e-4 if method == 'cogan' else 0.0  # §4 #9: coupled L2, kernels only

  c.reg = ml_collections.ConfigDict()  # §4 #18-23; weights 0 = off, spec defaults in comments
  c.reg.fr = 0.0  # feature regulariser (10)
  c.reg.fr_layers = 2  # the first S ConvT outputs after the FC block
  c.reg.sl = 0.0  # semantic loss (10)
  c.reg.sl_classifier = ''  # workdir of a classifier trained on both domains, or 'untrained'
  c.reg.cc = 0.0  # latent cycle consistency (10); the encoder is trained on CC x cc_encoder
  c.reg.cc_encoder = 1.0
  c.reg.cc_dropout = 0.4
  c.reg.weight_sim = 0.0  # the weight-similarity baseline (10)
  c.reg.pl_content = 0.0  # perceptual loss content weight (1e-3)
  c.reg.pl_style = 0.0  # perceptual loss style weight (1e-11)
  c.reg.pl_net = 'vgg19'  # 'vgg19' (reg.pl_vgg_weights), 'classifier' (reg.pl_classifier),
  c.reg.pl_vgg_weights = ''  # or 'untrained_vgg19' (random stand-in for smoke tests)
  c.reg.pl_classifier = ''
  c.reg.pl_gram = 'batch_mean'  # §4 #22; 'per_sample' is the reference's parity option

  c.data_b = config_lib.data_defaults('')  # domain b's dataset; '' = the other half of data
  c.pair = ml_collections.ConfigDict()
  c.pair.transform = 'negative'  # domain b = T(images): none, negative, edge, rotate
  c.pair.pad = 2  # black border added after the transform (28 -> 32, §4 #2)
  c.pair.attribute = ''  # CelebA: domain a with it, b without
  c.pair.prune_classifier = ''  # keep domain-b images this classifier is confident about
  c.pair.prune_min_confidence = 0.4
  pairs.configure(c, 'digits2negative')

  # Beside the shared eval block (config.eval_defaults): eval.classifier is the same project
  # classifier there and here, the judge of pair agreement.
  c.eval.num_pairs = 10_000  # pairs scored at every checkpoint (metrics.md §6.1); 0 = none
  c.eval.translation_steps = 500  # cross-domain translation figure: Adam steps on z

  c.batch_size = 128  # per domain (§4 #13)
  c.num_steps = 25_000  # D+G step pairs
  return c


def tiny(c):
  """make_tiny, plus few evaluation pairs and translation steps."""
  config_lib.make_tiny(c)
  c.eval.num_pairs, c.eval.translation_steps = 16, 2
  return c


def parse_variant(variant, names):
  """(name, is_tiny) of a config argument 'NAME', 'NAME_tiny' or 'tiny', NAME in `names`."""
  known = ('tiny',) + tuple(names) + tuple(f'{n}_tiny' for n in names)
  config_lib.check_variant(variant, known)
  is_tiny = variant == 'tiny' or variant.endswith('_tiny')
  return ('' if variant == 'tiny' else variant.removesuffix('_tiny')), is_tiny


def _layers(config):
  m = config.model
  return (models.generator_layers(m.arch, m.resolution, m.image_channels, m.g_divisor),
          models.discriminator_layers(m.arch, m.resolution, m.d_divisor, m.d_dropout))


def validate(config):
  check = config_lib.check
  m, r, p = config.model, config.reg, config.pair
  check(m.arch in models.ARCHS, f'model.arch={m.arch!r}; choose one of {", ".join(models.ARCHS)}')
  check(m.resolution in RESOLUTIONS[m.arch], f'model.resolution={m.resolution} is not one '
        f'{m.arch} makes: {", ".join(map(str, RESOLUTIONS[m.arch]))}')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  config_lib.check_dtype(m.dtype)
  check(m.latent_size >= 1 and m.g_divisor >= 1 and m.d_divisor >= 1,
        'model.latent_size, model.g_divisor and model.d_divisor must be >= 1')
  g_layers, d_layers = _layers(config)
  check(0 <= m.g_shared < len(g_layers), f'model.g_shared={m.g_shared} must be in 0..'
        f'{len(g_layers) - 1} ({m.arch} G has {len(g_layers)} blocks; the output is never shared)')
  check(0 <= m.d_shared < len(d_layers), f'model.d_shared={m.d_shared} must be in 0..'
        f'{len(d_layers) - 1} ({m.arch} D has {len(d_layers)} blocks; the first is per domain)')
  check(m.weight_init in models.INITS,
        f'model.weight_init={m.weight_init!r}; choose one of {", ".join(models.INITS)}')
  check(m.sample_mode in ('running', 'batch'), f'model.sample_mode={m.sample_mode!r}; use '
        'running or batch')
  check(config.latent_dist in ('uniform', 'normal'),
        f'latent_dist={config.latent_dist!r}; use uniform or normal')
  check(config.g_steps >= 1, f'g_steps={config.g_steps} must be >= 1')
  check(0 <= config.label_smoothing < 1, f'label_smoothing={config.label_smoothing} must be in '
        '[0, 1)')
  check(config.d_bn in ('separate', 'mixed'), f'd_bn={config.d_bn!r}; use separate or mixed')
  o = config.optim
  check(o.g_lr > 0 and o.d_lr > 0 and o.weight_decay >= 0,
        'optim.g_lr and optim.d_lr must be > 0, optim.weight_decay >= 0')
  for name in ('fr', 'sl', 'cc', 'cc_encoder', 'weight_sim', 'pl_content', 'pl_style'):
    check(r[name] >= 0, f'reg.{name}={r[name]} must be >= 0')
  check(1 <= r.fr_layers <= len(g_layers) - 2, f'reg.fr_layers={r.fr_layers} must be in 1..'
        f'{len(g_layers) - 2} (ConvT blocks before the output)')
  check(not r.sl or r.sl_classifier, 'reg.sl > 0 needs reg.sl_classifier=WORKDIR of a classifier '
        'trained on both domains (python train.py --config configs/classifier_digits.py ...)')
  check(0 <= r.cc_dropout < 1, f'reg.cc_dropout={r.cc_dropout} must be in [0, 1)')
  check(r.pl_net in ('vgg19', 'classifier', 'untrained_vgg19'),
        f'reg.pl_net={r.pl_net!r}; use vgg19, classifier or untrained_vgg19')
  check(r.pl_gram in ('batch_mean', 'per_sample'), f'reg.pl_gram={r.pl_gram!r}; use batch_mean '
        'or per_sample')
  if r.pl_content or r.pl_style:
    check(r.pl_net != 'vgg19' or r.pl_vgg_weights, 'the perceptual loss needs VGG19 ImageNet '
          'weights and none were given: set --config.reg.pl_vgg_weights=FILE.npz (made once by '
          '`python -m gans.models.vgg` from the Keras notop .h5; see gans/models/vgg.py), or use '
          'the project classifier\'s features: --config.reg.pl_net=classifier '
          '--config.reg.pl_classifier=WORKDIR')
    check(r.pl_net != 'classifier' or r.pl_classifier,
          'reg.pl_net=classifier needs reg.pl_classifier=WORKDIR of a trained classifier')
  check(p.transform in pairs.TRANSFORMS,
        f'pair.transform={p.transform!r}; choose one of {", ".join(pairs.TRANSFORMS)}')
  check(0 <= 2 * p.pad < m.resolution, f'pair.pad={p.pad} leaves no image at {m.resolution}')
  check(not p.attribute or not config.data_b.name,
        'pair.attribute splits one dataset: leave data_b.name empty')
  check(0 < p.prune_min_confidence <= 1, 'pair.prune_min_confidence must be in (0, 1]')
  check(config.eval.num_pairs >= 0 and config.eval.translation_steps >= 0,
        'eval.num_pairs and eval.translation_steps must be >= 0')
  config_lib.validate_data(config.data)
  if config.data_b.name:
    config_lib.validate_data(config.data_b, 'data_b')


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  key: jax.Array  # base key: step s uses fold_in(key, s), so a resume replays the same draws
  g_params: Any  # {'shared_i', 'a_i', 'b_i'}: one entry per block, shared blocks once
  d_params: Any
  g_stats: Any  # BatchNorm running statistics ({'batch_stats': ...} or {})
  d_stats: Any
  g_opt: Any
  d_opt: Any
  e_params: Any  # CC's shared encoder ({} without CC)
  e_opt: Any
  frozen: Any  # {'sl': classifier params, 'pl': feature-net params}, as used


def build_models(config):
  m = config.model
  g_layers, d_layers = _layers(config)
  dtype = jnp.dtype(m.dtype)
  g = models.CoupledGenerator(g_layers, m.g_shared, m.weight_init, m.prelu_init, dtype)
  d = models.CoupledDiscriminator(d_layers, m.d_shared, m.weight_init, m.prelu_init, dtype)
  return g, d


def _encoder(config):
  return models.Encoder(config.model.latent_size, config.model.g_divisor,
                        config.reg.cc_dropout)


def _adam(config, lr, params):
  """Adam with coupled L2 on kernels (added to the gradient before the Adam scaling, Caffe's
  and PyTorch's weight_decay; not AdamW), spec §6."""
  o = config.optim
  mask = jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)
  return optax.chain(optax.add_decayed_weights(o.weight_decay, mask),
                     optax.scale_by_adam(o.b1, o.b2, 1e-8), optax.scale(-lr))


def image_shape(config):
  m = config.model
  return (m.resolution, m.resolution, m.image_channels)


def sources(config):
  return pairs.make_sources(config, *image_shape(config)[1:])


def example_spec(config):
  spec = jax.ShapeDtypeStruct(image_shape(config), jnp.uint8)
  return {'a': spec, 'b': spec}


def sample_latents(config, key, n):
  shape = (n, config.model.latent_size)
  if config.latent_dist == 'normal':
    return jax.random.normal(key, shape)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


# Frozen networks. Their parameters are loaded on the host at init_state (and for the abstract
# state of a restore); the functions below only need their configs, cached per path.


@functools.lru_cache(maxsize=None)
def _classifier(workdir):
  """(classifier config, params) of a trained classifier workdir, or an untrained stand-in."""
  from gans.methods import classifier  # pylint: disable=g-import-not-at-top
  if workdir == UNTRAINED:
    config = classifier.defaults()
    config.model.update(classifier.TINY_MODEL)
    with jax.ensure_compile_time_eval():  # concrete even when first called under jit: cached
      return config, jax.device_get(classifier.init_state(config, jax.random.PRNGKey(0)).params)
  frozen = classifier.load_frozen(workdir)
  return frozen.config, frozen.params


def _classifier_apply(workdir, params, x):
  """(logits, [relu conv maps]) of the frozen classifier on float images in [-1, 1]."""
  from gans.methods import classifier  # pylint: disable=g-import-not-at-top
  ccfg = _classifier(workdir)[0]
  x = classifier_models.adapt(x, ccfg.model.resolution, ccfg.model.image_channels)
  logits, state = classifier.build_model(ccfg).apply(
      {'params': params}, x, capture_intermediates=True, mutable=['intermediates'])
  inter = state['intermediates']
  maps = [jax.nn.relu(inter[f'Conv_{i}']['__call__'][0]) for i in range(6) if f'Conv_{i}' in inter]
  return logits, maps


def _pl_features(config, params, x):
  """(style maps, content map) of PL's feature net: VGG19 (spec §3.5) or the classifier's convs
  (the first conv of each block for style, the last conv for content)."""
  r = config.reg
  if r.pl_net == 'classifier':
    maps = _classifier_apply(r.pl_classifier, params, x)[1]
    return maps[::2], maps[-1]
  divisor = config.model.g_divisor if r.pl_net == 'untrained_vgg19' else 1
  out = vgg.VGG19(width_divisor=divisor).apply({'params': params}, x)
  return [out[n] for n in vgg.STYLE_LAYERS], out[vgg.CONTENT_LAYER]


def _frozen_params(config):
  r, frozen = config.reg, {}
  if r.sl:
    frozen['sl'] = _classifier(r.sl_classifier)[1]
  if r.pl_content or r.pl_style:
    if r.pl_net == 'classifier':
      frozen['pl'] = _classifier(r.pl_classifier)[1]
    elif r.pl_net == 'vgg19':
      frozen['pl'] = vgg.load_params(r.pl_vgg_weights)
    else:
      x = jnp.zeros((1,) + image_shape(config))
      frozen['pl'] = vgg.VGG19(width_divisor=config.model.g_divisor).init(
          jax.random.PRNGKey(0), x)['params']
  return frozen


def init_state(config, key):
  g, d = build_models(config)
  k_state, k_g, k_d, k_e = jax.random.split(key, 4)
  z = jnp.zeros((1, config.model.latent_size))
  g_params, g_stats = layers.split_variables(g.init(k_g, z))
  x = jnp.zeros((1,) + image_shape(config))
  d_params, d_stats = layers.split_variables(d.init({'params': k_d, 'dropout': k_d}, x, x))
  e_params = _encoder(config).init(k_e, x, train=False)['params'] if config.reg.cc else {}
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, g_params=g_params,
                    d_params=d_params, g_stats=g_stats, d_stats=d_stats,
                    g_opt=_adam(config, config.optim.g_lr, g_params).init(g_params),
                    d_opt=_adam(config, config.optim.d_lr, d_params).init(d_params),
                    e_params=e_params,
                    e_opt=_adam(config, config.optim.g_lr, e_params).init(e_params),
                    frozen=_frozen_params(config))


def _bce(logits, target):
  """Mean sigmoid cross-entropy with a constant target in [0, 1]."""
  return jnp.mean(target * jax.nn.softplus(-logits) + (1 - target) * jax.nn.softplus(logits))


def _apply(model, params, stats, *args, rng):
  """Training-mode apply: BatchNorm uses and updates batch statistics, dropout is on."""
  out, new = model.apply({'params': params, **stats}, *args, train=True,
                         rngs={'dropout': rng}, mutable=['batch_stats'])
  return out, {**stats, **new}


def g_regularizers(config, frozen, g_params, e_params, z, gen, real, key):
  """{name: (weight, value)} of the enabled couplings, for generator outputs `gen` =
  (x_a, x_b, features_a, features_b) of latents z; real = (r_a, r_b) the step's real batches."""
  r = config.reg
  x_a, x_b, f_a, f_b = gen
  terms = {}
  if r.weight_sim:
    blocks = [(g_params[a], g_params[b]) for a, b in models.block_pairs(g_params)]
    terms['weight_sim'] = (r.weight_sim, regularizers.weight_similarity(blocks))
  if r.fr:  # f[0] is the FC block's output: FR starts at the first ConvT (spec §4 #19)
    terms['fr'] = (r.fr, regularizers.feature_regularizer(f_a[1:1 + r.fr_layers],
                                                          f_b[1:1 + r.fr_layers]))
  if r.sl:
    probs = [jax.nn.softmax(_classifier_apply(r.sl_classifier, frozen['sl'], x)[0])
             for x in (x_a, x_b)]
    terms['sl'] = (r.sl, regularizers.semantic_loss(*probs))
  if r.cc:
    enc = _encoder(config)
    k_a, k_b = jax.random.split(key)
    z_a = enc.apply({'params': e_params}, x_a, rngs={'dropout': k_a})
    z_b = enc.apply({'params': e_params}, x_b, rngs={'dropout': k_b})
    terms['cc'] = (r.cc, regularizers.cycle_consistency(z_a, z_b, z))
  if r.pl_content or r.pl_style:
    feats = [_pl_features(config, frozen['pl'], x) for x in (x_a, x_b)]
    real_style = [jax.lax.stop_gradient(_pl_features(config, frozen['pl'], x)[0]) for x in real]
    per_sample = r.pl_gram == 'per_sample'
    style = sum(regularizers.style_loss(f[0], s, per_sample) for f, s in zip(feats, real_style))
    terms['pl_style'] = (r.pl_style, style)
    terms['pl_content'] = (r.pl_content, regularizers.content_loss(feats[0][1], feats[1][1]))
  return terms


def train_step(config, state: TrainState, batch):
  """One D update, then config.g_steps G updates, on {'a', 'b'} uint8 batches."""
  g, d = build_models(config)
  g_tx = _adam(config, config.optim.g_lr, state.g_params)
  d_tx = _adam(config, config.optim.d_lr, state.d_params)
  keys = jax.random.split(jax.random.fold_in(state.key, state.step), 8)
  flip_b = config.data_b.flip if config.data_b.name else config.data.flip
  real = (feeding.to_model_input(batch['a'], keys[0], config.data.flip),
          feeding.to_model_input(batch['b'], keys[1], flip_b))
  n = real[0].shape[0]

  z = parallel.shard_batch(sample_latents(config, keys[2], n))
  (fake_a, fake_b, _, _), g_stats = _apply(g, state.g_params, state.g_stats, z, rng=keys[3])
  fake = jax.lax.stop_gradient((fake_a, fake_b))
  real_target = 1.0 - config.label_smoothing

  def d_loss_fn(d_params):
    if config.d_bn == 'mixed':  # real and fake of a domain in one BatchNorm batch (Caffe)
      (l_a, l_b), stats = _apply(d, d_params, state.d_stats, *(
          parallel.concat_batch([r, f]) for r, f in zip(real, fake)), rng=keys[4])
      (r_a, f_a), (r_b, f_b) = (parallel.split_batch(l, [n, n]) for l in (l_a, l_b))
    else:
      (r_a, r_b), stats = _apply(d, d_params, state.d_stats, *real, rng=keys[4])
      (f_a, f_b), stats = _apply(d, d_params, stats, *fake, rng=keys[5])
    loss = (_bce(r_a, real_target) + _bce(f_a, 0.0) + _bce(r_b, real_target) + _bce(f_b, 0.0))
    aux = {'real_score': (r_a.mean() + r_b.mean()) / 2, 'fake_score': (f_a.mean() + f_b.mean()) / 2}
    return loss, (stats, aux)

  (d_loss, (d_stats, aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  z = parallel.shard_batch(sample_latents(config, keys[6], n))
  e_tx = _adam(config, config.optim.g_lr, state.e_params)
  g_params, g_opt, e_params, e_opt = state.g_params, state.g_opt, state.e_params, state.e_opt
  for i in range(config.g_steps):  # the same z each time, as andrewliao11's second G step
    k_g, k_d, k_e = jax.random.split(jax.random.fold_in(keys[7], i), 3)

    def g_loss_fn(g_params, e_params):
      gen, new_stats = _apply(g, g_params, g_stats, z, rng=k_g)
      (l_a, l_b), _ = _apply(d, d_params, d_stats, gen[0], gen[1], rng=k_d)
      adv = _bce(l_a, 1.0) + _bce(l_b, 1.0)  # non-saturating
      terms = g_regularizers(config, state.frozen, g_params, e_params, z, gen, real, k_e)
      total = adv + sum(w * v for w, v in terms.values())
      cc = terms['cc'][1] if 'cc' in terms else jnp.zeros(())
      return (total, cc), (new_stats, {'g_adv': adv, **{k: v for k, (_, v) in terms.items()}})

    (g_loss, _), vjp, (g_stats, g_aux) = jax.vjp(g_loss_fn, g_params, e_params, has_aux=True)
    g_grads = vjp((jnp.ones(()), jnp.zeros(())))[0]
    g_updates, g_opt = g_tx.update(g_grads, g_opt, g_params)
    if config.reg.cc:  # the encoder learns CC alone (times reg.cc_encoder), same forward pass
      e_grads = vjp((jnp.zeros(()), jnp.full((), config.reg.cc_encoder)))[1]
      e_updates, e_opt = e_tx.update(e_grads, e_opt, e_params)
      e_params = optax.apply_updates(e_params, e_updates)
    g_params = optax.apply_updates(g_params, g_updates)

  new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                            g_stats=g_stats, d_stats=d_stats, g_opt=g_opt, d_opt=d_opt,
                            e_params=e_params, e_opt=e_opt)
  encoder = health.norms('e', e_grads, state.e_params, e_params) if config.reg.cc else {}
  return new_state, {'d_loss': d_loss, 'g_loss': g_loss, **aux, **g_aux, **encoder,
                     **health.norms('g', g_grads, state.g_params, g_params),
                     **health.norms('d', d_grads, state.d_params, d_params)}


def generate(config, state: TrainState, z):
  """(x_a, x_b) for latents z: the two domains' images of each z, in [-1, 1].

  BatchNorm uses its running averages (model.sample_mode='running'), so an image depends on its
  own z only; 'batch' normalises with the statistics of this batch of z, as in training.
  """
  g, _ = build_models(config)
  variables = {'params': state.g_params, **state.g_stats}
  if config.model.sample_mode == 'batch':
    out, _ = g.apply(variables, z, train=True, mutable=['batch_stats'])
  else:
    out = g.apply(variables, z, train=False)
  return out[0], out[1]


def eval_domains(config):
  """FID & co. per domain, each against its own stream of reals (metrics.md §6)."""
  del config
  return ('a', 'b')


def eval_sets(config, outputs, domain):
  del config
  return {'': outputs['ab'.index(domain)]}


def real_eval_sets(config, images, domain):
  del config, domain
  return {'': images}


def forward_flops(config):
  """Forward FLOPs of G (one z, both domains' images) and of D (one image of each domain),
  from the layer shapes: shared layers count once in G and twice in D, as they run."""
  g, d = build_models(config)
  key = jax.random.PRNGKey(0)
  z = jax.ShapeDtypeStruct((1, config.model.latent_size), jnp.float32)
  x = jax.ShapeDtypeStruct((1,) + image_shape(config), jnp.float32)
  _, g_flops = layers.traced_flops(functools.partial(g.init, key), z)
  _, d_flops = layers.traced_flops(lambda x: d.init({'params': key, 'dropout': key}, x, x), x)
  return g_flops, d_flops


def flops(config):
  """(reference, necessary) FLOPs per pair (one image of each domain) of one step.

  The D step: G forward (1G), D forward on the real and the fake pairs with weight and input
  gradients (6D). Each G step: a new G forward and its backward (3G), D forward and input
  gradients only (2D). The SCoGAN/CoGAN references execute the same (their D step takes G(z)
  outside the tape and the G step draws a new z), so both figures are 1G + 6D + g_steps x (3G +
  2D). The couplings' networks (classifier, encoder, VGG) are extra.
  """
  g, d = forward_flops(config)
  total = g + 6 * d + config.g_steps * (3 * g + 2 * d)
  return total, total


def sheets(config, outputs):
  """One pair sheet: column = one z, the domain-a row above the domain-b row."""
  return [('pairs', *figures_lib.pair_rows(*outputs))]


@functools.lru_cache(maxsize=8)
def _generate_fn(config_json):
  config = ml_collections.ConfigDict(json.loads(config_json))
  return jax.jit(functools.partial(generate, config))


def _generate_all(config, state, z, chunk=500):
  fn = _generate_fn(config.to_json())
  out = [parallel.to_host(fn(state, z[i:i + chunk])) for i in range(0, len(z), chunk)]
  return tuple(np.concatenate(x) for x in zip(*out))


def evaluate(config, state):
  """Pair agreement of eval.num_pairs fixed latents (metrics.md §6): pixel agreement when
  domain b is a pixel transform of a, classifier pair agreement (and its chance level) when
  eval.classifier names a classifier workdir. For negative and rotate pairs domain b's images
  are transformed back before classification, so a classifier of domain a judges both."""
  n = config.eval.num_pairs
  if not n or (config.pair.transform == 'none' and not config.eval.classifier):
    return {}
  z = sample_latents(config, jax.random.PRNGKey(config.seed + 2), n)
  x_a, x_b = _generate_all(config, state, z)
  out = {}
  if config.pair.transform != 'none':
    out['pixel_agreement'] = agreement.pixel_agreement(x_a, x_b, config.pair.transform,
                                                          crop=config.pair.pad)
  if config.eval.classifier:
    from gans.methods import classifier  # pylint: disable=g-import-not-at-top
    frozen = classifier.load_frozen(config.eval.classifier)
    labels = [frozen.predict_all(figures_lib.to_uint8(x)) for x in (x_a, _undo(config, x_b))]
    agree, chance = agreement.classifier_agreement(*labels, frozen.config.model.num_classes)
    out['pair_agreement'], out['pair_agreement_chance'] = agree, chance
  return out


def _undo(config, x_b):
  """Domain-b images in domain a's look where the pair's transform is invertible. The padded
  border stays black: the transform never touched it."""
  if config.pair.transform == 'negative':
    p = config.pair.pad
    inner = -x_b[:, p:x_b.shape[1] - p, p:x_b.shape[2] - p]
    return np.pad(inner, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=-1.0)
  if config.pair.transform == 'rotate':
    return np.rot90(x_b, -1, axes=(1, 2))
  return x_b


def translate(config, state, x_a, steps, lr=0.01, seed=0):
  """Cross-domain translation (CoGAN §5): z* = argmin_z mean|G_a(z) - x_a| by Adam from a
  random start, then (G_a(z*), G_b(z*)). Uniform latents are kept in [-1, 1]."""
  g, _ = build_models(config)
  variables = {'params': state.g_params, **state.g_stats}
  z = figures_lib.fit_latents(lambda z: g.apply(variables, z, train=False)[0], x_a,
                              sample_latents(config, jax.random.PRNGKey(seed), len(x_a)), steps,
                              lr, 1.0 if config.latent_dist == 'uniform' else None)
  x, y = g.apply(variables, z, train=False)[:2]
  return np.asarray(x), np.asarray(y)


def figures(config, state, workdir, num=12, seed=0):
  """Write the coupled figures into workdir/figures/ and return their paths: the pair sheet,
  slerp walks rendered in both domains, and cross-domain translation of real domain-a images
  (rows: input, its reconstruction G_a(z*), the translation G_b(z*))."""
  state = jax.device_get(state)
  step = int(state.step)
  out_dir = os.path.join(workdir, 'figures')
  paths = []
  z = np.asarray(sample_latents(config, jax.random.PRNGKey(seed), 2 * num))
  images, ncol = figures_lib.pair_rows(*_generate_all(config, state, z[:num]))
  paths.append(figures_lib.save_grid(images, os.path.join(out_dir, f'pairs_step_{step:08d}.png'),
                                     ncol))
  walk = figures_lib.slerp_walk(z[:4], z[num:num + 4], 10)  # 4 walks of 10 points
  a, b = _generate_all(config, state, walk.reshape(-1, walk.shape[-1]))
  rows = [r for i in range(4) for r in (a[i * 10:(i + 1) * 10], b[i * 10:(i + 1) * 10])]
  paths.append(figures_lib.save_grid(np.concatenate(rows),
                                     os.path.join(out_dir, f'walk_step_{step:08d}.png'), 10))
  if config.eval.translation_steps:
    source = sources(config)['a']
    real = feeding.to_model_input(source[np.arange(min(num, len(source)))], None, False)
    rec, trans = translate(config, state, real, config.eval.translation_steps)
    paths.append(figures_lib.save_grid(np.concatenate([np.asarray(real), rec, trans]),
                                       os.path.join(out_dir, f'translation_step_{step:08d}.png'),
                                       len(real)))
  return paths


_COUPLED = dict(
    validate=validate, sources=sources, example_spec=example_spec, image_shape=image_shape,
    init_state=init_state, train_step=train_step, tiny_model=TINY_MODEL, progress=PROGRESS,
    sample_latents=sample_latents, generate=generate, sheets=sheets, evaluate=evaluate,
    figures=figures, flops=flops, eval_sets=eval_sets, real_eval_sets=real_eval_sets,
    eval_domains=eval_domains)
COGAN = methods.Method(name='cogan', defaults=functools.partial(defaults, 'cogan'), **_COUPLED)
SCOGAN = methods.Method(name='scogan', defaults=functools.partial(defaults, 'scogan'),
                        **_COUPLED)
