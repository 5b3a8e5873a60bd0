"""BEGAN: the autoencoder's shapes, the losses and k_t against numpy, the lr schedules, exact
resume with k and the schedule in the checkpoint, learning, figures."""
import collections
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from configs import began_digits
from gans import config as config_lib
from gans import checkpoint, trainer
from gans.errors import UserError
from gans.methods.began import figures as began_figures
from gans.methods.began import step as began
from gans.models import began as models
from test_train import assert_same_state, read_metrics


def tiny(**overrides):
  """configs/began_digits.py:tiny (8x8, n = 8) with dotted overrides."""
  config = began_digits.get_config('tiny')
  config.update_from_flattened_dict(overrides)
  return config


def digits(config, n=8):
  return began.sources(config).load_all()[:n]


@pytest.mark.parametrize('resolution, skip', [(8, False), (16, False), (32, False), (64, False),
                                              (128, False), (256, False), (32, True), (64, True)])
def test_autoencoder_and_generator_shapes(resolution, skip):
  config = tiny(**{'model.resolution': resolution, 'model.n': 4, 'model.h': 6, 'model.z': 5,
                   'model.image_channels': 3, 'model.skip': skip})
  state = jax.eval_shape(functools.partial(began.init_state, config), jax.random.PRNGKey(0))
  g, d = began.build_models(config)
  z = jax.ShapeDtypeStruct((2, 5), jnp.float32)
  fake = jax.eval_shape(lambda p, z: g.apply({'params': p}, z), state.g_params, z)
  rec = jax.eval_shape(lambda p, x: d.apply({'params': p}, x), state.d_params, fake)
  assert fake.shape == rec.shape == (2, resolution, resolution, 3)
  assert fake.dtype == rec.dtype == jnp.float32
  levels = models.levels(resolution)
  encoder, decoder = state.d_params['encoder'], state.d_params['decoder']
  # The encoder ends at 8x8 with levels * n channels; the bottleneck is linear to h.
  assert encoder['embed']['kernel'].shape == (8 * 8 * levels * 4, 6)
  assert encoder[f'level{levels - 1}_conv1']['kernel'].shape == (3, 3, levels * 4, levels * 4)
  assert decoder['fc']['kernel'].shape == (6, 8 * 8 * 4)
  assert state.g_params['fc']['kernel'].shape == (5, 8 * 8 * 4)
  downs = [k for k in encoder if k.endswith('_down')]
  assert len(downs) == levels - 1  # one stride-2 conv per halving, 8x8 at the bottom
  if levels > 1:  # with skips the first conv of every later level also takes h0's n channels
    assert decoder['level1_conv0']['kernel'].shape == (3, 3, 8 if skip else 4, 4)


def test_g_and_d_widths_default_to_n_and_can_differ():
  """model.g_n and model.d_n (spec §6 #5): G's decoder has width g_n, D's encoder and decoder
  d_n (the encoder growing d_n, 2 d_n, ...); 0, or a config saved before the two fields, means
  model.n. The parameter counts are those of the layer lists written out."""
  shape = lambda c: jax.eval_shape(functools.partial(began.init_state, c), jax.random.PRNGKey(0))
  size = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))
  conv = lambda cin, cout: 9 * cin * cout + cout
  dense = lambda cin, cout: cin * cout + cout
  # 16x16 grey, h = 6, z = 5: two levels, 16 -> 8
  decoder = lambda n, c: dense(c, 64 * n) + 4 * conv(n, n) + conv(n, 1)
  encoder = lambda n: (conv(1, n) + 3 * conv(n, n) + conv(n, 2 * n) + conv(2 * n, 2 * n)
                       + dense(64 * 2 * n, 6))
  fields = {'model.resolution': 16, 'model.n': 4, 'model.h': 6, 'model.z': 5,
            'model.image_channels': 1}
  for g_n, d_n in ((0, 0), (3, 0), (0, 7), (3, 7)):
    config = tiny(**fields, **{'model.g_n': g_n, 'model.d_n': d_n})
    config_lib.validate(config)
    state = shape(config)
    want_g, want_d = g_n or 4, d_n or 4
    assert began.widths(config) == (want_g, want_d)
    assert state.g_params['fc']['kernel'].shape == (5, 8 * 8 * want_g)
    assert state.d_params['decoder']['fc']['kernel'].shape == (6, 8 * 8 * want_d)
    assert state.d_params['encoder']['stem']['kernel'].shape == (3, 3, 1, want_d)
    assert size(state.g_params) == decoder(want_g, 5)
    assert size(state.d_params) == encoder(want_d) + decoder(want_d, 6)
  old = tiny(**fields)
  del old.model['g_n'], old.model['d_n']  # a run saved before the two fields: both are n
  assert began.widths(old) == (4, 4)
  config_lib.validate(old)


