"""The engine end to end: learning, exact resume, data paths, divergence, checkpoint safety."""
import functools
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, tiny_config
from gans import trainer
from gans.errors import UserError


def assert_same_state(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x), np.asarray(y))


def read_metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_learns_the_data_mean(tmp_path):
  """After a short run the (EMA) generator's average image moves most of the way to the data's.

  The decay is lowered so that 300 steps are many EMA time constants."""
  from gans import data
  from gans.methods import msggan
  config = tiny_config(num_steps=300, batch_size=16, steps_per_dispatch=10, log_every=100,
                       sample_every=300, checkpoint_every=300, num_samples=64,
                       **{'msggan.ema_decay': 0.9})
  real = data.make_source(config.data, 8, 1).load_all().astype(np.float32) / 127.5 - 1
  target = real.mean(0)

  def gap(state):
    z = msggan.sample_latents(config, jax.random.PRNGKey(7), 256)
    fake = np.asarray(msggan.generate(config, state, z)[-1])
    return float(np.abs(fake.mean(0) - target).mean())

  start = msggan.init_state(config, jax.random.PRNGKey(config.seed))
  end = trainer.train(config, str(tmp_path))
  assert gap(end) < 0.5 * gap(start), (gap(start), gap(end))
  assert os.path.exists(tmp_path / 'samples' / 'all_scales' / 'step_00000300.png')
  assert os.listdir(tmp_path / 'tensorboard')


def test_resumed_run_is_bitwise_identical(tmp_path):
  uninterrupted = trainer.train(tiny_config(num_steps=30), str(tmp_path / 'a'))
  trainer.train(tiny_config(num_steps=10), str(tmp_path / 'b'))  # stops at 10 with a checkpoint
  resumed = trainer.train(tiny_config(num_steps=30), str(tmp_path / 'b'))
  assert int(resumed.step) == 30
  assert_same_state(uninterrupted, resumed)
  a, b = read_metrics(tmp_path / 'a'), read_metrics(tmp_path / 'b')
  assert [m['d_loss'] for m in a] == [m['d_loss'] for m in b]


def test_sigterm_checkpoints_and_resume_matches(tmp_path):
  """A SIGTERM mid-run saves at the next dispatch boundary; the resumed run equals the whole."""
  workdir = str(tmp_path / 'killed')
  args = [os.path.join(ROOT, 'train.py'), '--config', 'configs/msggan_digits.py:tiny',
          '--workdir', workdir, '--config.num_steps=100000', '--config.log_every=5',
          '--config.checkpoint_every=100000', '--config.sample_every=100000']
  proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  metrics, deadline = os.path.join(workdir, 'metrics.jsonl'), time.time() + 120
  while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics)):
    time.sleep(0.2)  # training is under way once the first line is logged
  time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err
  steps = [int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit()]
  assert len(steps) == 1 and steps[0] % 5 == 0 and steps[0] > 0
  assert f'stopped by a signal at step {steps[0]}; saved {workdir}/checkpoints/{steps[0]}' in err
  total = steps[0] + 10
  resumed = trainer.train(tiny_config(num_steps=total, log_every=5), workdir)
  whole = trainer.train(tiny_config(num_steps=total, log_every=5), str(tmp_path / 'whole'))
  assert_same_state(whole, resumed)
  logged = [m['step'] for m in read_metrics(workdir)]  # no step twice after the resume
  assert logged == list(range(5, total + 1, 5))


