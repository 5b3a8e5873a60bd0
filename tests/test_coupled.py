"""CoGAN / SCoGAN: weight sharing, the soft couplings against numpy and their gradient flow,
learning on the embedded digits, bitwise resume, evaluation and figures."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gans import config as config_lib
from gans import regularizers, trainer
from gans.errors import UserError
from gans.methods import coupled
from gans.methods.coupled import figures as coupled_figures
from gans.methods.coupled import step as coupled_step
from gans.metrics import agreement
from gans.models import frozen as frozen_models
from gans.models import vgg
from test_train import assert_same_state, read_metrics


def tiny(variant='tiny', **overrides):
  from configs import cogan_digits_negative
  config = cogan_digits_negative.get_config(variant)
  config.update_from_flattened_dict(overrides)
  config_lib.validate(config)
  return config


def _init(config, key):
  return jax.jit(functools.partial(coupled.init_state, config))(key)


def _frozen(config):
  """The params of the frozen networks config.reg uses, as the trainer passes them."""
  return frozen_models.params(coupled_step.frozen_nets(config))


def _step(config, state, batch):
  """One jitted step: compiling the whole step once is much faster than running it eagerly."""
  return jax.jit(functools.partial(coupled.train_step, config))(state, batch)


def _generate(config, state, z):
  return jax.jit(functools.partial(coupled.generate, config))(state, z)


def _batch(config, n=8):
  return {k: s[np.arange(n)] for k, s in coupled.sources(config).items()}


def _domain_grads(config, state):
  """Gradients of each domain's non-saturating G loss alone, w.r.t. G's parameters."""
  g, d = coupled.build_models(config)
  z = coupled.sample_latents(config, jax.random.PRNGKey(1), 4)

  def loss(params, domain):
    (x_a, x_b, _, _), _ = g.apply({'params': params, **state.g_stats}, z, mutable=['batch_stats'])
    logits = d.apply({'params': state.d_params}, x_a, x_b, train=False)
    return jnp.mean(jax.nn.softplus(-logits[domain]))

  return [jax.grad(loss)(state.g_params, i) for i in (0, 1)]


def _norms(tree):
  return {k: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(v))) for k, v in tree.items()}


def test_shared_blocks_are_one_parameter_updated_by_both_domains():
  config = tiny()
  state = _init(config, jax.random.PRNGKey(0))
  assert sorted(state.g_params) == ['a_4', 'b_4', 'shared_0', 'shared_1', 'shared_2', 'shared_3']
  assert sorted(state.d_params) == ['a_0', 'b_0', 'shared_1', 'shared_2', 'shared_3']
  from_a, from_b = map(_norms, _domain_grads(config, state))
  for i in range(4):  # one parameter, moved by either domain's loss
    assert from_a[f'shared_{i}'] > 0 and from_b[f'shared_{i}'] > 0
  assert from_a['b_4'] == 0 and from_b['a_4'] == 0  # the heads stay per domain


def test_zero_shared_blocks_are_two_independent_gans():
  config = tiny('unshared_tiny')
  state = _init(config, jax.random.PRNGKey(0))
  assert not any(k.startswith('shared') for k in (*state.g_params, *state.d_params))
  from_a, from_b = map(_norms, _domain_grads(config, state))
  assert all(v > 0 for k, v in from_a.items() if k.startswith('a_'))
  assert all(v == 0 for k, v in from_a.items() if k.startswith('b_'))
  assert all(v == 0 for k, v in from_b.items() if k.startswith('a_'))
  # different initial weights (different keys, same distribution)
  assert not np.allclose(state.g_params['a_1']['ConvTranspose_0']['kernel'],
                         state.g_params['b_1']['ConvTranspose_0']['kernel'])
  # D of domain a does not see domain b's images
  g, d = coupled.build_models(config)
  x = jnp.ones((2, 32, 32, 1))
  run = lambda x_b: d.apply({'params': state.d_params}, x, x_b, train=False)[0]
  np.testing.assert_array_equal(run(x), run(-x))


def test_couplings_match_numpy():
  rng = np.random.default_rng(0)
  f = [rng.normal(size=(3, 4, 4, 5)) for _ in range(4)]
  assert np.isclose(regularizers.feature_regularizer(f[:2], f[2:]),
                    np.mean((f[0] - f[2]) ** 2) + np.mean((f[1] - f[3]) ** 2))
  p, q = rng.dirichlet(np.ones(10), 6), rng.dirichlet(np.ones(10), 6)
  assert np.isclose(regularizers.semantic_loss(p, q), np.mean((p - q) ** 2))
  za, zb, z = rng.normal(size=(3, 6, 7))
  assert np.isclose(regularizers.cycle_consistency(za, zb, z),
                    np.mean(np.abs(za - z)) + np.mean(np.abs(zb - z)))
  wa, wb = {'k': rng.normal(size=(3, 3)), 'b': rng.normal(size=3)}, {'k': np.zeros((3, 3)),
                                                                     'b': np.ones(3)}
  assert np.isclose(regularizers.weight_similarity([(wa, wb)]),
                    np.mean(wa['k'] ** 2) + np.mean((wa['b'] - 1) ** 2), rtol=1e-5)

  def np_gram(x):
    b, h, w, c = x.shape
    m = x.reshape(b, h * w, c)
    return np.stack([m[i].T @ m[i] for i in range(b)]) / (h * w * c)

  np.testing.assert_allclose(regularizers.gram(f[0]), np_gram(f[0]), rtol=1e-5)
  per_sample = np.mean([np.mean((np_gram(a) - np_gram(b)) ** 2) for a, b in zip(f[:2], f[2:])])
  batch_mean = np.mean([np.mean((np_gram(a).mean(0) - np_gram(b).mean(0)) ** 2)
                        for a, b in zip(f[:2], f[2:])])
  assert np.isclose(regularizers.style_loss(f[:2], f[2:], per_sample=True), per_sample, rtol=1e-5)
  assert np.isclose(regularizers.style_loss(f[:2], f[2:]), batch_mean, rtol=1e-5)
  assert np.isclose(regularizers.content_loss(f[0], f[1]),
                    np.mean((f[0] - f[1]) ** 2) / (4 * 4 * 5), rtol=1e-5)


COUPLING_FIELDS = {'fr': {'reg.fr': 10.0}, 'sl': {'reg.sl': 10.0, 'reg.sl_classifier': 'untrained'},
                   'cc': {'reg.cc': 10.0}, 'weight_sim': {'reg.weight_sim': 10.0},
                   'pl_content': {'reg.pl_content': 1.0, 'reg.pl_net': 'untrained_vgg19'},
                   'pl_style': {'reg.pl_style': 1.0, 'reg.pl_net': 'untrained_vgg19'}}


# PL's feature net is the slow part of an eager step; its gradient flow is checked term by term.
ALL_COUPLINGS = {k: v for name, fields in COUPLING_FIELDS.items() if not name.startswith('pl')
                 for k, v in fields.items()}


def test_couplings_update_the_generators_and_encoder_never_d_or_frozen_nets():
  """SCoGAN's step with FR, SL, CC and the weight baseline on: D's update is the uncoupled one
  (its step never sees the couplings), the frozen classifier is not in the state, the CC encoder
  learns, both generators move."""
  plain_config = tiny('unshared_tiny')
  config = tiny('unshared_tiny', **ALL_COUPLINGS)
  config.method = 'scogan'
  batch = _batch(config, 4)
  plain = _step(plain_config, _init(plain_config, jax.random.PRNGKey(0)),
                             batch)[0]
  state = _init(config, jax.random.PRNGKey(0))
  after, metrics = _step(config, state, batch)
  assert all(np.isfinite(metrics[k]) and metrics[k] > 0 for k in ('fr', 'sl', 'cc', 'weight_sim'))
  assert_same_state(after.d_params, plain.d_params)
  assert not hasattr(after, 'frozen')  # an argument of the step (Method.frozen), never saved
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != b)), state.e_params,
                                          after.e_params)))
  for domain in 'ab':
    moved = [not np.array_equal(x, y) for k in after.g_params if k.startswith(domain)
             for x, y in zip(jax.tree.leaves(after.g_params[k]),
                             jax.tree.leaves(plain.g_params[k]))]
    assert any(moved)


@pytest.mark.parametrize('name', sorted(COUPLING_FIELDS))
def test_each_coupling_reaches_both_generators_only_where_it_should(name):
  """The term alone: gradients reach both generators (through their images or features, or
  their weights for the baseline); FR only the blocks up to its last compared layer."""
  config = tiny('unshared_tiny', **COUPLING_FIELDS[name])
  state = _init(config, jax.random.PRNGKey(0))
  g, _ = coupled.build_models(config)
  z = coupled.sample_latents(config, jax.random.PRNGKey(3), 4)
  batch = _batch(config, 4)
  real = tuple(jnp.asarray(batch[k], jnp.float32) / 127.5 - 1 for k in 'ab')
  frozen = _frozen(config)

  def term(params):
    gen, _ = g.apply({'params': params, **state.g_stats}, z, mutable=['batch_stats'])
    return coupled_step.g_regularizers(config, frozen, params, state.e_params, z, gen, real,
                                  jax.random.PRNGKey(4))[name][1]

  grads = _norms(jax.grad(term)(state.g_params))
  reached = {k for k, v in grads.items() if v > 0}
  if name == 'fr':  # blocks 0..2 make the compared features; the later ones cannot matter
    assert reached == {'a_0', 'a_1', 'a_2', 'b_0', 'b_1', 'b_2'}
  else:
    assert reached == set(grads), grads


def test_fr_compares_the_first_convt_outputs():
  config = tiny('unshared_tiny', **{'reg.fr': 1.0, 'reg.fr_layers': 2})
  state = _init(config, jax.random.PRNGKey(0))
  g, _ = coupled.build_models(config)
  z = coupled.sample_latents(config, jax.random.PRNGKey(3), 4)
  gen, _ = g.apply({'params': state.g_params, **state.g_stats}, z, mutable=['batch_stats'])
  value = coupled_step.g_regularizers(config, _frozen(config), state.g_params, {}, z, gen, None,
                                 None)['fr'][1]
  f_a, f_b = gen[2], gen[3]
  assert f_a[1].shape[1:3] == (8, 8) and f_a[2].shape[1:3] == (16, 16)
  expected = sum(np.mean((np.asarray(f_a[i]) - np.asarray(f_b[i])) ** 2) for i in (1, 2))
  assert np.isclose(value, expected, rtol=1e-5)


def test_learns_both_domains_on_the_digits(tmp_path):
  """After a short run each generator's mean image moves most of the way to its own domain's
  (and the two domains' means differ: digits vs their negatives)."""
  config = tiny(num_steps=200, batch_size=16, steps_per_dispatch=10, log_every=100,
                sample_every=200, checkpoint_every=200, **{'model.g_divisor': 16})
  reals = {k: s.load_all().astype(np.float32) / 127.5 - 1
           for k, s in coupled.sources(config).items()}

  def gaps(state):
    z = coupled.sample_latents(config, jax.random.PRNGKey(7), 256)
    fakes = _generate(config, state, z)
    return [float(np.abs(np.asarray(f).mean(0) - reals[k].mean(0)).mean())
            for f, k in zip(fakes, 'ab')]

  start = _init(config, jax.random.PRNGKey(config.seed))
  end = trainer.train(config, str(tmp_path))
  for before, after in zip(gaps(start), gaps(end)):
    assert after < 0.5 * before, (gaps(start), gaps(end))
  assert os.path.exists(tmp_path / 'samples' / 'pairs' / 'step_00000200.png')
  logged = [m for m in read_metrics(tmp_path) if 'pixel_agreement' in m]
  assert logged and 0 <= logged[-1]['pixel_agreement'] <= 1


def test_resumed_coupled_run_is_bitwise_identical(tmp_path):
  """With BatchNorm statistics and the CC encoder and its optimizer in the state."""
  extra = {'reg.cc': 10.0, 'eval.num_pairs': 0, 'steps_per_dispatch': 5}
  uninterrupted = trainer.train(tiny(num_steps=10, **extra), str(tmp_path / 'a'))
  trainer.train(tiny(num_steps=5, **extra), str(tmp_path / 'b'))
  resumed = trainer.train(tiny(num_steps=10, **extra), str(tmp_path / 'b'))
  assert int(resumed.step) == 10 and jax.tree.leaves(resumed.g_stats)
  assert_same_state(uninterrupted, resumed)


def test_figures_hook_writes_pairs_walks_and_translation(tmp_path):
  config = tiny()
  state = _init(config, jax.random.PRNGKey(0))
  paths = coupled_figures.figures(config, state, str(tmp_path))
  assert [os.path.basename(p) for p in paths] == [
      'pairs_step_00000000.png', 'walk_step_00000000.png', 'translation_step_00000000.png']
  assert all(os.path.getsize(p) for p in paths)
  (name, images, ncol), = coupled_figures.sheets(config, _generate(
      config, state, coupled.sample_latents(config, jax.random.PRNGKey(0), 4)))
  assert name == 'pairs' and ncol == 4 and images.shape == (8, 32, 32, 1)


def test_translation_reduces_the_reconstruction_error():
  config = tiny()
  state = _init(config, jax.random.PRNGKey(0))
  target, _ = _generate(config, state, coupled.sample_latents(
      config, jax.random.PRNGKey(5), 4))
  start, _ = coupled_figures.translate(config, state, target, steps=0)
  end, _ = coupled_figures.translate(config, state, target, steps=30, lr=0.05)
  assert np.abs(end - target).mean() < np.abs(start - target).mean()


def test_perceptual_loss_without_vgg_weights_says_what_to_do():
  with pytest.raises(UserError, match='pl_vgg_weights=FILE.npz.*pl_net=classifier'):
    tiny(**{'reg.pl_content': 1.0})


def test_vgg_weights_file_round_trip(tmp_path):
  """A fake weights file in the converter's format (small widths) loads into the same tree."""
  x = jnp.zeros((1, 32, 32, 3))
  params = vgg.VGG19(width_divisor=16).init(jax.random.PRNGKey(0), x)['params']
  path = str(tmp_path / 'vgg.npz')
  np.savez(path, **{f'{layer}/{k}': np.asarray(v) for layer, p in params.items()
                    for k, v in p.items()})
  loaded = vgg.load_params(path)
  assert_same_state(loaded, params)
  out = vgg.VGG19(width_divisor=16).apply({'params': loaded}, x)
  assert set(out) == set(vgg.STYLE_LAYERS) | {vgg.CONTENT_LAYER}
  np.savez(path, **{'block1_conv1/kernel': np.zeros((3, 3, 3, 4))})
  with pytest.raises(UserError, match='no block1_conv1/bias|no block1_conv2/kernel'):
    vgg.load_params(path)


@pytest.mark.parametrize('pair', ['digits2negative', 'digits2rotate'])
def test_domain_b_is_undone_before_classification(pair):
  """Real domain-b images mapped back equal the padded domain-a images they came from, black
  border included: what lets one classifier of domain a score classifier pair agreement."""
  from gans.data import pairs
  config = pairs.configure(coupled.defaults('cogan'), pair)
  a = coupled.sources(config)['a']
  x_a = a.load_all()[:5] / 127.5 - 1
  x_b = pairs.Transformed(a.source, config.pair.transform, config.pair.pad).load_all()[:5]
  undone = agreement.undo_transform(x_b / 127.5 - 1, config.pair.transform, config.pair.pad)
  np.testing.assert_allclose(undone, x_a, atol=1e-6)


@pytest.mark.parametrize('overrides', [
    {'model.arch': 'digits28', 'model.resolution': 28, 'model.weight_init': 'he', 'pair.pad': 0,
     'coupled.g_steps': 2, 'coupled.label_smoothing': 0.1, 'coupled.latent_dist': 'normal',
     'model.dtype': 'bfloat16'},
    {'model.arch': 'faces', 'model.resolution': 64, 'model.g_shared': 4, 'model.d_shared': 5,
     'model.d_dropout': True, 'coupled.d_bn': 'mixed', 'model.sample_mode': 'batch',
     'model.g_divisor': 128, 'model.d_divisor': 64},
])
def test_architecture_and_training_options_step(overrides):
  config = tiny(**overrides)
  state = _init(config, jax.random.PRNGKey(0))
  after, metrics = _step(config, state, _batch(config, 4))
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
  assert {x.dtype for x in jax.tree.leaves((after.g_params, after.d_opt))} <= {
      jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)}  # bfloat16 is the compute dtype only
  x_a, x_b = _generate(config, after, coupled.sample_latents(config, jax.random.PRNGKey(1), 2))
  assert x_a.shape == x_b.shape == (2, config.model.resolution, config.model.resolution, 1)
  assert float(jnp.abs(x_a).max()) <= 1.0


