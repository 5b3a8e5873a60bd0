import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import losses, regularizers
from gans.errors import UserError

B = 7


def softplus(x):
  return np.log1p(np.exp(x))


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


def relu(x):
  return np.maximum(x, 0)


def rahinge_d(r, f):
  return relu(1 - (r - f.mean())).mean() + relu(1 + (f - r.mean())).mean()


def rahinge_g(r, f):
  return relu(1 + (r - f.mean())).mean() + relu(1 - (f - r.mean())).mean()


# spec §7: name -> (D loss, G loss) in numpy
SPEC = {
    'relativistic-hinge': (rahinge_d, rahinge_g),
    'hinge': (lambda r, f: relu(1 - r).mean() + relu(1 + f).mean(), lambda r, f: -f.mean()),
    'standard-gan': (lambda r, f: 0.5 * (softplus(-r).mean() + softplus(f).mean()),
                     lambda r, f: softplus(-f).mean()),
    'wgan-gp': (lambda r, f: f.mean() - r.mean(), lambda r, f: -f.mean()),
    'lsgan': (lambda r, f: 0.5 * (((r - 1) ** 2).mean() + (f ** 2).mean()),
              lambda r, f: 0.5 * ((f - 1) ** 2).mean()),
    'lsgan-sigmoid': (
        lambda r, f: 0.5 * (((sigmoid(r) - 1) ** 2).mean() + (sigmoid(f) ** 2).mean()),
        lambda r, f: 0.5 * ((sigmoid(f) - 1) ** 2).mean()),
    'lsgan_batchmean': (lambda r, f: 0.5 * ((r.mean() - 1) ** 2 + f.mean() ** 2),
                        lambda r, f: 0.5 * (f.mean() - 1) ** 2),
    'ns-r1': (lambda r, f: softplus(-r).mean() + softplus(f).mean(),
              lambda r, f: softplus(-f).mean()),
}


def scores(seed=0):
  rng = np.random.RandomState(seed)
  return (1.5 * rng.randn(B) + 0.3).astype(np.float32), (1.5 * rng.randn(B) - 0.2).astype(
      np.float32)


def test_loss_names():
  assert set(losses.LOSSES) == set(SPEC)


@pytest.mark.parametrize('name', sorted(SPEC))
def test_loss_values_match_spec(name):
  r, f = scores()
  loss = losses.get(name)
  d_np, g_np = SPEC[name]
  r64, f64 = r.astype(np.float64), f.astype(np.float64)
  np.testing.assert_allclose(loss.d(jnp.asarray(r), jnp.asarray(f)), d_np(r64, f64), rtol=1e-5)
  g_r = jnp.asarray(r) if loss.g_uses_real else None
  np.testing.assert_allclose(loss.g(g_r, jnp.asarray(f)), g_np(r64, f64), rtol=1e-5)


def test_loss_metadata():
  for name, loss in losses.LOSSES.items():
    assert loss.g_uses_real == (name == 'relativistic-hinge'), name
    assert loss.penalty == {'wgan-gp': 'gp', 'ns-r1': 'r1'}.get(name), name
    assert loss.drift == (0.001 if name == 'wgan-gp' else 0.0), name


def test_unknown_loss_lists_names():
  with pytest.raises(UserError) as err:
    losses.get('nope')
  assert 'nope' in str(err.value)
  for name in losses.LOSSES:
    assert name in str(err.value)


def numeric_grad(fn, x, h=1e-6):
  x = x.astype(np.float64)
  grad = np.zeros_like(x)
  for i in range(len(x)):
    dx = np.zeros_like(x)
    dx[i] = h
    grad[i] = (fn(x + dx) - fn(x - dx)) / (2 * h)
  return grad