def test_streamed_and_on_device_data_give_the_same_run(tmp_path):
  on_device = trainer.train(tiny_config(**{'data.on_device': 'yes'}), str(tmp_path / 'a'))
  streamed = trainer.train(tiny_config(**{'data.on_device': 'no'}), str(tmp_path / 'b'))
  assert_same_state(on_device, streamed)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=10), workdir)
  exploding = tiny_config(num_steps=30, **{'optim.d_lr': 1e30, 'optim.g_lr': 1e30})
  with pytest.raises(trainer.Diverged,
                     match=r'NaN/Inf at step 1\d; .*last good checkpoint is step 10'):
    trainer.train(exploding, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10']
  trainer.train(tiny_config(num_steps=20), workdir)  # the kept checkpoint still restores


def test_incompatible_checkpoint_is_refused(tmp_path):
  trainer.train(tiny_config(num_steps=10), str(tmp_path))
  with pytest.raises(UserError, match=r'another config \(model.width: 16 -> 8\)'):
    trainer.train(tiny_config(num_steps=20, **{'model.width': 8}), str(tmp_path))


def test_trains_from_tfds_under_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  config = tiny_config(**{'data.name': 'mnist'})
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    state = trainer.train(config, str(tmp_path))
  assert int(state.step) == config.num_steps


def test_trains_from_an_image_folder(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  for i in range(12):
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(tmp_path / f'{i}.png')
  config = tiny_config(**{'data.name': 'folder', 'data.path': str(tmp_path), 'data.flip': True,
                          'model.image_channels': 3})
  state = trainer.train(config, str(tmp_path / 'run'))
  assert int(state.step) == config.num_steps


def _steps(config, n=3):
  from gans.data import sources
  from gans.methods import msggan
  images = sources.make_source(config.data, 8, config.model.image_channels).load_all()[:8]
  state = msggan.init_state(config, jax.random.PRNGKey(0))
  step = jax.jit(lambda s, x: msggan.train_step(config, s, x))
  for _ in range(n):
    state, metrics = step(state, images)
  return state, jax.device_get(metrics)


def _penalties(config, d_fn, real, fake, x, key):
  """The step's D-loss penalty written from spec §7.2 (WGAN-GP, one eps per sample for every
  scale, the penalty averaged over scales) and for ns-r1 (R1 through the pyramid), or 0."""
  name = config.loss.name
  if name == 'wgan-gp':
    eps = jax.random.uniform(key, (x.shape[0], 1, 1, 1))
    x_hat = [eps * r + (1 - eps) * f for r, f in zip(real, fake)]
    grads = jax.grad(lambda xs: d_fn(xs).sum())(x_hat)
    norms = [jnp.sqrt(jnp.sum(g ** 2, axis=(1, 2, 3))) for g in grads]
    return config.loss.gp_weight * sum(jnp.mean((n - 1) ** 2) for n in norms) / len(norms)
  if name == 'ns-r1':
    from test_step_math import pyramid_of
    g = jax.grad(lambda x: d_fn(pyramid_of(x, config.model.depth)).sum())(x)
    return 0.5 * config.loss.r1_gamma * jnp.mean(jnp.sum(g ** 2, axis=(1, 2, 3)))
  return 0.0


@pytest.mark.parametrize('loss', ['relativistic-hinge', 'hinge', 'standard-gan', 'wgan-gp',
                                  'lsgan', 'lsgan-sigmoid', 'lsgan_batchmean', 'ns-r1'])
def test_every_loss_trains_in_the_step(loss):
  """loss.name reaches the step: the logged D and G losses are spec §7's numpy formulas
  (tests/test_losses.py SPEC) on D's scores recomputed here for the step's batch and z (D's old
  params for the D loss, its updated ones for the G loss), plus the drift and the penalty
  written out from the spec. Then a few more steps stay finite."""
  from gans.methods import msggan
  from test_losses import SPEC
  from test_step_math import digits, forward, init, latents, pyramid, step_keys
  config = tiny_config(**{'loss.name': loss})
  images = digits(config)
  state = init(config)
  step = jax.jit(functools.partial(msggan.train_step, config))
  after, metrics = step(state, images)
  _, k_z, k_pen, _ = step_keys(state)
  z = jnp.asarray(latents(k_z, len(images), config.model.latent_size), jnp.float32)
  g_fn, d_fn = forward(config)
  real = pyramid(images, config.model.depth)

  @jax.jit
  def recompute(d_old, d_new, g_params):
    fake = g_fn(g_params, z)
    penalty = _penalties(config, lambda xs: d_fn(d_old, xs), real, fake, real[-1], k_pen)
    return [d_fn(p, xs) for p in (d_old, d_new) for xs in (real, fake)], penalty

  scores, penalty = recompute(state.d_params, after.d_params, state.g_params)
  r, f, r_new, f_new = (np.asarray(x, np.float64) for x in scores)
  d_spec, g_spec = SPEC[loss]
  drift = 0.001 * np.mean(r ** 2) if loss == 'wgan-gp' else 0.0
  np.testing.assert_allclose(metrics['d_loss'], d_spec(r, f) + drift + float(penalty),
                             rtol=1e-4)
  np.testing.assert_allclose(metrics['g_loss'], g_spec(r_new, f_new), rtol=1e-4)
  if loss in ('wgan-gp', 'ns-r1'):
    assert penalty > 0
  for _ in range(2):
    after, metrics = step(after, images)
  assert all(np.isfinite(v) for v in metrics.values()), metrics


def test_msggan_v1_options_train():
  config = tiny_config(**{'model.spectral_norm': True, 'model.equalized': False,
                          'model.tanh': True, 'model.mbstd': 'v1', 'model.pixelnorm': False,
                          'model.g_dilation': 2, 'model.d_dilation': 2,
                          'msggan.fresh_g_latents': True, 'optim.g_lr': 1e-4, 'optim.d_lr': 4e-4})
  from gans.methods import msggan
  before = msggan.init_state(config, jax.random.PRNGKey(0))
  after, metrics = _steps(config)
  assert all(np.isfinite(v) for v in metrics.values())
  u_before, u_after = jax.tree.leaves(before.d_stats), jax.tree.leaves(after.d_stats)
  assert u_before and not all(np.array_equal(a, b) for a, b in zip(u_before, u_after))


def test_bfloat16_compute_keeps_float32_state():
  state, metrics = _steps(tiny_config(**{'model.dtype': 'bfloat16'}))
  assert all(np.isfinite(v) for v in metrics.values())
  leaves = jax.tree.leaves((state.g_params, state.d_params, state.g_opt, state.g_ema))
  assert {x.dtype for x in leaves} <= {np.dtype('float32'), np.dtype('int32')}


def test_fused_scan_dispatch_matches_step_by_step():
  """The accelerator path (K steps in one lax.scan) computes what the CPU path computes."""
  from gans import parallel
  from gans.data import feeding
  from gans.methods import msggan
  config = tiny_config()
  mesh = parallel.make_mesh()
  feeder = feeding.Feeder(msggan.sources(config), msggan.example_spec(config), config, mesh)
  results = []
  for fused in (True, False):
    state = msggan.init_state(config, jax.random.PRNGKey(0))
    dispatch = trainer.Dispatch(msggan.METHOD, config, mesh, feeder.gather, fused=fused)
    for start in (0, 5):
      state, metrics = dispatch(state, *feeder.get(start, 5))
    results.append((state, np.asarray(metrics['d_loss'])))
  (scanned, d_scan), (stepped, d_step) = results
  np.testing.assert_allclose(d_scan, d_step, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(stepped)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('loss', ['relativistic-hinge', 'wgan-gp'])
def test_optimised_step_equals_the_straightforward_one(loss):
  """Reusing the D step's G forward (and its VJP) for the G step changes nothing computed.
  (Adam eps 1e-4: see tests/test_parallel.py, which also checks the joined D pass of several
  devices against one device.)"""
  from gans.methods import msggan
  config = tiny_config(**{'loss.name': loss, 'optim.eps': 1e-4})
  images = jax.random.randint(jax.random.PRNGKey(1), (8, 8, 8, 1), 0, 256).astype(jnp.uint8)
  state = msggan.init_state(config, jax.random.PRNGKey(0))
  results = [jax.jit(functools.partial(msggan.train_step, config, optimised=optimised))(
      state, images) for optimised in (True, False)]
  (fast, m_fast), (slow, m_slow) = results
  for k in m_fast:
    np.testing.assert_allclose(m_fast[k], m_slow[k], rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
