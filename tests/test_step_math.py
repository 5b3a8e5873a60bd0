"""MSG-GAN's optimised train_step against the textbook iteration of spec §8, written out here.

The step reuses G's forward through a VJP, takes D(real) outside the differentiated function and
differentiates only what it updates; none of that may change the maths. So these tests compute
one iteration the plain way (pyramid by reshape-mean, z on the sphere of radius sqrt(L), jax.grad
of the spec §7 loss with respect to all of a network's parameters, Adam's first step as the
formula, the EMA in numpy) and compare it with what the step logged and applied. Adam's first
moment after one step with b1 = 0 is exactly the gradient applied, so the step's gradients are
read from its optimizer state. The same z and key schedule as the step are used: the draws are
the step's to choose, the arithmetic on them is not.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from conftest import tiny_config
from gans.methods import msggan

B = 8


def relu(x):
  return jnp.maximum(x, 0.0)


def step_keys(state):
  """(flip, z, penalty, fresh z) keys of the state's step: the step's own schedule."""
  return jax.random.split(jax.random.fold_in(state.key, state.step), 4)


def latents(key, n, size):
  """Spec §8.2 in numpy: N(0, I) rescaled to norm sqrt(latent_size)."""
  z = np.asarray(jax.random.normal(key, (n, size)), np.float64)
  return z * math.sqrt(size) / np.linalg.norm(z, axis=1, keepdims=True)


def pyramid_of(x, depth):
  """Spec §8.3: a [-1, 1] batch box-filtered to every scale, low -> high, by reshape-mean
  (jax.numpy, so that R1 can differentiate through it)."""
  b, r, _, c = x.shape
  return [x.reshape(b, r // f, f, r // f, f, c).mean(axis=(2, 4))
          for f in (2 ** (depth - 1 - s) for s in range(depth))]


def pyramid(images, depth):
  """The pyramid of a uint8 batch, mapped to [-1, 1] as the step maps it."""
  return pyramid_of(jnp.asarray(images.astype(np.float64) / 127.5 - 1, jnp.float32), depth)


def init(config, seed=0):
  """The step's initial state, compiled in one piece (op by op compiles per shape: slow)."""
  return jax.jit(functools.partial(msggan.init_state, config))(jax.random.PRNGKey(seed))


def digits(config):
  return msggan.sources(config).load_all()[:B]


def forward(config):
  g, d = msggan.build_models(config)
  return (lambda p, z: g.apply({'params': p}, z)), (lambda p, xs: d.apply({'params': p}, xs))


def rahinge_d(r, f):
  return jnp.mean(relu(1 - (r - f.mean()))) + jnp.mean(relu(1 + (f - r.mean())))


def rahinge_g(r, f):
  return jnp.mean(relu(1 + (r - f.mean()))) + jnp.mean(relu(1 - (f - r.mean())))


def textbook_grads(config, state, d_new, images, z_d, z_g):
  """D's gradient at the old D on G(z_d), and G's at the updated D on G(z_g): relativistic hinge,
  every network's full jax.grad, nothing reused. Also which of the four hinges (D's two, G's
  two) are open for some sample: a closed one hides a wrong gradient through its batch mean."""
  g_fn, d_fn = forward(config)
  real = pyramid(images, config.model.depth)
  z_d, z_g = jnp.asarray(z_d, jnp.float32), jnp.asarray(z_g, jnp.float32)

  def d_loss(d_params):
    fake = jax.lax.stop_gradient(g_fn(state.g_params, z_d))
    return rahinge_d(d_fn(d_params, real), d_fn(d_params, fake))

  def g_loss(g_params):
    return rahinge_g(d_fn(d_new, real), d_fn(d_new, g_fn(g_params, z_g)))

  def hinges(d_params, d_new, g_params):
    r, f = d_fn(d_params, real), d_fn(d_params, g_fn(g_params, z_d))
    r_g, f_g = d_fn(d_new, real), d_fn(d_new, g_fn(g_params, z_g))
    args = (1 - (r - f.mean()), 1 + (f - r.mean()), 1 + (r_g - f_g.mean()), 1 - (f_g - r_g.mean()))
    return jnp.stack([jnp.any(a > 0) for a in args])

  @jax.jit
  def both(d_params, g_params):
    return (jax.value_and_grad(d_loss)(d_params), jax.value_and_grad(g_loss)(g_params),
            hinges(d_params, d_new, g_params))

  (d_value, d_grads), (g_value, g_grads), open_ = both(state.d_params, state.g_params)
  return d_value, d_grads, g_value, g_grads, np.asarray(open_)