def test_relativistic_hinge_grads_flow_through_batch_means():
  r, f = scores(1)
  # keep every hinge away from its kink, so finite differences are exact
  for arg in (1 - (r - f.mean()), 1 + (f - r.mean()), 1 + (r - f.mean()), 1 - (f - r.mean())):
    assert np.abs(arg).min() > 1e-2
  loss = losses.get('relativistic-hinge')
  f64, r64 = f.astype(np.float64), r.astype(np.float64)
  d_dr = jax.grad(loss.d)(jnp.asarray(r), jnp.asarray(f))
  want = numeric_grad(lambda x: rahinge_d(x, f64), r)
  np.testing.assert_allclose(d_dr, want, atol=1e-5)
  detached = -(1 - (r64 - f64.mean()) > 0).astype(float) / B  # stop_gradient on r-bar
  assert np.abs(want - detached).max() > 1e-2
  g_df = jax.grad(loss.g, argnums=1)(jnp.asarray(r), jnp.asarray(f))
  np.testing.assert_allclose(g_df, numeric_grad(lambda x: rahinge_g(r64, x), f), atol=1e-5)


# ---- regularizers ---------------------------------------------------------------------------

SIZES = (4, 8, 16)


def pyramids(seed=0, c=3):
  rng = np.random.RandomState(seed)
  real = [rng.randn(4, s, s, c).astype(np.float32) for s in SIZES]
  fake = [rng.randn(4, s, s, c).astype(np.float32) for s in SIZES]
  return real, fake


def linear_d(a):
  return lambda xs: sum(a[s] * jnp.sum(x, axis=(1, 2, 3)) for s, x in enumerate(xs))


def test_gradient_penalty_linear_d_is_mean_over_scales():
  a = np.array([0.3, 0.05, 0.2])
  real, fake = pyramids()
  gp = regularizers.gradient_penalty(linear_d(a), real, fake, jax.random.key(0))
  norms = np.abs(a) * np.sqrt([s * s * 3 for s in SIZES])  # ||a_s * ones(H, W, C)||
  np.testing.assert_allclose(gp, np.mean((norms - 1) ** 2), rtol=1e-5)
  joint = (np.sqrt(np.sum(norms ** 2)) - 1) ** 2  # one norm over all scales: not this
  assert abs(float(gp) - joint) > 1


def test_gradient_penalty_differentiates_wrt_d_params():
  real, fake = pyramids()
  n = np.sqrt([s * s * 3 for s in SIZES])
  a = np.array([0.3, -0.05, 0.2], np.float32)
  grad = jax.grad(lambda a: regularizers.gradient_penalty(linear_d(a), real, fake,
                                                          jax.random.key(0)))(jnp.asarray(a))
  want = 2 * (np.abs(a) * n - 1) * n * np.sign(a) / 3
  np.testing.assert_allclose(grad, want, rtol=1e-5)


def test_gradient_penalty_quadratic_d_shares_eps_across_scales():
  c = np.array([0.5, 1.0, 0.25])
  real, fake = pyramids(1)
  key = jax.random.key(7)
  d_fn = lambda xs: sum(c[s] * jnp.sum(x * x, axis=(1, 2, 3)) for s, x in enumerate(xs))
  gp = regularizers.gradient_penalty(d_fn, real, fake, key)
  eps = np.asarray(jax.random.uniform(key, (4, 1, 1, 1)), np.float64)
  per_scale = []
  for s in range(3):
    x_hat = eps * real[s] + (1 - eps) * fake[s]
    norm = np.sqrt(np.sum((2 * c[s] * x_hat) ** 2, axis=(1, 2, 3)))
    per_scale.append(np.mean((norm - 1) ** 2))
  np.testing.assert_allclose(gp, np.mean(per_scale), rtol=1e-5)


def test_r1_penalty():
  rng = np.random.RandomState(0)
  x = rng.randn(5, 8, 8, 3).astype(np.float32)
  w = rng.rand(8, 8, 3).astype(np.float32)
  r1 = regularizers.r1_penalty(lambda x: jnp.sum(w * x * x, axis=(1, 2, 3)), jnp.asarray(x))
  want = np.mean(np.sum((2 * w * x.astype(np.float64)) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(r1, want, rtol=1e-5)
