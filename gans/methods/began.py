"""BEGAN training: an autoencoder D, the k_t equilibrium controller and the convergence measure M.

One step (spec §2, §9 decisions 6, 7, 12): z_D and z_G are separate draws (the paper's; config
`shared_z` uses one, as carpedm20); both gradients come from the same parameters:

  L_D = L(x) - k_t L(stop_gradient(G(z_D)))     w.r.t. D
  L_G = L(G(z_G)), D's parameters held fixed    w.r.t. G (through the target and D(G(z_G)))

then both Adam updates, then k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) from
the step's pre-update losses. M = L(x) + |gamma L(x) - L(G(z_G))| is logged every step.

The learning rate is part of the state's arithmetic, not of optax's: Adam's direction comes from
optax.scale_by_adam and the step multiplies it by the lr of the schedule, so both schedules and
the M window they need live in the TrainState and a resumed run is the uninterrupted one.
"""
import functools
import io
import os
import re
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath
from PIL import Image

from gans import config as config_lib
from gans import methods
from gans import health, layers, logs, parallel
from gans import figures as figures_lib
from gans.data import feeding
from gans.errors import UserError
from gans.models import began as models

PROGRESS = ('M', 'k')
TINY_MODEL = dict(resolution=8, n=8, h=8, z=8)
SCHEDULES = ('step', 'plateau')


def defaults() -> ml_collections.ConfigDict:
  """carpedm20/BEGAN-tensorflow's recipe (spec §5.2, §9) at 64x64 with the paper's separate z."""
  c = config_lib.base_defaults('began')
  c.model = ml_collections.ConfigDict()
  c.model.resolution = 64  # 8 * 2^k; levels = log2(resolution) - 2
  c.model.n = 128  # conv width; the encoder grows n, 2n, ..., levels * n
  c.model.h = 64  # D's bottleneck N_h
  c.model.z = 64  # G's input N_z
  c.model.image_channels = 3
  c.model.repeat = 2  # convs per resolution level
  c.model.skip = False  # decoder skip connections (the authors' later code)
  c.model.residual_steps = 0  # vanishing residuals: carry 1 -> 0 linearly over this many steps
  c.model.tanh = False  # linear output, data in [-1, 1] (spec §9 decision 4)
  c.model.dtype = 'float32'  # compute dtype; 'bfloat16' keeps float32 params and optimizer

  c.loss = ml_collections.ConfigDict()
  c.loss.gamma = 0.5  # diversity ratio E[L(G(z))] / E[L(x)]
  c.loss.lambda_k = 0.001
  c.loss.eta = 1.0  # L(v) = mean |v - D(v)|^eta
  c.shared_z = False  # True: one z for L_D and L_G (carpedm20), one G forward less

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 8e-5
  c.optim.d_lr = 8e-5
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.schedule = 'step'  # 'step': halve every lr_update_step; 'plateau': halve when M stalls
  c.optim.lr_update_step = 100_000  # the halving interval, or the plateau's window of M
  c.optim.lr_floor = 2e-5  # neither schedule goes below it (0: no floor)
  c.optim.plateau_tolerance = 1e-4  # plateau: stalled unless M's window mean fell by this fraction
  c.optim.reset_moments = True  # plateau: a decay restarts both Adams (carpedm20/BEGAN-pytorch)

  c.figures = ml_collections.ConfigDict()
  c.figures.pairs = 6  # rows of each interpolation figure
  c.figures.points = 8  # images per interpolation row, both ends included
  c.figures.z_steps = 1000  # Adam steps finding z for a real image
  c.figures.z_lr = 0.01
  c.figures.snapshots = 6  # sample sheets along the M curve

  c.data.flip = False  # carpedm20 does not flip
  c.batch_size = 16
  c.num_steps = 500_000
  return c


