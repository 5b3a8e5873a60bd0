"""MSG-GAN training: one D step then one G step on the same z, then the EMA of G.

The step differentiates only what it updates: the D step treats G's output as a constant, the
G step takes gradients with respect to G alone (XLA drops D's weight gradients) and evaluates
D(real), when the loss needs it, outside the differentiated function. G's params do not change
between the two updates, so the G step reuses the D step's G forward through its VJP; and on
several devices the D step scores the real and the fake batch in one pass, so D's weight
gradients are summed on each device and all-reduced once.
"""
import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gans import config as config_lib
from gans import methods
from gans import figures, health, latents, layers, losses, parallel, regularizers
from gans.methods import common
from gans.data import feeding
from gans.models import msggan as models

SPECTRAL = 'spectral'
PROGRESS = ('d_loss', 'g_loss')
TINY_MODEL = dict(depth=2, width=16, latent_size=16)  # 8x8: what config.make_tiny shrinks to


def defaults() -> ml_collections.ConfigDict:
  """BMSG-GAN's own defaults (spec §10), on the embedded digits."""
  c = config_lib.base_defaults('msggan')
  c.model = ml_collections.ConfigDict()
  c.model.depth = 4
  c.model.resolution = ml_collections.config_dict.placeholder(int)  # optional; must be 2^(depth+1)
  c.model.latent_size = 512
  c.model.width = 512  # BMSG-GAN's 512; the channel rule scales with it
  c.model.image_channels = 3
  c.model.combine = 'simple'  # 'simple' (= 'lin_cat'), 'raw', 'cat_lin'
  c.model.mbstd = 'bmsg'  # 'bmsg' (one scalar), 'v1' (H x W map), 'none'
  c.model.equalized = True
  c.model.spectral_norm = False
  c.model.g_dilation = 1
  c.model.d_dilation = 1
  c.model.pixelnorm = True
  c.model.tanh = False
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.loss = ml_collections.ConfigDict()
  c.loss.name = 'relativistic-hinge'
  c.loss.gp_weight = 10.0  # wgan-gp; the penalty is averaged over the scale inputs
  c.loss.r1_gamma = 10.0  # ns-r1; adds gamma/2 * R1

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 0.003
  c.optim.d_lr = 0.003
  c.optim.b1 = 0.0
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8

  c.msggan = ml_collections.ConfigDict()  # the method's own knobs
  c.msggan.ema_decay = 0.999
  c.msggan.normalize_latents = True
  c.msggan.fresh_g_latents = False  # MSG-GAN v1 draws a new z for the G step
  return c


def validate(config: ml_collections.ConfigDict):
  check = config_lib.check
  m = config.model
  check(1 <= m.depth <= 9, f'model.depth={m.depth} is out of range; MSG-GAN supports 1..9 '
        '(4x4 to 1024x1024)')
  res = resolution(config)
  check(m.resolution is None or m.resolution == res,
        f'model.resolution={m.resolution} is not 2^(depth+1)={res} for model.depth={m.depth}; '
        f'set --config.model.depth to match (resolution 2^(depth+1))')
  check(m.latent_size > 0, f'model.latent_size={m.latent_size} must be positive')
  check(m.width >= models.min_width(m.depth) and m.width & (m.width - 1) == 0,
        f'model.width={m.width} must be a power of two >= {models.min_width(m.depth)} '
        f'at depth {m.depth} (widths halve per level above 32x32)')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  check(m.combine in models.COMBINES,
        f'model.combine={m.combine!r}; choose one of {", ".join(models.COMBINES)}')
  check(m.mbstd in models.MBSTD_VARIANTS,
        f'model.mbstd={m.mbstd!r}; choose one of {", ".join(models.MBSTD_VARIANTS)}')
  config_lib.check_dtype(m.dtype)
  check(m.g_dilation >= 1 and m.d_dilation >= 1, 'model.g_dilation and d_dilation must be >= 1')
  losses.get(config.loss.name)
  check(0.0 <= config.msggan.ema_decay < 1.0,
        f'msggan.ema_decay={config.msggan.ema_decay} must be in [0, 1)')
  check(config.optim.g_lr > 0 and config.optim.d_lr > 0, 'optim.g_lr and optim.d_lr must be > 0')
  config_lib.validate_data(config.data)