def applied_grads(opt_state):
  """The gradient of an Adam (b1 = 0) state's first update: its first moment."""
  return opt_state[0].mu


def assert_trees_close(got, want, rtol, atol):
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def test_sample_latents_lie_on_the_sphere_of_radius_sqrt_latent_size():
  """Spec §8.2: z <- z sqrt(512) / |z| (BMSG-GAN), the direction of the normal draw kept; off,
  the raw normal draw."""
  key = jax.random.PRNGKey(3)
  for size in (16, 512):
    config = tiny_config(**{'model.latent_size': size})
    z = np.asarray(msggan.sample_latents(config, key, 5), np.float64)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), math.sqrt(size), rtol=1e-5)
    np.testing.assert_allclose(z, latents(key, 5, size), rtol=1e-5)
    config.msggan.normalize_latents = False
    raw = np.asarray(msggan.sample_latents(config, key, 5))
    np.testing.assert_allclose(raw, np.asarray(jax.random.normal(key, (5, size))), rtol=1e-6)


def test_optimised_step_applies_the_textbook_gradients_adam_step_and_ema():
  """The gradients and losses of two steps, Adam's first update and the EMA against spec
  §7.1/§8 computed here.

  Seed 2: D's hinges are all open at the first step and both of G's at the second, so a batch
  mean detached (or a term dropped) shows. lr 0.01 for G and 0.02 for D (TTUR shape, so a swap
  shows); Adam eps 1e-4 (tests/test_parallel.py explains: D's last bias has a zero gradient
  under this loss); EMA decay 0.9 so the blend is far from both endpoints."""
  config = tiny_config(**{'optim.eps': 1e-4, 'optim.g_lr': 0.01, 'optim.d_lr': 0.02,
                          'msggan.ema_decay': 0.9})
  images = digits(config)
  states = [init(config, seed=2)]
  step = jax.jit(functools.partial(msggan.train_step, config))
  opened = []
  for _ in range(2):
    state = states[-1]
    after, metrics = step(state, images)
    states.append(after)
    _, k_z, _, _ = step_keys(state)
    z = latents(k_z, B, config.model.latent_size)
    d_value, d_grads, g_value, g_grads, open_ = textbook_grads(config, state, after.d_params,
                                                               images, z, z)
    opened.append(open_)
    np.testing.assert_allclose(metrics['d_loss'], d_value, rtol=1e-5)
    np.testing.assert_allclose(metrics['g_loss'], g_value, rtol=1e-5)
    # Adam with b1 = 0 keeps the last gradient as its first moment, at every step.
    assert_trees_close(applied_grads(after.d_opt), d_grads, rtol=1e-3, atol=1e-6)
    assert_trees_close(applied_grads(after.g_opt), g_grads, rtol=1e-3, atol=1e-6)
    if len(states) == 2:  # Adam's first step (bias-corrected): p - lr g / (|g| + eps)
      eps = config.optim.eps
      for old, new, grads, lr in ((state.d_params, after.d_params, d_grads, config.optim.d_lr),
                                  (state.g_params, after.g_params, g_grads, config.optim.g_lr)):
        want = jax.tree.map(lambda p, g: np.asarray(p, np.float64) - lr * np.asarray(g) / (
            np.abs(np.asarray(g, np.float64)) + eps), old, grads)
        assert_trees_close(new, want, rtol=0, atol=0.01 * lr)
  assert np.any(opened, axis=0).all(), opened

  # EMA (spec §8.4): after step 1 from a copy of G; after step 2 from a blend that is neither.
  decay = config.msggan.ema_decay
  for before, after in zip(states, states[1:]):
    want = jax.tree.map(lambda e, p: decay * np.asarray(e, np.float64)
                        + (1 - decay) * np.asarray(p, np.float64), before.g_ema, after.g_params)
    assert_trees_close(after.g_ema, want, rtol=1e-6, atol=1e-7)
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), states[1].g_ema, states[1].g_params)
  assert max(jax.tree.leaves(moved)) > 1e-4  # the EMA is not G itself