def validate(config):
  check = config_lib.check
  m, o = config.model, config.optim
  check(models.valid_resolution(m.resolution),
        f'model.resolution={m.resolution} must be a power of two >= {models.BASE} '
        '(BEGAN always bottoms out at 8x8)')
  check(min(m.n, m.h, m.z, m.repeat) >= 1,
        'model.n, model.h, model.z and model.repeat must be >= 1')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  check(m.residual_steps >= 0, 'model.residual_steps must be >= 0 (0: no vanishing residuals)')
  config_lib.check_dtype(m.dtype)
  check(0 <= config.loss.gamma <= 1, f'loss.gamma={config.loss.gamma} must be in [0, 1]')
  check(config.loss.lambda_k >= 0, f'loss.lambda_k={config.loss.lambda_k} must be >= 0')
  check(config.loss.eta >= 1, f'loss.eta={config.loss.eta} must be >= 1 (|v|^eta has an '
        'infinite gradient at 0 below 1)')
  check(o.g_lr > 0 and o.d_lr > 0, 'optim.g_lr and optim.d_lr must be > 0')
  check(0 <= o.lr_floor <= min(o.g_lr, o.d_lr),
        f'optim.lr_floor={o.lr_floor} must be in [0, min(optim.g_lr, optim.d_lr)]')
  check(o.schedule in SCHEDULES, f'optim.schedule={o.schedule!r}; choose one of '
        f'{", ".join(SCHEDULES)}')
  check(o.lr_update_step >= 1, 'optim.lr_update_step must be >= 1')
  check(0 <= o.plateau_tolerance < 1, 'optim.plateau_tolerance must be in [0, 1)')
  f = config.figures
  check(f.pairs >= 1 and f.points >= 2 and f.z_steps >= 0 and f.snapshots >= 1,
        'figures.pairs >= 1, figures.points >= 2, figures.z_steps >= 0, figures.snapshots >= 1')
  config_lib.validate_data(config.data)


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  key: jax.Array  # base key: step s uses fold_in(key, s), so a resume replays the same draws
  g_params: Any
  d_params: Any
  g_opt: Any  # Adam moments (optax.scale_by_adam); the lr is applied in the step
  d_opt: Any
  k: jax.Array  # the equilibrium controller k_t, float32 in [0, 1]
  lr_scale: jax.Array  # plateau schedule: 0.5 ** (decays so far)
  m_sum: jax.Array  # sum of M over the current window of lr_update_step steps
  m_prev: jax.Array  # mean of M over the previous window (inf before the first)


def image_shape(config):
  m = config.model
  return (m.resolution, m.resolution, m.image_channels)


sources, example_spec = methods.one_image_stream(image_shape)


def build_models(config):
  m = config.model
  common = dict(resolution=m.resolution, n=m.n, channels=m.image_channels, repeat=m.repeat,
                skip=m.skip, tanh=m.tanh, dtype=jnp.dtype(m.dtype))
  return models.Decoder(**common), models.Discriminator(h=m.h, **common)


def adam(config):
  o = config.optim
  return optax.scale_by_adam(o.b1, o.b2, o.eps)


def carry(config, step):
  """The vanishing residuals' carry at `step` (None when they are off): 1 -> 0 linearly."""
  steps = config.model.residual_steps
  return jnp.maximum(0.0, 1.0 - step / steps) if steps else None


def sample_latents(config, key, n):
  """z ~ Uniform[-1, 1]^N_z (spec §9 decision 5)."""
  return jax.random.uniform(key, (n, config.model.z), minval=-1.0, maxval=1.0)


def init_state(config, key):
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


def learning_rates(config, step, lr_scale):
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


def advance_schedule(config, step, lr_scale, m_sum, m_prev, measure):
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


def step_inputs(config, state, images):
  """(x in [-1, 1], z_D, z_G) of the step: all drawn from fold_in(key, step)."""
  k_flip, k_zd, k_zg = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
  x = feeding.to_model_input(images, k_flip, config.data.flip)
  z_d = parallel.shard_batch(sample_latents(config, k_zd, x.shape[0]))
  z_g = z_d if config.shared_z else parallel.shard_batch(sample_latents(config, k_zg, x.shape[0]))
  return x, z_d, z_g


def train_step(config, state: TrainState, images):
  """One BEGAN iteration on a uint8 batch (B, R, R, C). Returns (state, metrics)."""
  g, d = build_models(config)
  eta, gamma = config.loss.eta, config.loss.gamma
  x, z_d, z_g = step_inputs(config, state, images)
  batch = x.shape[0]
  c = carry(config, state.step)

  def loss_fn(params):
    g_params, d_params = params
    fake_g = g.apply({'params': g_params}, z_g, c)
    fake_d = fake_g if config.shared_z else g.apply({'params': g_params}, z_d, c)
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


