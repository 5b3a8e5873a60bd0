"""The coupled training state and step: models, optimizers, the couplings' terms, generation.

One step = one D update then `coupled.g_steps` G updates (spec §4 #5-6), each with its own z.
Both games are summed into one loss per network and differentiated once: a shared parameter
gets the gradients of both domains' losses, and a coupling term added to both generators'
losses (as the reference does, each generator updated from its own loss only) gets exactly the
reference's per-generator gradient, since neither adversarial loss depends on the other
generator. Frozen networks (SL's classifier, PL's feature net) are not in the state: the trainer
loads them once (`frozen_nets`), passes them to every step as an argument and records their digests
in the config, so checkpoints hold only what is trained and a resume with other weights is
refused (gans.models.frozen); they are never differentiated.
"""
import functools
import json
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gans import health, layers, parallel, regularizers
from gans.data import feeding, pairs
from gans.methods import common
from gans.models import cogan as models
from gans.models import frozen as frozen_models


@flax.struct.dataclass
class TrainState(common.GanState):
  g_stats: Any  # BatchNorm running statistics ({'batch_stats': ...} or {})
  d_stats: Any
  g_opt: Any
  d_opt: Any
  e_params: Any  # CC's shared encoder ({} without CC)
  e_opt: Any


def layer_lists(config: ml_collections.ConfigDict):
  """(G's blocks, D's blocks) of config.model."""
  m = config.model
  return (models.generator_layers(m.arch, m.resolution, m.image_channels, m.g_divisor),
          models.discriminator_layers(m.arch, m.resolution, m.d_divisor, m.d_dropout))


def build_models(config: ml_collections.ConfigDict):
  m = config.model
  g_layers, d_layers = layer_lists(config)
  dtype = jnp.dtype(m.dtype)
  g = models.CoupledGenerator(g_layers, m.g_shared, m.weight_init, m.prelu_init, dtype)
  d = models.CoupledDiscriminator(d_layers, m.d_shared, m.weight_init, m.prelu_init, dtype)
  return g, d


def encoder(config: ml_collections.ConfigDict):
  return models.Encoder(config.model.latent_size, config.model.g_divisor,
                        config.reg.cc_dropout)


def adam(config: ml_collections.ConfigDict, lr, params):
  """Adam with coupled L2 on kernels (added to the gradient before the Adam scaling, Caffe's
  and PyTorch's weight_decay; not AdamW), spec §6."""
  o = config.optim
  mask = jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)
  return optax.chain(optax.add_decayed_weights(o.weight_decay, mask),
                     optax.scale_by_adam(o.b1, o.b2, 1e-8), optax.scale(-lr))


def image_shape(config: ml_collections.ConfigDict):
  m = config.model
  return (m.resolution, m.resolution, m.image_channels)


def sources(config: ml_collections.ConfigDict):
  return pairs.make_sources(config, *image_shape(config)[1:])


def example_spec(config: ml_collections.ConfigDict):
  spec = jax.ShapeDtypeStruct(image_shape(config), jnp.uint8)
  return {'a': spec, 'b': spec}


def sample_latents(config: ml_collections.ConfigDict, key, n):
  shape = (n, config.model.latent_size)
  if config.coupled.latent_dist == 'normal':
    return jax.random.normal(key, shape)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


def init_state(config: ml_collections.ConfigDict, key):
  g, d = build_models(config)
  k_state, k_g, k_d, k_e = jax.random.split(key, 4)
  z = jnp.zeros((1, config.model.latent_size))
  g_params, g_stats = layers.split_variables(g.init(k_g, z))
  x = jnp.zeros((1,) + image_shape(config))
  d_params, d_stats = layers.split_variables(d.init({'params': k_d, 'dropout': k_d}, x, x))
  e_params = encoder(config).init(k_e, x, train=False)['params'] if config.reg.cc else {}
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, g_params=g_params,
                    d_params=d_params, g_stats=g_stats, d_stats=d_stats,
                    g_opt=adam(config, config.optim.g_lr, g_params).init(g_params),
                    d_opt=adam(config, config.optim.d_lr, d_params).init(d_params),
                    e_params=e_params,
                    e_opt=adam(config, config.optim.g_lr, e_params).init(e_params))


def frozen_nets(config: ml_collections.ConfigDict):
  """{'sl': classifier, 'pl': feature net} (gans.models.frozen.Net) of the networks config.reg
  uses, loaded on this host: Method.frozen. train_step takes their params as `frozen`."""
  return frozen_models.load(config.reg, config.model.g_divisor, image_shape(config))