@flax.struct.dataclass
class TrainState(common.GanState):
  g_ema: Any
  g_opt: Any
  d_opt: Any
  g_stats: Any  # spectral-norm power-iteration vectors ({} without spectral norm)
  d_stats: Any


def resolution(config: ml_collections.ConfigDict):
  return 2 ** (config.model.depth + 1)


def image_shape(config: ml_collections.ConfigDict):
  r = resolution(config)
  return (r, r, config.model.image_channels)


sources, example_spec = methods.one_image_stream(image_shape)


def build_models(config: ml_collections.ConfigDict):
  m = config.model
  dtype = jnp.dtype(m.dtype)
  g = models.Generator(depth=m.depth, width=m.width, image_channels=m.image_channels,
                       equalized=m.equalized, spectral_norm=m.spectral_norm,
                       dilation=m.g_dilation, pixelnorm=m.pixelnorm, tanh=m.tanh, dtype=dtype)
  d = models.Discriminator(depth=m.depth, width=m.width, combine=m.combine, mbstd=m.mbstd,
                           equalized=m.equalized, spectral_norm=m.spectral_norm,
                           dilation=m.d_dilation, dtype=dtype)
  return g, d


def optimizers(config: ml_collections.ConfigDict):
  o = config.optim
  return (optax.adam(o.g_lr, o.b1, o.b2, o.eps), optax.adam(o.d_lr, o.b1, o.b2, o.eps))


def _normalize(config: ml_collections.ConfigDict, z):
  if config.msggan.normalize_latents:
    z = z * (math.sqrt(config.model.latent_size) / jnp.linalg.norm(z, axis=-1, keepdims=True))
  return z


def sample_latents(config: ml_collections.ConfigDict, key, n):
  """z ~ N(0, I), rescaled to norm sqrt(latent_size) when config.msggan.normalize_latents
  (BMSG-GAN)."""
  return _normalize(config, jax.random.normal(key, (n, config.model.latent_size)))


def truncated_latents(config: ml_collections.ConfigDict, key, n, threshold):
  """sample_latents' draw with its components beyond +-threshold redrawn inside, then
  normalised as sample_latents does (gans/latents.py)."""
  z = jax.random.normal(key, (n, config.model.latent_size))
  return _normalize(config, latents.truncate_normal(key, z, threshold))


def init_state(config: ml_collections.ConfigDict, key):
  g, d = build_models(config)
  g_opt, d_opt = optimizers(config)
  k_state, k_g, k_d = jax.random.split(key, 3)
  z = jnp.zeros((1, config.model.latent_size))
  g_params, g_stats = layers.split_variables(g.init(k_g, z))
  fake = g.apply({'params': g_params, **g_stats}, z)
  d_params, d_stats = layers.split_variables(d.init(k_d, fake))
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, g_params=g_params,
                    d_params=d_params, g_ema=jax.tree.map(jnp.copy, g_params),  # own buffers,
                    g_opt=g_opt.init(g_params),  # so the state can be donated leaf by leaf
                    d_opt=d_opt.init(d_params), g_stats=g_stats, d_stats=d_stats)


def train_apply(model, params, stats, x, **kwargs):
  """Apply in training mode: spectral-norm vectors advance; returns (output, new stats)."""
  return common.apply_with_stats(model, params, stats, x, collection=SPECTRAL, **kwargs)


def reuses_g_forward(config: ml_collections.ConfigDict):
  """Whether the G step can reuse the D step's G forward: G's params have not changed in
  between, so with the same z the forward is the same, unless spectral norm advances its
  vectors on every call (PyTorch's train mode) or the G step draws a new z (MSG-GAN v1)."""
  return not config.model.spectral_norm and not config.msggan.fresh_g_latents