def test_reconstruction_loss_matches_numpy():
  rng = np.random.default_rng(0)
  v, r = rng.uniform(-1, 1, (2, 4, 4, 3)), rng.uniform(-1, 1, (2, 4, 4, 3))
  for eta in (1.0, 2.0, 1.5):
    expected = np.mean(np.abs(v - r) ** eta)
    np.testing.assert_allclose(began.reconstruction_loss(jnp.asarray(v), jnp.asarray(r), eta),
                               expected, rtol=1e-5)


@pytest.mark.parametrize('k, real, fake, gamma, lam', [
    (0.3, 0.20, 0.05, 0.5, 0.001),  # plain update
    (0.0, 0.10, 0.30, 0.5, 0.001),  # negative balance at k = 0: clipped to 0
    (0.9995, 0.40, 0.01, 0.7, 0.01),  # would pass 1: clipped to 1
    (0.5, 0.30, 0.15, 0.5, 0.001),  # exact equilibrium: k stays
])
def test_k_update_clipping_and_measure_against_numpy(k, real, fake, gamma, lam):
  new_k, measure, balance = began.equilibrium(jnp.float32(k), jnp.float32(real),
                                              jnp.float32(fake), gamma, lam)
  np.testing.assert_allclose(new_k, np.clip(k + lam * (gamma * real - fake), 0, 1), atol=1e-7)
  np.testing.assert_allclose(measure, real + abs(gamma * real - fake), rtol=1e-6)
  np.testing.assert_allclose(balance, gamma * real - fake, atol=1e-7)
  assert 0.0 <= float(new_k) <= 1.0


def test_step_against_a_direct_computation():
  """Losses, M and k of one step from numpy over the models' outputs, and the parameter updates
  equal Adam on the textbook gradients: D from L_D with G(z_D) constant, G from L(G(z_G))
  through both the target and D's reconstruction, D's weights fixed."""
  config = tiny(**{'loss.gamma': 0.7, 'loss.lambda_k': 0.05})
  g, d = began.build_models(config)
  state = began.init_state(config, jax.random.PRNGKey(3)).replace(k=jnp.float32(0.25))
  images = digits(config)
  new, metrics = jax.jit(functools.partial(began.train_step, config))(state, images)
  x, z_d, z_g = began.step_inputs(config, state, images)
  assert not np.array_equal(z_d, z_g)  # the paper's separate draws
  G = lambda p, z: g.apply({'params': p}, z)
  D = lambda p, v: d.apply({'params': p}, v)
  l1 = lambda v, r: jnp.mean(jnp.abs(v - r))

  @jax.jit
  def reference(g_params, d_params):  # one compilation for every reference quantity
    fake_d, fake_g = G(g_params, z_d), G(g_params, z_g)
    outputs = (x, D(d_params, x), fake_d, D(d_params, fake_d), fake_g, D(d_params, fake_g))
    d_grads = jax.grad(lambda p: l1(x, D(p, x)) - 0.25 * l1(fake_d, D(p, fake_d)))(d_params)
    g_grads = jax.grad(lambda p: l1(G(p, z_g), D(d_params, G(p, z_g))))(g_params)
    return outputs, d_grads, g_grads

  outputs, d_grads, g_grads = reference(state.g_params, state.d_params)
  loss = lambda v, r: np.mean(np.abs(np.asarray(v, np.float64) - np.asarray(r, np.float64)))
  real, fake_d, fake = (loss(*outputs[i:i + 2]) for i in (0, 2, 4))
  balance = 0.7 * real - fake
  np.testing.assert_allclose(metrics['loss_real'], real, rtol=1e-5)
  np.testing.assert_allclose(metrics['loss_fake'], fake, rtol=1e-5)
  np.testing.assert_allclose(metrics['d_loss'], real - 0.25 * fake_d, rtol=1e-5)
  np.testing.assert_allclose(metrics['M'], real + abs(balance), rtol=1e-5)
  np.testing.assert_allclose(new.k, np.clip(0.25 + 0.05 * balance, 0, 1), rtol=1e-5)
  # k from the step's own logged losses and the previous k, in float64 (not new.k: the
  # logged k must be the controller's update, whatever the state holds)
  logged = {k: float(metrics[k]) for k in ('loss_real', 'loss_fake', 'k')}
  np.testing.assert_allclose(
      logged['k'], np.clip(0.25 + 0.05 * (0.7 * logged['loss_real'] - logged['loss_fake']), 0, 1),
      rtol=1e-6)

  o = config.optim
  for params, grads, updated, lr in ((state.d_params, d_grads, new.d_params, o.d_lr),
                                     (state.g_params, g_grads, new.g_params, o.g_lr)):
    tx = optax.adam(lr, o.b1, o.b2, o.eps)
    expected = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(updated)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_step_schedule_against_direct_halving():
  config = tiny(**{'optim.g_lr': 8e-5, 'optim.d_lr': 1e-4, 'optim.lr_update_step': 7,
                   'optim.lr_floor': 2e-5})
  g_lr, d_lr = 8e-5, 1e-4
  for step in range(60):  # carpedm20: after the step with index = -1 mod S, lr <- max(lr/2, floor)
    got = began.learning_rates(config, jnp.int32(step), jnp.float32(1))
    np.testing.assert_allclose(got, (g_lr, d_lr), rtol=1e-6)
    if step % 7 == 6:
      g_lr, d_lr = max(g_lr / 2, 2e-5), max(d_lr / 2, 2e-5)
  assert (g_lr, d_lr) == (2e-5, 2e-5)  # the floor was reached