# Each option below changes the result the way the spec says, checked against an expectation
# that does not restate the method's code (issue 13: finiteness alone passes with the option
# ignored).

FACES = {'model.arch': 'faces', 'model.resolution': 64, 'model.g_shared': 4, 'model.d_shared': 5,
         'model.g_divisor': 128, 'model.d_divisor': 64}  # tiny face nets: BatchNorm in D


def _adam_count(opt):
  """How many Adam updates an optimizer state has taken."""
  return int(next(s.count for s in opt if isinstance(s, optax.ScaleByAdamState)))


def _np_bce(logits, target):
  """Sigmoid cross-entropy from its definition, in float64."""
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  return float(np.mean(-target * np.log(p) - (1 - target) * np.log(1 - p)))


def _leaves(tree):
  """{'block/layer/name': array} of a parameter tree."""
  return {'/'.join(p.key for p in path): np.asarray(v)
          for path, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_g_steps_updates_the_generator_that_many_times_per_d_update():
  """g_steps=2 (andrewliao11's trick): G's Adam has taken two updates after one step, D's one,
  D's update is the g_steps=1 one, and G ends elsewhere than after a single update."""
  results = {}
  for g_steps in (1, 2):
    config = tiny(**{'coupled.g_steps': g_steps})
    results[g_steps] = _step(config, _init(config, jax.random.PRNGKey(0)), _batch(config, 4))[0]
  one, two = results[1], results[2]
  assert (_adam_count(one.g_opt), _adam_count(one.d_opt)) == (1, 1)
  assert (_adam_count(two.g_opt), _adam_count(two.d_opt)) == (2, 1)
  assert_same_state(two.d_params, one.d_params)
  moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(two.g_params),
                                                    jax.tree.leaves(one.g_params))]
  assert all(moved)


