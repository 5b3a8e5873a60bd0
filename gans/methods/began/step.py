"""BEGAN's state and step: an autoencoder D, the k_t equilibrium controller and the measure M.

One step (spec §2, §9 decisions 6, 7, 12): z_D and z_G are separate draws (the paper's; config
`began.shared_z` uses one, as carpedm20); both gradients come from the same parameters:

  L_D = L(x) - k_t L(stop_gradient(G(z_D)))     w.r.t. D
  L_G = L(G(z_G)), D's parameters held fixed    w.r.t. G (through the target and D(G(z_G)))

then both Adam updates, then k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) from
the step's pre-update losses. M = L(x) + |gamma L(x) - L(G(z_G))| is computed every step; the
log holds M and k at the logged step and, as M_mean and k_mean, their means over the log
interval (Method.logged_at_step).

The learning rate is part of the state's arithmetic, not of optax's: Adam's direction comes from
optax.scale_by_adam and the step multiplies it by the lr of the schedule, so both schedules and
the M window they need live in the TrainState and a resumed run is the uninterrupted one.
"""
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gans import health, layers, methods, parallel
from gans.data import feeding
from gans.methods import common
from gans.models import began as models


@flax.struct.dataclass
class TrainState(common.GanState):
  g_opt: Any  # Adam moments (optax.scale_by_adam); the lr is applied in the step
  d_opt: Any
  k: jax.Array  # the equilibrium controller k_t, float32 in [0, 1]
  lr_scale: jax.Array  # plateau schedule: 0.5 ** (decays so far)
  m_sum: jax.Array  # sum of M over the current window of lr_update_step steps
  m_prev: jax.Array  # mean of M over the previous window (inf before the first)


def image_shape(config: ml_collections.ConfigDict):
  m = config.model
  return (m.resolution, m.resolution, m.image_channels)


sources, example_spec = methods.one_image_stream(image_shape)


def widths(config: ml_collections.ConfigDict):
  """(G's width, D's width): model.g_n and model.d_n, each model.n where 0 or absent (a run
  saved before the two existed)."""
  m = config.model
  return m.get('g_n', 0) or m.n, m.get('d_n', 0) or m.n


def build_models(config: ml_collections.ConfigDict):
  m = config.model
  g_n, d_n = widths(config)
  fields = dict(resolution=m.resolution, channels=m.image_channels, repeat=m.repeat,
                skip=m.skip, tanh=m.tanh, dtype=jnp.dtype(m.dtype))
  return models.Decoder(n=g_n, **fields), models.Discriminator(n=d_n, h=m.h, **fields)


def adam(config: ml_collections.ConfigDict):
  o = config.optim
  return optax.scale_by_adam(o.b1, o.b2, o.eps)


def carry(config: ml_collections.ConfigDict, step):
  """The vanishing residuals' carry at `step` (None when they are off): 1 -> 0 linearly."""
  steps = config.model.residual_steps
  return jnp.maximum(0.0, 1.0 - step / steps) if steps else None


def sample_latents(config: ml_collections.ConfigDict, key, n):
  """z ~ Uniform[-1, 1]^N_z (spec §9 decision 5)."""
  return jax.random.uniform(key, (n, config.model.z), minval=-1.0, maxval=1.0)


def init_state(config: ml_collections.ConfigDict, key):
  g, d = build_models(config)
  k_state, k_g, k_d = jax.random.split(key, 3)
  m = config.model
  g_params = g.init(k_g, jnp.zeros((1, m.z)), carry(config, 0))['params']
  d_params = d.init(k_d, jnp.zeros((1,) + image_shape(config)), carry(config, 0))['params']
  scalar = lambda v: jnp.full((), v, jnp.float32)
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, g_params=g_params,
                    d_params=d_params, g_opt=adam(config).init(g_params),
                    d_opt=adam(config).init(d_params), k=scalar(0.0), lr_scale=scalar(1.0),
                    m_sum=scalar(0.0), m_prev=scalar(jnp.inf))


def reconstruction_loss(v, reconstruction, eta=1.0):
  """L(v) = mean over pixels and batch of |v - D(v)|^eta, in float32."""
  diff = jnp.abs(v.astype(jnp.float32) - reconstruction.astype(jnp.float32))
  if eta == 1:
    return jnp.mean(diff)
  if eta == 2:
    return jnp.mean(diff * diff)
  return jnp.mean(diff ** eta)