def test_plateau_schedule_against_carpedm20s_rule():
  """advance_schedule over a sequence of M equals BEGAN-pytorch's deque rule (with no decay at
  the first window, which has nothing to compare with) and stops at the floor."""
  window, lr0, floor = 4, 1e-4, 1e-5
  config = tiny(**{'optim.schedule': 'plateau', 'optim.lr_update_step': window,
                   'optim.g_lr': lr0, 'optim.d_lr': lr0, 'optim.lr_floor': floor})
  rng = np.random.default_rng(0)
  measures = np.concatenate([np.linspace(1.0, 0.5, 12), np.full(8, 0.5),  # falls, then stalls
                             0.5 + 0.1 * rng.random(20),
                             np.linspace(0.5, 0.2, 8)]).astype(np.float32)
  history, prev, lr = collections.deque([0.0] * window, window), np.inf, lr0
  scale, m_sum, m_prev = jnp.float32(1), jnp.float32(0), jnp.float32(np.inf)
  advance = jax.jit(functools.partial(began.advance_schedule, config))
  decays = 0
  for step, m in enumerate(measures):
    np.testing.assert_allclose(began.learning_rates(config, jnp.int32(step), scale)[0], lr,
                               rtol=1e-6)
    scale, m_sum, m_prev, decayed = advance(jnp.int32(step), scale, m_sum, m_prev, m)
    history.append(float(m))
    expect_decay = False
    if step % window == window - 1:
      current = np.mean(history)
      if current > prev * 0.9999 and lr > floor:
        lr, expect_decay = max(lr * 0.5, floor), True
      prev = current
      np.testing.assert_allclose(m_prev, prev, rtol=1e-6)
    assert bool(decayed) == expect_decay, step
    decays += expect_decay
  assert decays >= 2 and lr == floor


def test_plateau_decay_restarts_adam_moments():
  config = tiny(**{'optim.schedule': 'plateau', 'optim.lr_update_step': 1})
  state = began.init_state(config, jax.random.PRNGKey(0)).replace(m_prev=jnp.float32(0))
  new, metrics = jax.jit(functools.partial(began.train_step, config))(state, digits(config))
  # M > 0 = the previous window's mean: a stall, so the lr halves for the next step
  assert float(new.lr_scale) == 0.5 and metrics['g_lr'] == np.float32(config.optim.g_lr)
  assert (began.learning_rates(config, new.step, new.lr_scale)[0]
          == np.float32(config.optim.g_lr / 2))
  for opt in (new.g_opt, new.d_opt):
    assert int(opt.count) == 0 and not any(np.any(m) for m in jax.tree.leaves((opt.mu, opt.nu)))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """An uninterrupted run and one stopped at step 10 and resumed, with the plateau schedule
  deciding every 5 steps, so the checkpoint carries k, the lr and the M window."""
  root = tmp_path_factory.mktemp('runs')
  config = lambda steps: tiny(num_steps=steps, **{'optim.schedule': 'plateau',
                                                  'optim.lr_update_step': 5,
                                                  'optim.g_lr': 1e-3, 'optim.d_lr': 1e-3})
  whole = trainer.train(config(30), str(root / 'a'))
  first = trainer.train(config(10), str(root / 'b'))
  resumed = trainer.train(config(30), str(root / 'b'))
  return root, whole, first, resumed