def test_label_smoothing_sets_the_real_target_to_one_minus_s():
  """One-sided smoothing: D's loss with smoothing s differs from the unsmoothed loss on the same
  batch and state by exactly BCE(real logits, 1 - s) - BCE(real logits, 1) summed over both
  domains, the real logits recomputed here (the face D has no dropout; its BatchNorm sees the
  real batch alone with d_bn=separate) and the BCE written out in numpy."""
  s = 0.2
  base = tiny(**FACES)
  state = _init(base, jax.random.PRNGKey(0))
  batch = _batch(base, 4)
  smoothed = lambda t: tiny(**{'coupled.label_smoothing': t}, **FACES)
  losses = {t: float(_step(smoothed(t), state, batch)[1]['d_loss']) for t in (0.0, s)}
  _, d = coupled.build_models(base)
  real = [np.asarray(batch[k], np.float32) / 127.5 - 1 for k in 'ab']  # data.flip is off
  logits, _ = d.apply({'params': state.d_params, **state.d_stats}, *real, train=True,
                      mutable=['batch_stats'])
  expected = sum(_np_bce(r, 1 - s) - _np_bce(r, 1.0) for r in logits)
  assert abs(expected) > 1e-3  # the check has power
  np.testing.assert_allclose(losses[s] - losses[0.0], expected, rtol=1e-3, atol=1e-6)