def generate(config, state: TrainState, z):
  """{'samples': G(z), 'reconstructions': D(G(z))}, float32 in about [-1, 1]."""
  g, d = build_models(config)
  c = carry(config, state.step)
  fake = g.apply({'params': state.g_params}, z, c)
  return {'samples': fake, 'reconstructions': d.apply({'params': state.d_params}, fake, c)}


def eval_sets(config, outputs):
  """What the sample-quality metrics score (gans.evaluate): G's samples, not D's reconstructions."""
  return {'': outputs['samples']}


def sheets(config, outputs):
  """The samples, and up to 16 of them beside D's reconstruction of them (pairs of columns)."""
  fake, rec = outputs['samples'], outputs['reconstructions']
  pairs = np.stack([fake[:16], rec[:16]], axis=1).reshape((-1,) + fake.shape[1:])
  return [('samples', fake, None), ('reconstructions', pairs, 8)]


def forward_flops(config):
  """Forward FLOPs per image of G and of D (the whole autoencoder), from the layer shapes."""
  g, d = build_models(config)
  state = jax.eval_shape(functools.partial(init_state, config), jax.random.PRNGKey(0))
  c = carry(config, 0)
  z = jax.ShapeDtypeStruct((1, config.model.z), jnp.float32)
  fake, g_flops = layers.traced_flops(lambda p, z: g.apply({'params': p}, z, c),
                                      state.g_params, z)
  _, d_flops = layers.traced_flops(lambda p, x: d.apply({'params': p}, x, c), state.d_params, fake)
  return g_flops, d_flops


def flops(config):
  """(reference, necessary) FLOPs per image (per real image of the batch) of one step.

  Reference, carpedm20/BEGAN-tensorflow: one z; G forward and backward (3G); D forward on
  concat[G(z), x] (2D) and two backward passes over all 2B images, for L_D's weight gradients
  (4D) and for L_G's input gradients (2D): 3G + 8D. This step: D forward on concat[x,
  G(z_D)] and on G(z_G) (3D), weight and input gradients over the first 2B (4D), input
  gradients only over G(z_G) (1D); G forward on z_D and z_G, backward on z_G: 4G + 8D, or
  3G + 8D with shared_z.
  """
  g, d = forward_flops(config)
  return 3 * g + 8 * d, (3 if config.shared_z else 4) * g + 8 * d


def find_latents(config, state, images, steps=None, lr=None, key=None):
  """z in [-1, 1] with G(z) close to each real image (float NHWC in [-1, 1]), by Adam on
  mean |image - G(z)| from a random start, clipped to the prior's support after each step
  (spec §6.3; carpedm20 uses Adam 1e-4, which barely moves z: the default lr is 0.01)."""
  f = config.figures
  steps, lr = f.z_steps if steps is None else steps, f.z_lr if lr is None else lr
  g, _ = build_models(config)
  c = carry(config, state.step)
  key = jax.random.PRNGKey(0) if key is None else key
  return figures_lib.fit_latents(lambda z: g.apply({'params': state.g_params}, z, c), images,
                                 sample_latents(config, key, images.shape[0]), steps, lr, 1.0)


def _interpolate(config, state, z_a, z_b):
  """[pairs * points] images: rows of G along the slerp from each z_a to its z_b."""
  z = figures_lib.slerp_walk(z_a, z_b, config.figures.points)  # [pairs, points, d]
  fake = jax.jit(functools.partial(generate, config))(state, z.reshape(-1, z.shape[-1]))
  return np.asarray(fake['samples'])