def test_k_survives_a_checkpoint_round_trip(runs):
  root, _, first, _ = runs
  _, restored = checkpoint.load(str(root / 'b'), 10)
  assert 0 < float(first.k) < 1
  assert_same_state(first, restored)


def test_resumed_run_is_bitwise_identical(runs):
  root, whole, _, resumed = runs
  assert int(resumed.step) == 30
  assert_same_state(whole, resumed)
  a, b = read_metrics(root / 'a'), read_metrics(root / 'b')
  assert [(m['M'], m['k'], m['g_lr']) for m in a] == [(m['M'], m['k'], m['g_lr']) for m in b]


def test_measure_falls_on_tiny_data(runs):
  root = runs[0]
  logged = read_metrics(root / 'a')
  ms = [m['M_mean'] for m in logged]  # M at one step is noisy on 8 images; its mean is not
  assert ms[-1] < 0.8 * ms[0], ms
  assert all(0 <= m['k'] <= 1 for m in logged)
  assert os.path.exists(root / 'a' / 'samples' / 'samples' / 'step_00000030.png')
  assert os.path.exists(root / 'a' / 'samples' / 'reconstructions' / 'step_00000030.png')


def test_figures_from_runs(runs, tmp_path):
  root, whole, _, _ = runs
  config = tiny(**{'figures.z_steps': 5, 'figures.pairs': 2, 'figures.points': 4})
  paths = began_figures.figures(config, whole, str(root / 'a'))
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['convergence.png', 'interpolation_generated.png', 'interpolation_real.png']
  assert all(os.path.dirname(p) == str(root / 'a' / 'figures') for p in paths)
  real = Image.open(root / 'a' / 'figures' / 'interpolation_real.png')
  assert real.width > real.height  # 2 rows of 4 + 2 images
  path = began_figures.gamma_figure([str(root / 'a'), str(root / 'b')], str(tmp_path / 'gamma.png'),
                            num_samples=4)
  assert Image.open(path).width > 1.5 * Image.open(path).height  # two sheets side by side


def test_find_latents_fits_a_generated_image():
  config = tiny()
  state = began.init_state(config, jax.random.PRNGKey(0))
  target = began.generate(config, state, began.sample_latents(config, jax.random.PRNGKey(1), 2))
  target = target['samples']
  start = began_figures.find_latents(config, state, target, steps=0)
  fitted = began_figures.find_latents(config, state, target, steps=100, lr=0.05)
  error = lambda z: float(jnp.mean(jnp.abs(target - began.generate(config, state, z)['samples'])))
  assert error(fitted) < 0.5 * error(start)
  assert float(jnp.max(jnp.abs(fitted))) <= 1.0


def test_shared_z_uses_one_draw():
  config = tiny(**{'began.shared_z': True})
  state = began.init_state(config, jax.random.PRNGKey(0))
  _, z_d, z_g = began.step_inputs(config, state, digits(config))
  np.testing.assert_array_equal(z_d, z_g)


def _conv_dtypes(config, state, images):
  """The operand dtypes of every convolution in the jaxpr of one training step."""
  jaxpr = jax.make_jaxpr(functools.partial(began.train_step, config))(state, images)
  found = set()

  def walk(j):
    for eqn in j.eqns:
      if eqn.primitive.name == 'conv_general_dilated':
        found.add(tuple(str(v.aval.dtype) for v in eqn.invars))
      for sub in jax.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jaxpr.jaxpr)
  return found


def test_bfloat16_convolves_in_bfloat16_and_keeps_the_state_float32():
  """model.dtype=bfloat16 is the compute dtype: every convolution of the step (forward and
  backward) takes bfloat16 operands, while parameters, Adam moments and k stay float32."""
  for dtype in ('float32', 'bfloat16'):
    config = tiny(**{'model.dtype': dtype, 'model.resolution': 16})
    state = began.init_state(config, jax.random.PRNGKey(0))
    images = digits(config)
    assert _conv_dtypes(config, state, images) == {(dtype, dtype)}
  new, metrics = jax.jit(functools.partial(began.train_step, config))(state, images)
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  assert {x.dtype for x in jax.tree.leaves((new.g_params, new.d_params, new.g_opt, new.k))} <= {
      np.dtype('float32'), np.dtype('int32')}