def _bce(logits, target):
  """Mean sigmoid cross-entropy with a constant target in [0, 1]."""
  return jnp.mean(target * jax.nn.softplus(-logits) + (1 - target) * jax.nn.softplus(logits))


def train_apply(model, params, stats, *args, rng):
  """Training-mode apply: BatchNorm uses and updates batch statistics, dropout is on."""
  return common.apply_with_stats(model, params, stats, *args, collection='batch_stats',
                                  train=True, rngs={'dropout': rng})


def g_regularizers(config: ml_collections.ConfigDict, frozen, g_params, e_params, z, gen, real,
                   key):
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
    probs = [frozen_models.classifier_probabilities(r.sl_classifier, frozen['sl'], x)
             for x in (x_a, x_b)]
    terms['sl'] = (r.sl, regularizers.semantic_loss(*probs))
  if r.cc:
    enc = encoder(config)
    k_a, k_b = jax.random.split(key)
    z_a = enc.apply({'params': e_params}, x_a, rngs={'dropout': k_a})
    z_b = enc.apply({'params': e_params}, x_b, rngs={'dropout': k_b})
    terms['cc'] = (r.cc, regularizers.cycle_consistency(z_a, z_b, z))
  if r.pl_content or r.pl_style:
    pl = functools.partial(frozen_models.perceptual_features, r, config.model.g_divisor,
                           frozen['pl'])
    feats = [pl(x) for x in (x_a, x_b)]
    real_style = [jax.lax.stop_gradient(pl(x)[0]) for x in real]
    per_sample = r.pl_gram == 'per_sample'
    style = sum(regularizers.style_loss(f[0], s, per_sample) for f, s in zip(feats, real_style))
    terms['pl_style'] = (r.pl_style, style)
    terms['pl_content'] = (r.pl_content, regularizers.content_loss(feats[0][1], feats[1][1]))
  return terms


