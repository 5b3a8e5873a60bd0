"""MSG-GAN training: one D step then one G step on the same z, then the EMA of G.

The step differentiates only what it updates: the D step treats G's output as a constant, the
G step takes gradients with respect to G alone (XLA drops D's weight gradients) and evaluates
D(real), when the loss needs it, outside the differentiated function.
"""
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from gans import figures, layers, losses, regularizers
from gans.data import feeding
from gans.models import msggan as models

SPECTRAL = 'spectral'


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  key: jax.Array  # base key: step s uses fold_in(key, s), so a resume replays the same draws
  g_params: Any
  d_params: Any
  g_ema: Any
  g_opt: Any
  d_opt: Any
  g_stats: Any  # spectral-norm power-iteration vectors ({} without spectral norm)
  d_stats: Any


def resolution(config):
  return 2 ** (config.model.depth + 1)


def image_shape(config):
  r = resolution(config)
  return (r, r, config.model.image_channels)


def build_models(config):
  m = config.model
  dtype = jnp.dtype(m.dtype)
  g = models.Generator(depth=m.depth, width=m.width, image_channels=m.image_channels,
                       equalized=m.equalized, spectral_norm=m.spectral_norm,
                       dilation=m.g_dilation, pixelnorm=m.pixelnorm, tanh=m.tanh, dtype=dtype)
  d = models.Discriminator(depth=m.depth, width=m.width, combine=m.combine, mbstd=m.mbstd,
                           equalized=m.equalized, spectral_norm=m.spectral_norm,
                           dilation=m.d_dilation, dtype=dtype)
  return g, d


def optimizers(config):
  o = config.optim
  return (optax.adam(o.g_lr, o.b1, o.b2, o.eps), optax.adam(o.d_lr, o.b1, o.b2, o.eps))


def sample_latents(config, key, n):
  """z ~ N(0, I), rescaled to norm sqrt(latent_size) when config.normalize_latents (BMSG-GAN)."""
  z = jax.random.normal(key, (n, config.model.latent_size))
  if config.normalize_latents:
    z = z * (math.sqrt(config.model.latent_size) / jnp.linalg.norm(z, axis=-1, keepdims=True))
  return z


def _split(variables):
  variables = dict(variables)
  params = variables.pop('params')
  return params, variables


def init_state(config, key):
  g, d = build_models(config)
  g_opt, d_opt = optimizers(config)
  k_state, k_g, k_d = jax.random.split(key, 3)
  z = jnp.zeros((1, config.model.latent_size))
  g_params, g_stats = _split(g.init(k_g, z))
  d_params, d_stats = _split(d.init(k_d, g.apply({'params': g_params, **g_stats}, z)))
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, g_params=g_params,
                    d_params=d_params, g_ema=jax.tree.map(jnp.copy, g_params),  # own buffers,
                    g_opt=g_opt.init(g_params),  # so the state can be donated leaf by leaf
                    d_opt=d_opt.init(d_params), g_stats=g_stats, d_stats=d_stats)


def _apply(model, params, stats, x):
  """Apply in training mode: spectral-norm vectors advance; returns (output, new stats)."""
  out, new = model.apply({'params': params, **stats}, x, mutable=[SPECTRAL])
  return out, {**stats, **new}


def train_step(config, state: TrainState, images):
  """One MSG-GAN iteration on a uint8 batch (B, R, R, C). Returns (state, metrics)."""
  g, d = build_models(config)
  g_tx, d_tx = optimizers(config)
  loss = losses.get(config.loss.name)
  depth = config.model.depth
  k_flip, k_z, k_pen, k_zg = jax.random.split(jax.random.fold_in(state.key, state.step), 4)

  x = feeding.to_model_input(images, k_flip, config.data.flip)
  real = layers.image_pyramid(x, depth)
  batch = x.shape[0]
  z = sample_latents(config, k_z, batch)

  fake, g_stats = _apply(g, state.g_params, state.g_stats, z)
  fake = jax.lax.stop_gradient(fake)

  def d_loss_fn(d_params):
    r, stats = _apply(d, d_params, state.d_stats, real)
    f, stats = _apply(d, d_params, stats, fake)
    d_fn = lambda xs: d.apply({'params': d_params, **stats}, xs)
    total = loss.d(r, f) + loss.drift * jnp.mean(r * r)
    aux = {'real_score': jnp.mean(r), 'fake_score': jnp.mean(f)}
    if loss.penalty == 'gp':
      aux['gp'] = regularizers.gradient_penalty(d_fn, real, fake, k_pen)
      total += config.loss.gp_weight * aux['gp']
    elif loss.penalty == 'r1':
      aux['r1'] = regularizers.r1_penalty(lambda full: d_fn(layers.image_pyramid(full, depth)), x)
      total += 0.5 * config.loss.r1_gamma * aux['r1']
    return total, (stats, aux)

  (d_loss, (d_stats, aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  z_g = sample_latents(config, k_zg, batch) if config.fresh_g_latents else z
  r = None
  if loss.g_uses_real:
    r, d_stats = _apply(d, d_params, d_stats, real)
    r = jax.lax.stop_gradient(r)

  def g_loss_fn(g_params):
    fake, new_g_stats = _apply(g, g_params, g_stats, z_g)
    f, new_d_stats = _apply(d, d_params, d_stats, fake)
    return loss.g(r, f), (new_g_stats, new_d_stats)

  (g_loss, (g_stats, d_stats)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
      state.g_params)
  g_updates, g_opt = g_tx.update(g_grads, state.g_opt, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  g_ema = optax.incremental_update(g_params, state.g_ema, 1.0 - config.ema_decay)

  new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                            g_ema=g_ema, g_opt=g_opt, d_opt=d_opt, g_stats=g_stats,
                            d_stats=d_stats)
  return new_state, {'d_loss': d_loss, 'g_loss': g_loss, **aux}


def generate(config, state: TrainState, z, ema=True):
  """All scales of the (EMA) generator for latents z, low -> high resolution."""
  g, _ = build_models(config)
  params = state.g_ema if ema else state.g_params
  return g.apply({'params': params, **state.g_stats}, z)


def eval_sets(config, outputs):
  """The image sets metrics are computed on: '' (the headline) is full resolution, and every
  lower output scale is its own set ('4x4', ...), for per-scale FID (metrics spec 7.1)."""
  *lower, full = outputs
  return {'': full, **{f'{s.shape[1]}x{s.shape[1]}': s for s in lower}}


def real_eval_sets(config, images):
  """The same sets from real [-1, 1] images: the training pyramid (box pooling) of the batch."""
  return eval_sets(config, layers.image_pyramid(images, config.model.depth))


def sheets(config, outputs):
  """Sample sheets from host copies of generate()'s outputs: (name, images, columns) triples.

  One sheet per scale, nearest-upsampled to full size, and one with each latent's scales side
  by side (the first 8 latents, one per row).
  """
  full = outputs[-1].shape[1]
  out = [(f'{s.shape[1]}x{s.shape[1]}', figures.upsample(s, full // s.shape[1]), None)
         for s in outputs]
  out.append(('all_scales', figures.scales_side_by_side([s[:8] for s in outputs]), 1))
  return out