def test_mixed_d_bn_lets_the_fakes_change_ds_output_on_the_reals():
  """d_bn=mixed (Caffe): a domain's reals and fakes share one BatchNorm batch, so D's scores on
  the same reals change when only the generator (hence the fakes) changes; with separate calls
  they do not."""
  other_g = _init(tiny(**FACES), jax.random.PRNGKey(1)).g_params
  for mode in ('separate', 'mixed'):
    config = tiny(**{'coupled.d_bn': mode}, **FACES)
    state = _init(config, jax.random.PRNGKey(0))
    batch = _batch(config, 4)
    scores = [float(_step(config, s, batch)[1]['real_score'])
              for s in (state, state.replace(g_params=other_g))]
    if mode == 'separate':
      assert scores[0] == scores[1], scores
    else:
      assert abs(scores[0] - scores[1]) > 1e-4, scores


@pytest.mark.parametrize('mode', ['running', 'batch'])
def test_sample_mode_decides_whether_an_image_depends_on_the_other_latents(mode):
  """'running': BatchNorm uses its running averages, so a z gives the same image alone or in a
  batch; 'batch': it is normalised with the batch's statistics, so its neighbours matter."""
  config = tiny(**{'model.sample_mode': mode})
  state = _step(config, _init(config, jax.random.PRNGKey(0)), _batch(config, 4))[0]
  z = coupled.sample_latents(config, jax.random.PRNGKey(2), 6)
  alone = _generate(config, state, z[:1])
  batched = _generate(config, state, z)
  for a, b in zip(alone, batched):
    gap = float(np.abs(np.asarray(a[0]) - np.asarray(b[0])).max())
    if mode == 'running':
      assert gap < 1e-5, gap
    else:
      assert gap > 1e-3, gap