def test_fresh_g_latents_gives_the_g_step_its_own_z():
  """MSG-GAN v1 (spec §11): the G step's gradient is the textbook one on the second draw of the
  step's key, not on the D step's z (which gives a different gradient)."""
  config = tiny_config(**{'optim.eps': 1e-4, 'msggan.fresh_g_latents': True})
  images = digits(config)
  state = init(config)
  after, metrics = jax.jit(functools.partial(msggan.train_step, config))(state, images)
  _, k_z, _, k_zg = step_keys(state)
  size = config.model.latent_size
  z, z_g = latents(k_z, B, size), latents(k_zg, B, size)
  d_value, _, g_value, g_grads, _ = textbook_grads(config, state, after.d_params, images, z,
                                                    z_g)
  _, _, g_value_same_z, g_grads_same_z, _ = textbook_grads(config, state, after.d_params, images,
                                                           z, z)
  np.testing.assert_allclose(metrics['d_loss'], d_value, rtol=1e-5)
  np.testing.assert_allclose(metrics['g_loss'], g_value, rtol=1e-5)
  assert abs(g_value - g_value_same_z) > 1e-3
  assert_trees_close(applied_grads(after.g_opt), g_grads, rtol=1e-3, atol=1e-6)
  gap = max(np.abs(a - b).max() for a, b in zip(jax.tree.leaves(applied_grads(after.g_opt)),
                                                 jax.tree.leaves(g_grads_same_z)))
  assert gap > 1e-2


def test_ttur_moves_each_network_by_its_own_learning_rate():
  """Adam's first step is -lr sign(g) where |g| >> eps: G's parameters move by optim.g_lr and
  D's by optim.d_lr (MSG-GAN v1's TTUR, 1e-4 and 4e-4), not by one shared rate."""
  config = tiny_config(**{'optim.g_lr': 1e-4, 'optim.d_lr': 4e-4})
  state = init(config)
  after, _ = jax.jit(functools.partial(msggan.train_step, config))(state, digits(config))
  for old, new, opt, lr in ((state.g_params, after.g_params, after.g_opt, config.optim.g_lr),
                            (state.d_params, after.d_params, after.d_opt, config.optim.d_lr)):
    delta = np.concatenate([np.ravel(np.asarray(b, np.float64) - np.asarray(a))
                            for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new))])
    grad = np.concatenate([np.ravel(g) for g in jax.tree.leaves(applied_grads(opt))])
    clear = np.abs(grad) > 1e-4  # |g| >> eps = 1e-8: the step is lr to 1e-4
    assert clear.mean() > 0.9
    np.testing.assert_allclose(delta[clear], -lr * np.sign(grad[clear]), rtol=0, atol=1e-6)


def test_the_step_logs_the_learning_rates_it_applied():
  """g_lr and d_lr in the metrics are optim.g_lr and optim.d_lr (MSG-GAN has no schedule)."""
  config = tiny_config(**{'optim.g_lr': 1e-4, 'optim.d_lr': 4e-4})
  _, metrics = jax.jit(functools.partial(msggan.train_step, config))(init(config), digits(config))
  assert metrics['g_lr'] == np.float32(1e-4) and metrics['d_lr'] == np.float32(4e-4)