# BEGAN's networks written out in numpy (spec §4, §4.1): 3x3 'SAME' convs (TF padding), ELU,
# nearest x2 up-sampling, linear FC layers; skips concatenate the up-sampled h0 after the
# level's own input, and a vanishing residual blends carry * in + (1 - carry) * ELU(conv(in))
# wherever a stride-1 conv keeps the shape (not the stem).


def _np_conv(x, p, stride=1):
  b, size, _, _ = x.shape
  out = -(-size // stride)
  pad = max((out - 1) * stride + 3 - size, 0)
  x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
  span = (out - 1) * stride + 1
  k = np.asarray(p['kernel'], np.float64)
  return sum(np.einsum('bhwc,cd->bhwd', x[:, i:i + span:stride, j:j + span:stride], k[i, j])
             for i in range(3) for j in range(3)) + np.asarray(p['bias'], np.float64)


def _np_elu(x):
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _np_conv_elu(x, p, carry, stride=1):
  y = _np_elu(_np_conv(x, p, stride))
  if carry is not None and stride == 1 and y.shape == x.shape:
    y = carry * x + (1 - carry) * y
  return y


def _np_up(x, factor):
  return x.repeat(factor, axis=1).repeat(factor, axis=2)


def _np_dense(x, p):
  return x @ np.asarray(p['kernel'], np.float64) + np.asarray(p['bias'], np.float64)


def _np_decoder(p, code, levels, n, skip=False, carry=None, tanh=False):
  x = h0 = _np_dense(np.asarray(code, np.float64), p['fc']).reshape(len(code), 8, 8, n)
  for level in range(levels):
    if level:
      x = _np_up(x, 2)
      if skip:
        x = np.concatenate([x, _np_up(h0, 2 ** level)], axis=-1)
    for r in range(2):
      x = _np_conv_elu(x, p[f'level{level}_conv{r}'], carry)
  out = _np_conv(x, p['to_image'])
  return np.tanh(out) if tanh else out


def _np_encoder(p, x, levels, carry=None):
  x = _np_conv_elu(np.asarray(x, np.float64), p['stem'], None)
  for level in range(levels):
    for r in range(2):
      x = _np_conv_elu(x, p[f'level{level}_conv{r}'], carry)
    if level < levels - 1:
      x = _np_conv_elu(x, p[f'level{level}_down'], None, stride=2)
  return _np_dense(x.reshape(len(x), -1), p['embed'])


def _np_autoencoder(p, x, levels, n, skip=False, carry=None, tanh=False):
  return _np_decoder(p['decoder'], _np_encoder(p['encoder'], x, levels, carry), levels, n, skip,
                     carry, tanh)


@pytest.mark.parametrize('skip, tanh', [(False, False), (True, False), (False, True)])
def test_generator_and_autoencoder_against_numpy(skip, tanh):
  """32x32 (three levels, so h0 is up-sampled x2 and x4 for the skips): G and D equal the
  numpy networks. With skips the first conv of each later level takes h0's n channels on top
  of its n, and those channels matter: zeroing their kernel slices changes the output.
  model.tanh ends both decoders, G's and D's, in a tanh."""
  config = tiny(**{'model.resolution': 32, 'model.n': 4, 'model.h': 6, 'model.z': 5,
                   'model.image_channels': 1, 'model.skip': skip, 'model.tanh': tanh})
  state = began.init_state(config, jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)  # biases start at 0: give them values so they count
  g_params, d_params = jax.tree.map(
      lambda w: w + 0.1 * rng.normal(size=w.shape).astype(np.float32),
      (state.g_params, state.d_params))
  g, d = began.build_models(config)
  z = began.sample_latents(config, jax.random.PRNGKey(1), 2)
  x = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 1)), jnp.float32)
  fake = jax.jit(lambda p, z: g.apply({'params': p}, z))(g_params, z)
  np.testing.assert_allclose(fake, _np_decoder(g_params, z, 3, 4, skip, tanh=tanh), rtol=1e-4,
                             atol=1e-5)
  rec = jax.jit(lambda p, x: d.apply({'params': p}, x))(d_params, x)
  np.testing.assert_allclose(rec, _np_autoencoder(d_params, x, 3, 4, skip, tanh=tanh), rtol=1e-4,
                             atol=1e-5)
  for level in (1, 2):
    assert g_params[f'level{level}_conv0']['kernel'].shape == (3, 3, 8 if skip else 4, 4)
  if skip:
    cut = jax.tree.map(lambda w: w, g_params)
    cut['level2_conv0'] = {**cut['level2_conv0'],
                           'kernel': cut['level2_conv0']['kernel'].at[:, :, 4:].set(0)}
    assert np.abs(fake - g.apply({'params': cut}, z)).max() > 1e-3