def equilibrium(k, loss_real, loss_fake, gamma, lambda_k):
  """(k_{t+1}, M, balance) from k_t and the step's L(x), L(G(z_G)) (spec §2, §3)."""
  balance = gamma * loss_real - loss_fake
  return jnp.clip(k + lambda_k * balance, 0.0, 1.0), loss_real + jnp.abs(balance), balance


def learning_rates(config: ml_collections.ConfigDict, step, lr_scale):
  """(g_lr, d_lr) of the step with 0-based index `step`.

  'step' (carpedm20/BEGAN-tensorflow): lr <- max(lr / 2, floor) after every lr_update_step
  steps, i.e. max(lr0 / 2^(step // S), floor) since lr0 >= floor. 'plateau': max(lr0 *
  lr_scale, floor), lr_scale being halved by advance_schedule.
  """
  o = config.optim
  if o.schedule == 'step':
    factor = 0.5 ** jnp.asarray(step // o.lr_update_step, jnp.float32)
  else:
    factor = lr_scale
  return tuple(jnp.maximum(lr * factor, o.lr_floor) for lr in (o.g_lr, o.d_lr))


def advance_schedule(config: ml_collections.ConfigDict, step, lr_scale, m_sum, m_prev, measure):
  """The plateau rule after the step with index `step` produced `measure` (spec §5.3).

  M is summed over windows of lr_update_step steps. At a window's last step its mean is
  compared with the previous window's: unless it fell below prev * (1 - tolerance), the
  plateau schedule halves lr_scale. Returns (lr_scale, m_sum, m_prev, decayed); `decayed` is
  true only when a learning rate really went down (not when both sit at the floor). The M
  windows are kept under either schedule, so the state has one shape.
  """
  o = config.optim
  m_sum = m_sum + measure
  at_end = (step + 1) % o.lr_update_step == 0
  mean = m_sum / o.lr_update_step
  stalled = at_end & (mean > m_prev * (1 - o.plateau_tolerance)) & (o.schedule == 'plateau')
  new_scale = jnp.where(stalled, lr_scale * 0.5, lr_scale)
  before = learning_rates(config, step, lr_scale)
  after = learning_rates(config, step, new_scale)
  decayed = stalled & functools.reduce(jnp.logical_or, [a < b for a, b in zip(after, before)])
  return (new_scale, jnp.where(at_end, 0.0, m_sum), jnp.where(at_end, mean, m_prev), decayed)


def step_inputs(config: ml_collections.ConfigDict, state, images):
  """(x in [-1, 1], z_D, z_G) of the step: all drawn from fold_in(key, step)."""
  k_flip, k_zd, k_zg = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
  x = feeding.to_model_input(images, k_flip, config.data.flip)
  z_d = parallel.shard_batch(sample_latents(config, k_zd, x.shape[0]))
  if config.began.shared_z:
    return x, z_d, z_d
  z_g = parallel.shard_batch(sample_latents(config, k_zg, x.shape[0]))
  return x, z_d, z_g


def train_step(config: ml_collections.ConfigDict, state: TrainState, images):
  """One BEGAN iteration on a uint8 batch (B, R, R, C). Returns (state, metrics)."""
  g, d = build_models(config)
  eta, gamma = config.loss.eta, config.loss.gamma
  x, z_d, z_g = step_inputs(config, state, images)
  batch = x.shape[0]
  c = carry(config, state.step)

  def loss_fn(params):
    g_params, d_params = params
    fake_g = g.apply({'params': g_params}, z_g, c)
    fake_d = fake_g if config.began.shared_z else g.apply({'params': g_params}, z_d, c)
    fake_d = jax.lax.stop_gradient(fake_d)
    joined = parallel.concat_batch([x, fake_d])  # one D pass; rows stay on their devices
    rec_x, rec_d = parallel.split_batch(d.apply({'params': d_params}, joined, c), [batch, batch])
    loss_real = reconstruction_loss(x, rec_x, eta)
    loss_fake_d = reconstruction_loss(fake_d, rec_d, eta)
    d_loss = loss_real - state.k * loss_fake_d
    rec_g = d.apply({'params': jax.lax.stop_gradient(d_params)}, fake_g, c)
    loss_fake = reconstruction_loss(fake_g, rec_g, eta)
    return d_loss + loss_fake, (d_loss, loss_real, loss_fake)

  params = (state.g_params, state.d_params)
  (_, (d_loss, loss_real, loss_fake)), (g_grads, d_grads) = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  g_lr, d_lr = learning_rates(config, state.step, state.lr_scale)
  tx = adam(config)
  g_dir, g_opt = tx.update(g_grads, state.g_opt, state.g_params)
  d_dir, d_opt = tx.update(d_grads, state.d_opt, state.d_params)
  g_params = jax.tree.map(lambda p, u: p - g_lr * u, state.g_params, g_dir)
  d_params = jax.tree.map(lambda p, u: p - d_lr * u, state.d_params, d_dir)

  k, measure, balance = equilibrium(state.k, loss_real, loss_fake, gamma, config.loss.lambda_k)
  lr_scale, m_sum, m_prev, decayed = advance_schedule(
      config, state.step, state.lr_scale, state.m_sum, state.m_prev, measure)
  if config.optim.schedule == 'plateau' and config.optim.reset_moments:
    restart = lambda fresh, old: jax.tree.map(lambda a, b: jnp.where(decayed, a, b), fresh, old)
    g_opt, d_opt = restart(tx.init(g_params), g_opt), restart(tx.init(d_params), d_opt)

  new_state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                            g_opt=g_opt, d_opt=d_opt, k=k, lr_scale=lr_scale, m_sum=m_sum,
                            m_prev=m_prev)
  return new_state, {'M': measure, 'k': k, 'loss_real': loss_real, 'loss_fake': loss_fake,
                     'balance': balance, 'd_loss': d_loss, 'g_lr': g_lr, 'd_lr': d_lr,
                     **health.norms('g', g_grads, state.g_params, g_params),
                     **health.norms('d', d_grads, state.d_params, d_params)}