def train_step(config: ml_collections.ConfigDict, state: TrainState, batch, frozen=None):
  """One D update, then config.coupled.g_steps G updates, on {'a', 'b'} uint8 batches.

  frozen: {'sl': params, 'pl': params} of the networks config.reg uses (the params of
  frozen_nets(config); the trainer passes them replicated, never donated); None loads them
  here, as constants of the compiled step (for direct calls).
  """
  if frozen is None:
    frozen = frozen_models.params(frozen_models.load(config.reg, config.model.g_divisor,
                                                     image_shape(config)))
  g, d = build_models(config)
  o, knobs = config.optim, config.coupled
  g_tx, d_tx = adam(config, o.g_lr, state.g_params), adam(config, o.d_lr, state.d_params)
  keys = jax.random.split(jax.random.fold_in(state.key, state.step), 8)
  flip_b = config.data_b.flip if config.data_b.name else config.data.flip
  real = (feeding.to_model_input(batch['a'], keys[0], config.data.flip),
          feeding.to_model_input(batch['b'], keys[1], flip_b))
  n = real[0].shape[0]

  z = parallel.shard_batch(sample_latents(config, keys[2], n))
  (fake_a, fake_b, _, _), g_stats = train_apply(g, state.g_params, state.g_stats, z, rng=keys[3])
  fake = jax.lax.stop_gradient((fake_a, fake_b))
  real_target = 1.0 - knobs.label_smoothing

  def d_loss_fn(d_params):
    if knobs.d_bn == 'mixed':  # real and fake of a domain in one BatchNorm batch (Caffe)
      (l_a, l_b), stats = train_apply(d, d_params, state.d_stats, *(
          parallel.concat_batch([r, f]) for r, f in zip(real, fake)), rng=keys[4])
      (r_a, f_a), (r_b, f_b) = (parallel.split_batch(l, [n, n]) for l in (l_a, l_b))
    else:
      (r_a, r_b), stats = train_apply(d, d_params, state.d_stats, *real, rng=keys[4])
      (f_a, f_b), stats = train_apply(d, d_params, stats, *fake, rng=keys[5])
    loss = (_bce(r_a, real_target) + _bce(f_a, 0.0) + _bce(r_b, real_target) + _bce(f_b, 0.0))
    aux = {'real_score': (r_a.mean() + r_b.mean()) / 2, 'fake_score': (f_a.mean() + f_b.mean()) / 2}
    return loss, (stats, aux)

  (d_loss, (d_stats, aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  z = parallel.shard_batch(sample_latents(config, keys[6], n))
  e_tx = adam(config, o.g_lr, state.e_params)  # the encoder learns at G's rate
  g_params, g_opt, e_params, e_opt = state.g_params, state.g_opt, state.e_params, state.e_opt
  for i in range(knobs.g_steps):  # the same z each time, as andrewliao11's second G step
    k_g, k_d, k_e = jax.random.split(jax.random.fold_in(keys[7], i), 3)

    def g_loss_fn(g_params, e_params):
      gen, new_stats = train_apply(g, g_params, g_stats, z, rng=k_g)
      (l_a, l_b), _ = train_apply(d, d_params, d_stats, gen[0], gen[1], rng=k_d)
      adv = _bce(l_a, 1.0) + _bce(l_b, 1.0)  # non-saturating
      terms = g_regularizers(config, frozen, g_params, e_params, z, gen, real, k_e)
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
  lrs = {'g_lr': o.g_lr, 'd_lr': o.d_lr, **({'e_lr': o.g_lr} if config.reg.cc else {})}
  encoder_norms = health.norms('e', e_grads, state.e_params, e_params) if config.reg.cc else {}
  return new_state, {'d_loss': d_loss, 'g_loss': g_loss, **aux, **g_aux, **encoder_norms,
                     **health.norms('g', g_grads, state.g_params, g_params),
                     **health.norms('d', d_grads, state.d_params, d_params),
                     **{k: jnp.float32(v) for k, v in lrs.items()}}


def generate(config: ml_collections.ConfigDict, state: TrainState, z):
  """(x_a, x_b) for latents z: the two domains' images of each z, in [-1, 1].

  BatchNorm uses its running averages (model.sample_mode='running'), so an image depends on its
  own z only; 'batch' normalises with the statistics of this batch of z, as in training.
  """
  return apply_generator(config, generator_variables(config, state), z)


def generator_variables(config: ml_collections.ConfigDict, state: TrainState):
  """G's params and its BatchNorm statistics."""
  del config
  return {'params': state.g_params, **state.g_stats}


def apply_generator(config: ml_collections.ConfigDict, variables, z):
  """(x_a, x_b) of the generator on generator_variables, as generate() describes."""
  g, _ = build_models(config)
  if config.model.sample_mode == 'batch':
    out, _ = g.apply(variables, z, train=True, mutable=['batch_stats'])
  else:
    out = g.apply(variables, z, train=False)
  return out[0], out[1]


@functools.lru_cache(maxsize=8)
def _generate_fn(config_json):
  config = ml_collections.ConfigDict(json.loads(config_json))
  return jax.jit(functools.partial(generate, config))


def generate_all(config: ml_collections.ConfigDict, state: TrainState, z, chunk=500):
  """Host (x_a, x_b) of many latents, generated in jitted chunks."""
  fn = _generate_fn(config.to_json())
  out = [parallel.to_host(fn(state, z[i:i + chunk])) for i in range(0, len(z), chunk)]
  return tuple(np.concatenate(x) for x in zip(*out))


def forward_flops(config: ml_collections.ConfigDict):
  """Forward FLOPs of G (one z, both domains' images) and of D (one image of each domain),
  from the layer shapes: shared layers count once in G and twice in D, as they run."""
  g, d = build_models(config)
  key = jax.random.PRNGKey(0)
  z = jax.ShapeDtypeStruct((1, config.model.latent_size), jnp.float32)
  x = jax.ShapeDtypeStruct((1,) + image_shape(config), jnp.float32)
  _, g_flops = layers.traced_flops(functools.partial(g.init, key), z)
  _, d_flops = layers.traced_flops(lambda x: d.init({'params': key, 'dropout': key}, x, x), x)
  return g_flops, d_flops


def flops(config: ml_collections.ConfigDict):
  """(reference, necessary) FLOPs per pair (one image of each domain) of one step.

  The D step: G forward (1G), D forward on the real and the fake pairs with weight and input
  gradients (6D). Each G step: a new G forward and its backward (3G), D forward and input
  gradients only (2D). The SCoGAN/CoGAN references execute the same (their D step takes G(z)
  outside the tape and the G step draws a new z), so both figures are 1G + 6D + g_steps x (3G +
  2D). The couplings' networks (classifier, encoder, VGG) are extra.
  """
  g, d = forward_flops(config)
  total = g + 6 * d + config.coupled.g_steps * (3 * g + 2 * d)
  return total, total