def test_vanishing_residuals_against_numpy_in_the_step():
  """With residual_steps = 10, the step with index 4 runs both networks at carry 1 - 4/10:
  its logged L(x) and L(G(z_G)) equal the numpy networks' at that carry (and not at carry 0,
  the plain networks), and so do G's samples and D's reconstructions of them, pixel by
  pixel."""
  config = tiny(**{'model.resolution': 16, 'model.n': 4, 'model.h': 6, 'model.z': 5,
                   'model.residual_steps': 10})
  state = began.init_state(config, jax.random.PRNGKey(0)).replace(step=jnp.int32(4))
  images = digits(config)
  _, metrics = jax.jit(functools.partial(began.train_step, config))(state, images)
  x, _, z_g = began.step_inputs(config, state, images)
  x = np.asarray(x, np.float64)
  tanh = config.model.tanh  # the digits config's tanh ends both decoders

  def losses(carry):
    fake = _np_decoder(state.g_params, z_g, 2, 4, carry=carry, tanh=tanh)
    rec = lambda v: _np_autoencoder(state.d_params, v, 2, 4, carry=carry, tanh=tanh)
    return np.mean(np.abs(x - rec(x))), np.mean(np.abs(fake - rec(fake)))

  # image by image: generate() at that state runs the same carry
  out = jax.jit(functools.partial(began.generate, config))(state, z_g)
  fake = _np_decoder(state.g_params, z_g, 2, 4, carry=0.6, tanh=tanh)
  np.testing.assert_allclose(out['samples'], fake, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['reconstructions'],
                             _np_autoencoder(state.d_params, fake, 2, 4, carry=0.6, tanh=tanh),
                             rtol=1e-4, atol=1e-5)
  got = (float(metrics['loss_real']), float(metrics['loss_fake']))
  np.testing.assert_allclose(got, losses(0.6), rtol=2e-5)
  assert np.abs(np.subtract(got, losses(0.0))).max() > 1e-3


def test_k_follows_the_logged_losses_and_clips_at_both_ends():
  """Over several steps each logged k equals clip(k_prev + lambda_k (gamma L(x) - L(G(z_G))),
  0, 1) from that step's logged losses, and the state carries it to the next step's D loss
  (L_D = L(x) - k_prev L(G(z_D))). A fast controller pushes k to 1 (gamma = 1: L(x) >
  L(G(z))) and to 0 (gamma = 0)."""
  for gamma, lam, k0, bound in ((1.0, 0.3, 0.0, 1.0), (0.0, 3.0, 1.0, 0.0)):
    config = tiny(**{'loss.gamma': gamma, 'loss.lambda_k': lam})
    state = began.init_state(config, jax.random.PRNGKey(0)).replace(k=jnp.float32(k0))
    step = jax.jit(functools.partial(began.train_step, config))
    k_prev, ks = k0, []
    for _ in range(6):
      state, metrics = step(state, digits(config))
      m = {k: float(v) for k, v in metrics.items()}
      np.testing.assert_allclose(
          m['k'], np.clip(k_prev + lam * (gamma * m['loss_real'] - m['loss_fake']), 0, 1),
          rtol=1e-6, atol=1e-7)
      assert m['d_loss'] <= m['loss_real'] + 1e-7 and (k_prev > 0 or m['d_loss'] == m['loss_real'])
      assert float(state.k) == np.float32(m['k'])
      k_prev = m['k']
      ks.append(k_prev)
    assert ks[-1] == bound and 0 < ks[0] < 1, ks


def test_vanishing_residuals_start_as_identities():
  """At carry 1 every width-keeping conv passes its input through, so D's output ignores those
  convs' weights; the carry falls to 0 at step residual_steps, when they count fully."""
  config = tiny(**{'model.residual_steps': 100})
  assert float(began.carry(config, 0)) == 1.0 and float(began.carry(config, 150)) == 0.0
  assert began.carry(tiny(), 0) is None
  _, d = began.build_models(config)
  params = began.init_state(config, jax.random.PRNGKey(0)).d_params
  bumped = jax.tree.map(lambda a: a, params)
  conv = bumped['encoder']['level0_conv1']
  conv['kernel'] = conv['kernel'] + 0.5
  x = jnp.asarray(digits(config), jnp.float32) / 127.5 - 1
  out = lambda p, c: np.asarray(d.apply({'params': p}, x, c))
  np.testing.assert_array_equal(out(params, 1.0), out(bumped, 1.0))
  assert np.abs(out(params, 0.0) - out(bumped, 0.0)).max() > 1e-3