def joins_d_passes(config: ml_collections.ConfigDict):
  """Whether the D step scores reals and fakes in one pass (minibatch statistics per batch).

  Only where the batch is split over devices: there it all-reduces D's weight gradients once
  instead of twice; on one device there is nothing to save, and XLA:CPU ran the twice-as-wide
  convolutions slower (both measured in docs/performance.md). Never with spectral norm, whose
  vectors advance once per call (PyTorch's train mode calls D twice).
  """
  return not config.model.spectral_norm and parallel.data_shards() > 1


def train_step(config: ml_collections.ConfigDict, state: TrainState, images, optimised=True):
  """One MSG-GAN iteration on a uint8 batch (B, R, R, C). Returns (state, metrics).

  optimised=False computes the same step the straightforward way, without reusing G's forward
  (reuses_g_forward) or joining D's passes (joins_d_passes): the tests' reference.
  """
  reuse = optimised and reuses_g_forward(config)
  join = optimised and joins_d_passes(config)
  g, d = build_models(config)
  g_tx, d_tx = optimizers(config)
  loss = losses.get(config.loss.name)
  depth = config.model.depth
  k_flip, k_z, k_pen, k_zg = jax.random.split(jax.random.fold_in(state.key, state.step), 4)

  x = feeding.to_model_input(images, k_flip, config.data.flip)
  real = layers.image_pyramid(x, depth)
  batch = x.shape[0]
  z = parallel.shard_batch(sample_latents(config, k_z, batch))

  g_forward = lambda params: train_apply(g, params, state.g_stats, z)
  if reuse:
    fake, g_vjp, g_stats = jax.vjp(g_forward, state.g_params, has_aux=True)
  else:
    fake, g_stats = g_forward(state.g_params)
  fake_const = jax.lax.stop_gradient(fake)

  def d_loss_fn(d_params):
    if join:
      both = [parallel.concat_batch([r, f]) for r, f in zip(real, fake_const)]
      scores, stats = train_apply(d, d_params, state.d_stats, both, groups=2)
      r, f = parallel.split_batch(scores, [batch, batch])
    else:
      r, stats = train_apply(d, d_params, state.d_stats, real)
      f, stats = train_apply(d, d_params, stats, fake_const)
    d_fn = lambda xs: d.apply({'params': d_params, **stats}, xs)
    total = loss.d(r, f) + loss.drift * jnp.mean(r * r)
    aux = {'real_score': jnp.mean(r), 'fake_score': jnp.mean(f)}
    if loss.penalty == 'gp':
      aux['gp'] = regularizers.gradient_penalty(d_fn, real, fake_const, k_pen)
      total += config.loss.gp_weight * aux['gp']
    elif loss.penalty == 'r1':
      aux['r1'] = regularizers.r1_penalty(lambda full: d_fn(layers.image_pyramid(full, depth)), x)
      total += 0.5 * config.loss.r1_gamma * aux['r1']
    return total, (stats, aux)

  (d_loss, (d_stats, aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  fresh = config.msggan.fresh_g_latents
  z_g = parallel.shard_batch(sample_latents(config, k_zg, batch)) if fresh else z
  r = None
  if loss.g_uses_real:
    r, d_stats = train_apply(d, d_params, d_stats, real)
    r = jax.lax.stop_gradient(r)

  if reuse:
    def g_loss_of_fake(fake):
      f, new_d_stats = train_apply(d, d_params, d_stats, fake)
      return loss.g(r, f), new_d_stats

    (g_loss, d_stats), fake_grads = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    g_grads, = g_vjp(fake_grads)
  else:
    def g_loss_fn(g_params):
      fake, new_g_stats = train_apply(g, g_params, g_stats, z_g)
      f, new_d_stats = train_apply(d, d_params, d_stats, fake)
      return loss.g(r, f), (new_g_stats, new_d_stats)

    (g_loss, (g_stats, d_stats)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.g_params)
  g_updates, g_opt = g_tx.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  g_ema = optax.incremental_update(g_params, state.g_ema, 1.0 - config.msggan.ema_decay)

  new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                            g_ema=g_ema, g_opt=g_opt, d_opt=d_opt, g_stats=g_stats,
                            d_stats=d_stats)
  return new_state, {'d_loss': d_loss, 'g_loss': g_loss, **aux,
                     **health.norms('g', g_grads, state.g_params, g_params),
                     **health.norms('d', d_grads, state.d_params, d_params),
                     'g_ema_param_norm': optax.global_norm(g_ema),
                     'g_lr': jnp.float32(config.optim.g_lr), 'd_lr': jnp.float32(config.optim.d_lr)}


def generator_variables(config: ml_collections.ConfigDict, state: TrainState, ema=True):
  """The (EMA) generator's variables: its params and its spectral-norm vectors."""
  del config
  return {'params': state.g_ema if ema else state.g_params, **state.g_stats}


def apply_generator(config: ml_collections.ConfigDict, variables, z):
  """All scales of the generator on `variables` for latents z, low -> high resolution."""
  g, _ = build_models(config)
  return g.apply(variables, z)


def generate(config: ml_collections.ConfigDict, state: TrainState, z, ema=True):
  """All scales of the (EMA) generator for latents z, low -> high resolution."""
  return apply_generator(config, generator_variables(config, state, ema), z)


def eval_sets(config: ml_collections.ConfigDict, outputs):
  """The image sets metrics are computed on: '' (the headline) is full resolution, and every
  lower output scale is its own set ('4x4', ...), for per-scale FID (metrics spec 7.1)."""
  *lower, full = outputs
  return {'': full, **{f'{s.shape[1]}x{s.shape[1]}': s for s in lower}}


def real_eval_sets(config: ml_collections.ConfigDict, images):
  """The same sets from real [-1, 1] images: the training pyramid (box pooling) of the batch."""
  return eval_sets(config, layers.image_pyramid(images, config.model.depth))


def sheets(config: ml_collections.ConfigDict, outputs):
  """Sample sheets from host copies of generate()'s outputs: (name, images, columns) triples.

  One sheet per scale, nearest-upsampled to full size, and one with each latent's scales side
  by side (the first 8 latents, one per row).
  """
  full = outputs[-1].shape[1]
  out = [(f'{s.shape[1]}x{s.shape[1]}', figures.upsample(s, full // s.shape[1]), None)
         for s in outputs]
  out.append(('all_scales', figures.scales_side_by_side([s[:8] for s in outputs]), 1))
  return out


def forward_flops(config: ml_collections.ConfigDict):
  """Forward FLOPs per image of the generator and the discriminator, from their layer shapes."""
  g, d = build_models(config)
  state = jax.eval_shape(functools.partial(init_state, config), jax.random.PRNGKey(0))
  z = jax.ShapeDtypeStruct((1, config.model.latent_size), jnp.float32)
  fake, g_flops = layers.traced_flops(lambda p, z: g.apply({'params': p, **state.g_stats}, z),
                                      state.g_params, z)
  _, d_flops = layers.traced_flops(lambda p, x: d.apply({'params': p, **state.d_stats}, x),
                                   state.d_params, fake)
  return g_flops, d_flops


def flops(config: ml_collections.ConfigDict):
  """(reference, necessary) FLOPs per image of one D step + one G step (spec §14).

  The reference executes 4G + 12D forwards' worth; a step that differentiates only what it
  updates needs 4G + 9D when the G loss needs D(real), 4G + 8D otherwise, and one G forward
  less when the G step reuses the D step's (reuses_g_forward). Penalties are extra.
  """
  g, d = forward_flops(config)
  uses_real = losses.get(config.loss.name).g_uses_real
  g_forwards = 3 if reuses_g_forward(config) else 4
  return 4 * g + 12 * d, g_forwards * g + (9 if uses_real else 8) * d


METHOD = methods.Method(
    name='msggan', defaults=defaults, validate=validate, sources=sources,
    example_spec=example_spec, image_shape=image_shape, init_state=init_state,
    train_step=train_step, tiny_model=TINY_MODEL, progress=PROGRESS,
    sample_latents=sample_latents, generate=generate, sheets=sheets, flops=flops,
    eval_sets=eval_sets, real_eval_sets=real_eval_sets,
    generator_variables=generator_variables, apply_generator=apply_generator,
    latent_prior=lambda config: 'normal', truncated_latents=truncated_latents)