def generator_variables(config: ml_collections.ConfigDict, state: TrainState):
  """G's params and the step, whose vanishing residuals' carry G depends on."""
  del config
  return {'params': state.g_params, 'step': state.step}


def apply_generator(config: ml_collections.ConfigDict, variables, z):
  """G(z) on generator_variables, float32 in about [-1, 1]."""
  g, _ = build_models(config)
  return g.apply({'params': variables['params']}, z, carry(config, variables['step']))


def generate(config: ml_collections.ConfigDict, state: TrainState, z):
  """{'samples': G(z), 'reconstructions': D(G(z))}, float32 in about [-1, 1]."""
  _, d = build_models(config)
  fake = apply_generator(config, generator_variables(config, state), z)
  c = carry(config, state.step)
  return {'samples': fake, 'reconstructions': d.apply({'params': state.d_params}, fake, c)}


def eval_sets(config: ml_collections.ConfigDict, outputs):
  """What the sample-quality metrics score (gans.evaluate): G's samples, not D's reconstructions."""
  return {'': outputs['samples']}


def sheets(config: ml_collections.ConfigDict, outputs):
  """The samples, and up to 16 of them beside D's reconstruction of them (pairs of columns)."""
  fake, rec = outputs['samples'], outputs['reconstructions']
  pairs = np.stack([fake[:16], rec[:16]], axis=1).reshape((-1,) + fake.shape[1:])
  return [('samples', fake, None), ('reconstructions', pairs, 8)]


def forward_flops(config: ml_collections.ConfigDict):
  """Forward FLOPs per image of G and of D (the whole autoencoder), from the layer shapes."""
  g, d = build_models(config)
  state = jax.eval_shape(functools.partial(init_state, config), jax.random.PRNGKey(0))
  c = carry(config, 0)
  z = jax.ShapeDtypeStruct((1, config.model.z), jnp.float32)
  fake, g_flops = layers.traced_flops(lambda p, z: g.apply({'params': p}, z, c),
                                      state.g_params, z)
  _, d_flops = layers.traced_flops(lambda p, x: d.apply({'params': p}, x, c), state.d_params, fake)
  return g_flops, d_flops


def flops(config: ml_collections.ConfigDict):
  """(reference, necessary) FLOPs per image (per real image of the batch) of one step.

  Reference, carpedm20/BEGAN-tensorflow: one z; G forward and backward (3G); D forward on
  concat[G(z), x] (2D) and two backward passes over all 2B images, for L_D's weight gradients
  (4D) and for L_G's input gradients (2D): 3G + 8D. This step: D forward on concat[x,
  G(z_D)] and on G(z_G) (3D), weight and input gradients over the first 2B (4D), input
  gradients only over G(z_G) (1D); G forward on z_D and z_G, backward on z_G: 4G + 8D, or
  3G + 8D with shared_z.
  """
  g, d = forward_flops(config)
  return 3 * g + 8 * d, (3 if config.began.shared_z else 4) * g + 8 * d