@pytest.mark.parametrize('dropout', [False, True])
def test_d_dropout_is_active_in_training_only_when_on(dropout):
  """The face D with model.d_dropout: in training mode two dropout keys give two different
  outputs on the same images; without it (and in eval mode) the key does not matter."""
  config = tiny(**{**FACES, 'model.d_dropout': dropout})
  state = _init(config, jax.random.PRNGKey(0))
  _, d = coupled.build_models(config)
  x = [jnp.asarray(v, jnp.float32) / 127.5 - 1 for v in _batch(config, 4).values()]

  @functools.partial(jax.jit, static_argnums=1)
  def run(key, train):
    out = d.apply({'params': state.d_params, **state.d_stats}, *x, train=train,
                  rngs={'dropout': key}, mutable=['batch_stats'])[0]
    return jnp.stack(out)

  keys = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  train_gap = float(jnp.abs(run(keys[0], True) - run(keys[1], True)).max())
  assert (train_gap > 1e-4) if dropout else (train_gap == 0), train_gap
  np.testing.assert_array_equal(run(keys[0], False), run(keys[1], False))


def test_latent_dist_draws_the_named_distribution():
  """uniform: bounded by [-1, 1], variance 1/3, flat (kurtosis 1.8); normal: unbounded,
  variance 1, kurtosis 3. Means 0 for both."""
  n = 200_000
  for dist, var, kurt in (('uniform', 1 / 3, 1.8), ('normal', 1.0, 3.0)):
    config = tiny(**{'coupled.latent_dist': dist})
    z = np.asarray(coupled.sample_latents(config, jax.random.PRNGKey(0), n // 16), np.float64)
    assert z.shape == (n // 16, config.model.latent_size)
    z = z.ravel()
    assert abs(z.mean()) < 0.01 and abs(z.var() - var) < 0.01 * var / (1 / 3)
    assert abs(np.mean(z ** 4) / z.var() ** 2 - kurt) < 0.1
    if dist == 'uniform':
      assert -1 <= z.min() and z.max() <= 1
    else:
      assert np.mean(np.abs(z) > 1) > 0.3  # ~0.317 of N(0, 1) lies outside [-1, 1]


def test_weight_decay_is_coupled_l2_on_kernels_only():
  """CoGAN's weight decay (spec §4 #9, §6): wd * w is added to the gradient of every kernel
  before Adam scales it (Caffe's and PyTorch's, not AdamW's decay after Adam); biases,
  BatchNorm shifts and PReLU slopes are not decayed. Two steps of G's and D's optimizers on the
  face nets' parameters against Adam written out in numpy."""
  wd, lr = 0.5, 1e-3
  config = tiny(**FACES, **{'optim.weight_decay': wd})
  state = _init(config, jax.random.PRNGKey(0))
  o = config.optim
  for params in (state.g_params, state.d_params):
    leaves = _leaves(params)
    assert {k.rsplit('/', 1)[1] for k in leaves} == {'kernel', 'bias', 'alpha'}
    tx = coupled_step.adam(config, lr, params)
    opt, p = tx.init(params), params
    rng = np.random.default_rng(0)
    expected = {k: np.asarray(w, np.float64) for k, w in leaves.items()}
    m = {k: 0.0 for k in leaves}
    v = {k: 0.0 for k in leaves}
    for t in (1, 2):
      grads = jax.tree.map(lambda w: rng.normal(size=w.shape).astype(np.float32) * 1e-2, p)
      updates, opt = jax.jit(tx.update)(grads, opt, p)
      p = optax.apply_updates(p, updates)
      for k, g in _leaves(grads).items():
        g = g + (wd * expected[k] if k.endswith('/kernel') else 0.0)
        m[k] = o.b1 * m[k] + (1 - o.b1) * g
        v[k] = o.b2 * v[k] + (1 - o.b2) * g ** 2
        m_hat, v_hat = m[k] / (1 - o.b1 ** t), v[k] / (1 - o.b2 ** t)
        expected[k] = expected[k] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    for k, w in _leaves(p).items():
      np.testing.assert_allclose(w, expected[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_weight_similarity_covers_every_corresponding_generator_variable():
  """The SCoGAN weight baseline (spec §3.5): sum over all corresponding variables of G_a and
  G_b (kernels, biases, BatchNorm shifts, PReLU slopes of every block, the output included)
  of mean((w_a - w_b)^2), recomputed in numpy from the parameter trees."""
  config = tiny('unshared_tiny', **{'reg.weight_sim': 1.0})
  rng = np.random.default_rng(0)  # at init the biases, shifts and slopes agree: move them all
  params = jax.tree.map(lambda w: w + rng.normal(size=w.shape).astype(np.float32),
                        _init(config, jax.random.PRNGKey(0)).g_params)
  leaves = _leaves(params)
  expected = 0.0
  for k, w in leaves.items():
    if k.startswith('a_'):
      expected += np.mean((w.astype(np.float64) - leaves['b' + k[1:]]) ** 2)
  blocks = {k.split('/')[0] for k in leaves if k.startswith('a_')}
  assert len(blocks) == len(coupled_step.layer_lists(config)[0])
  value = coupled_step.g_regularizers(config, {}, params, {}, None, (None,) * 4, None,
                                 None)['weight_sim'][1]
  np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_the_step_logs_the_learning_rates_it_applied():
  """g_lr, d_lr and, with CC, the encoder's e_lr (G's rate) are in the step's metrics."""
  config = tiny(**{'optim.g_lr': 1e-4, 'optim.d_lr': 3e-4})
  _, metrics = _step(config, _init(config, jax.random.PRNGKey(0)), _batch(config, 4))
  assert metrics['g_lr'] == np.float32(1e-4) and metrics['d_lr'] == np.float32(3e-4)
  assert 'e_lr' not in metrics
  config = tiny(**{'optim.g_lr': 1e-4, 'reg.cc': 10.0})
  _, metrics = _step(config, _init(config, jax.random.PRNGKey(0)), _batch(config, 4))
  assert metrics['e_lr'] == metrics['g_lr'] == np.float32(1e-4)


@pytest.mark.parametrize('attributes', ['', 'Smiling,Male,Young'])
def test_sl_compares_softmax_classes_or_sigmoid_attributes(monkeypatch, attributes):
  """SL's probabilities follow the frozen classifier: a softmax over classes, or for a
  multi-label (attribute) classifier one independent sigmoid per attribute (spec §3.5: CelebA),
  and the term is the mean squared difference of the two domains' probabilities (numpy)."""
  from gans.methods import classifier  # pylint: disable=g-import-not-at-top
  config = classifier.defaults()
  config.model.update(classifier.TINY_MODEL, num_classes=3 if attributes else 10)
  config.classifier.attributes = attributes
  params = classifier.init_state(config, jax.random.PRNGKey(1)).params
  monkeypatch.setattr(frozen_models, 'classifier', lambda workdir: (config, params))
  c = coupled.tiny(coupled.defaults('scogan'))
  c.reg.update(sl=10.0, sl_classifier='judge')
  rng = np.random.default_rng(0)
  x_a, x_b = (rng.uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32) for _ in range(2))
  terms = coupled_step.g_regularizers(c, {'sl': params}, None, None, None,
                                      (x_a, x_b, None, None), None, None)
  logits = [np.asarray(classifier.Frozen(config, params).logits(x), np.float64)
            for x in (x_a, x_b)]
  if attributes:
    probs = [1 / (1 + np.exp(-z)) for z in logits]
  else:
    probs = [np.exp(z) / np.exp(z).sum(-1, keepdims=True) for z in logits]
  assert terms['sl'][0] == 10.0
  np.testing.assert_allclose(terms['sl'][1], np.mean((probs[0] - probs[1]) ** 2), rtol=1e-4)


def test_the_sl_classifier_cannot_judge_pair_agreement():
  c = coupled.tiny(coupled.defaults('scogan'))
  c.reg.update(sl=10.0, sl_classifier='runs/cls')
  c.eval.classifier = 'runs/cls'
  with pytest.raises(UserError, match='circular'):
    coupled.validate(c)
  c.eval.classifier = 'runs/judge'
  coupled.validate(c)