def _xla_flops(fn, *args):
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  return (cost[0] if isinstance(cost, list) else cost)['flops']


def test_flops_count_every_layer():
  """forward_flops against the layer shapes written out; flops() against XLA's own count of
  the compiled training step, per image (the difference between batch 16 and batch 8, which
  cancels the per-parameter Adam work). XLA skips the products with 'SAME' padding, so its
  numbers are scaled by the ratio it gives for the forward passes; the G part alone is checked
  by what shared_z (one G forward less) saves."""
  shape = {'model.resolution': 16, 'model.n': 4, 'model.h': 6, 'model.z': 5,
           'model.image_channels': 1}
  config = tiny(**shape)
  conv = lambda r, cin, cout: 2 * r * r * 9 * cin * cout
  decoder = 2 * 6 * 256 + 2 * conv(8, 4, 4) + 2 * conv(16, 4, 4) + conv(16, 4, 1)
  encoder = (conv(16, 1, 4) + 2 * conv(16, 4, 4) + conv(8, 4, 4)  # stem, level 0, down
             + conv(8, 4, 8) + conv(8, 8, 8) + 2 * 8 * 8 * 8 * 6)  # level 1, embed
  g, d = began.forward_flops(config)
  assert d == encoder + decoder
  assert g == decoder - 2 * 6 * 256 + 2 * 5 * 256

  shape['model.n'] = 16  # wide enough that the convs dominate XLA's count
  steps = {}
  for shared in (False, True):
    config = tiny(**{'began.shared_z': shared}, **shape)
    state = began.init_state(config, jax.random.PRNGKey(0))
    cost = [_xla_flops(functools.partial(began.train_step, config), state,
                       jnp.zeros((b, 16, 16, 1), jnp.uint8)) for b in (8, 16)]
    steps[shared] = (cost[1] - cost[0]) / 8
  g, d = began.forward_flops(config)
  g_model, d_model = began.build_models(config)
  xla_g = _xla_flops(lambda p, z: g_model.apply({'params': p}, z), state.g_params,
                     jnp.zeros((8, 5))) / 8
  xla_d = _xla_flops(lambda p, x: d_model.apply({'params': p}, x), state.d_params,
                     jnp.zeros((8, 16, 16, 1))) / 8
  padding = (g + d) / (xla_g + xla_d)
  (reference, necessary), (_, necessary_shared) = (
      began.flops(tiny(**{'began.shared_z': s}, **shape)) for s in (False, True))
  np.testing.assert_allclose(necessary, steps[False] * padding, rtol=0.02)
  np.testing.assert_allclose(necessary_shared, steps[True] * padding, rtol=0.02)
  # carpedm20's step is this one with one z: one G forward less
  np.testing.assert_allclose(reference, steps[True] * padding, rtol=0.02)
  np.testing.assert_allclose(necessary - necessary_shared, (steps[False] - steps[True]) * g / xla_g,
                             rtol=0.02)


@pytest.mark.parametrize('overrides, message', [
    ({'model.resolution': 48}, 'model.resolution=48'),
    ({'model.resolution': 4}, 'model.resolution=4'),
    ({'optim.schedule': 'cosine'}, 'optim.schedule'),
    ({'optim.lr_floor': 1.0}, 'optim.lr_floor'),
    ({'loss.gamma': 1.5}, 'loss.gamma'),
    ({'loss.eta': 0.5}, 'loss.eta'),
    ({'model.g_n': -1}, 'model.g_n=-1'),
    ({'model.d_n': -2}, 'model.d_n=-2'),
])
def test_impossible_values_are_one_line_errors(overrides, message):
  with pytest.raises(UserError, match=message):
    config_lib.validate(tiny(**overrides))


def test_metrics_are_logged(runs):
  root = runs[0]
  logged = read_metrics(root / 'a')
  for key in ('M', 'M_mean', 'k', 'k_mean', 'loss_real', 'loss_fake', 'balance', 'd_loss',
              'g_lr', 'd_lr'):
    assert all(key in m for m in logged)
  with open(root / 'a' / 'config.json') as f:
    assert json.load(f)['method'] == 'began'