def interpolation_figures(config, state, directory, key=None):
  """Write interpolation_generated.png (slerp between random latents) and interpolation_real.png
  (between latents found for real image pairs by find_latents; each row starts and ends with
  the two real images) into `directory`. Returns the paths."""
  f = config.figures
  key = jax.random.PRNGKey(config.seed) if key is None else key
  k_gen, k_real, k_fit = jax.random.split(key, 3)
  z = np.asarray(sample_latents(config, k_gen, 2 * f.pairs))
  gen = _interpolate(config, state, z[:f.pairs], z[f.pairs:])
  paths = [figures_lib.save_grid(gen, os.path.join(directory, 'interpolation_generated.png'),
                                 f.points)]
  source = sources(config)
  index = np.asarray(jax.random.choice(k_real, len(source), (2 * f.pairs,), replace=False))
  real = np.asarray(feeding.to_model_input(jnp.asarray(source[index]), None, False))
  z = np.asarray(find_latents(config, state, real, key=k_fit))
  between = _interpolate(config, state, z[:f.pairs], z[f.pairs:]).reshape(
      (f.pairs, f.points) + real.shape[1:])
  rows = np.concatenate([real[:f.pairs, None], between, real[f.pairs:, None]], axis=1)
  paths.append(figures_lib.save_grid(rows.reshape((-1,) + real.shape[1:]),
                                     os.path.join(directory, 'interpolation_real.png'),
                                     f.points + 2))
  return paths


def convergence_figure(config, workdir, path):
  """M over the run (workdir/metrics.jsonl, each point the mean over a log interval) with
  config.figures.snapshots sample sheets from workdir/samples/samples/ along it. Returns the
  path, or None when the run has logged nothing yet."""
  records = [r for r in logs.read_metrics(workdir) if 'M' in r]
  if not records:
    return None
  sample_dir = epath.Path(workdir) / 'samples' / 'samples'
  saved = sorted(int(f.name[5:-4]) for f in sample_dir.iterdir()
                 if re.fullmatch(r'step_\d+\.png', f.name)) if sample_dir.is_dir() else []
  picks = sorted({saved[round(i)] for i in np.linspace(0, len(saved) - 1,
                                                        config.figures.snapshots)}) if saved else []
  snapshots = [(s, Image.open(io.BytesIO((sample_dir / f'step_{s:08d}.png').read_bytes())))
               for s in picks]
  return figures_lib.curve_with_snapshots([r['step'] for r in records],
                                          [r['M'] for r in records], snapshots, path)


def figures(config, state, workdir):
  """The method's figures for eval.py, into workdir/figures/: convergence.png (the M curve
  with sample snapshots), interpolation_generated.png and interpolation_real.png. Returns the
  paths written."""
  directory = os.path.join(workdir, 'figures')
  paths = [convergence_figure(config, workdir, os.path.join(directory, 'convergence.png'))]
  paths += interpolation_figures(config, state, directory)
  return [p for p in paths if p]


def gamma_figure(workdirs, path, num_samples=36, seed=0, step=None):
  """The diversity figure: one sample sheet per run, side by side in order of gamma and
  captioned with it (the paper's gamma in {0.3, 0.5, 0.7}). Every run draws its samples
  from the same latents when their N_z agree. `step` picks a checkpoint present in every run
  (default: each run's latest). Returns the path."""
  from gans import checkpoint  # pylint: disable=g-import-not-at-top
  runs = []
  for workdir in workdirs:
    config, state = checkpoint.load(workdir, step)
    if config.method != 'began':
      raise UserError(f'{workdir} holds a {config.method} run; the gamma figure compares BEGAN '
                      'runs')
    runs.append((config.loss.gamma, config, state))
  sheets, labels = [], []
  for gamma, config, state in sorted(runs, key=lambda r: r[0]):
    z = sample_latents(config, jax.random.PRNGKey(seed), num_samples)
    fake = np.asarray(jax.jit(functools.partial(generate, config))(state, z)['samples'])
    factor = max(1, -(-64 // fake.shape[1]))
    sheets.append(figures_lib.grid(figures_lib.to_uint8(figures_lib.upsample(fake, factor))))
    labels.append(f'gamma = {gamma:g}, step {int(state.step):,}')
  return figures_lib.labelled_side_by_side(
      [s[..., 0] if s.shape[-1] == 1 else s for s in sheets], labels, path)


METHOD = methods.Method(
    name='began', defaults=defaults, validate=validate, sources=sources,
    example_spec=example_spec, image_shape=image_shape, init_state=init_state,
    train_step=train_step, tiny_model=TINY_MODEL, progress=PROGRESS,
    sample_latents=sample_latents, generate=generate, sheets=sheets, flops=flops,
    figures=figures, eval_sets=eval_sets)