def test_the_step_logs_the_learning_rates_of_its_step_schedule():
  """g_lr and d_lr in the metrics are the rates the step applied: halved after every
  lr_update_step steps ('step' schedule), down to the floor."""
  config = tiny(**{'optim.g_lr': 8e-5, 'optim.d_lr': 1e-4, 'optim.lr_update_step': 7,
                   'optim.lr_floor': 1e-5})
  state = began.init_state(config, jax.random.PRNGKey(0))
  step = jax.jit(functools.partial(began.train_step, config))
  for at, factor in ((0, 1), (6, 1), (7, 0.5), (14, 0.25)):
    _, metrics = step(state.replace(step=jnp.int32(at)), digits(config))
    np.testing.assert_allclose([metrics['g_lr'], metrics['d_lr']],
                               [8e-5 * factor, 1e-4 * factor], rtol=1e-6)


def test_m_and_k_are_logged_at_the_step_and_their_means_beside(runs, tmp_path):
  """metrics.jsonl's M and k are the logged step's own values (the last of its interval),
  M_mean and k_mean the interval's means: checked against the same run logged at every step
  (one step per dispatch, so every step is its own interval). The run logged every 10 steps
  fuses 5 steps per dispatch, so the last step is not a dispatch's only one."""
  root = runs[0]
  config = tiny(num_steps=30, steps_per_dispatch=1, log_every=1,
                **{'optim.schedule': 'plateau', 'optim.lr_update_step': 5,
                   'optim.g_lr': 1e-3, 'optim.d_lr': 1e-3})
  trainer.train(config, str(tmp_path / 'each'))
  each = {m['step']: m for m in read_metrics(tmp_path / 'each')}
  assert sorted(each) == list(range(1, 31))
  logged = read_metrics(root / 'a')
  assert [m['step'] for m in logged] == [10, 20, 30]
  for m in logged:
    steps = range(m['step'] - 9, m['step'] + 1)
    for name in ('M', 'k'):
      np.testing.assert_allclose(m[name], each[m['step']][name], rtol=1e-4)
      np.testing.assert_allclose(m[f'{name}_mean'], np.mean([each[s][name] for s in steps]),
                                 rtol=1e-4)
    assert abs(m['M'] - m['M_mean']) > 1e-3 * m['M_mean']  # the two are not the same number
    np.testing.assert_allclose(m['loss_real'], np.mean([each[s]['loss_real'] for s in steps]),
                               rtol=1e-4)  # the other metrics stay interval means
  _, state = checkpoint.load(str(root / 'a'))
  assert logged[-1]['k'] == float(state.k)  # the controller's k after the logged step


def test_flops_use_the_widths_of_g_and_d():
  """forward_flops with g_n != d_n against the layer shapes written out: G at width g_n, D's
  encoder (d_n, 2 d_n) and decoder at d_n."""
  config = tiny(**{'model.resolution': 16, 'model.n': 4, 'model.g_n': 3, 'model.d_n': 5,
                   'model.h': 6, 'model.z': 5, 'model.image_channels': 1})
  conv = lambda r, cin, cout: 2 * r * r * 9 * cin * cout
  decoder = lambda n, c: 2 * c * 64 * n + 2 * conv(8, n, n) + 2 * conv(16, n, n) + conv(16, n, 1)
  encoder = lambda n: (conv(16, 1, n) + 2 * conv(16, n, n) + conv(8, n, n) + conv(8, n, 2 * n)
                       + conv(8, 2 * n, 2 * n) + 2 * 64 * 2 * n * 6)
  g, d = began.forward_flops(config)
  assert g == decoder(3, 5)
  assert d == encoder(5) + decoder(5, 6)
  assert began.flops(config) == (3 * g + 8 * d, 4 * g + 8 * d)


def test_convergence_figure_draws_m_mean_and_old_runs_m(tmp_path, monkeypatch):
  """The M curve is M_mean (the interval means: smooth) where the log has it, and M in a run
  logged before M_mean existed (where M was that mean)."""
  drawn = []
  monkeypatch.setattr(began_figures.figures_lib, 'curve_with_snapshots',
                      lambda steps, values, snapshots, path: drawn.append((steps, values)) or path)
  for records, expected in (([{'step': 10, 'M': 1.0, 'M_mean': 2.0},
                              {'step': 20, 'M': 3.0, 'M_mean': 4.0}], [2.0, 4.0]),
                            ([{'step': 10, 'M': 1.0}, {'step': 20, 'M': 3.0}], [1.0, 3.0])):
    (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    began_figures.convergence_figure(tiny(), str(tmp_path), str(tmp_path / 'c.png'))
    assert drawn.pop() == ([10, 20], expected)
