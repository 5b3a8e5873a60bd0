"""gans.sampling, the one way samples are made for a seed: what the evaluation scores is exactly
what a writer of samples gets for the same seed, bit for bit."""
import types

import numpy as np
import pytest

from conftest import tiny_config


@pytest.fixture(scope='module')
def msggan():
  import jax
  from gans import methods, parallel
  config = tiny_config()
  method = methods.get('msggan')
  return method, config, method.init_state(config, jax.random.PRNGKey(0)), parallel.make_mesh()


def _recording_extractor():
  """An extractor whose features are its uint8 input itself, flattened: what it was fed."""
  from gans.metrics import extractors
  flat = lambda x: x.reshape(x.shape[0], -1)
  frozen = types.SimpleNamespace(features=lambda x: flat(x), logits=lambda x: flat(x)[:, :2])
  ext = extractors.from_frozen(frozen, 'recorder')
  # from_frozen maps uint8 to [-1, 1]; undo it so the features are the uint8 values themselves.
  return ext.__class__(ext.name, ext.suffix, ext.params,
                       lambda p, images: (flat(images).astype('float32'),
                                          flat(images)[:, :2].astype('float32')), ext.info)


def test_the_evaluation_scores_exactly_the_images_sampling_makes(msggan, tmp_path):
  from gans import evaluation, sampling
  method, config, state, mesh = msggan
  ext = _recording_extractor()
  options = evaluation.Options(metrics=('fid',), num_samples=10, batch_size=4, seed=7,
                               stats_dir=str(tmp_path))
  fed = evaluation.generated_features(method, config, state, ext, mesh, options)
  made = list(sampling.batches(method, config, state, mesh, 10, 7, 4, host=True))
  assert [(start, size) for start, size, _ in made] == [(0, 4), (4, 4), (8, 2)]  # surplus dropped
  images = np.concatenate([sets[''] for _, _, sets in made])
  assert images.dtype == np.uint8 and images.shape == (10, 8, 8, 1)
  np.testing.assert_array_equal(fed.features, images.reshape(10, -1).astype(np.float32))
  low = np.concatenate([sets['4x4'] for _, _, sets in made]).reshape(10, -1).astype(np.float64)
  mean, _, count = fed.gaussians['4x4']  # the lower scale: only its Gaussian is kept
  assert count == 10
  np.testing.assert_allclose(mean, low.mean(axis=0), rtol=1e-6)


def test_a_seed_gives_the_same_images_every_time_and_another_seed_others(msggan):
  import jax
  from gans import sampling
  from gans.metrics import extractors
  method, config, state, mesh = msggan
  one = list(sampling.batches(method, config, state, mesh, 6, 3, 4, sets=('',), host=True))
  again = list(sampling.batches(method, config, state, mesh, 6, 3, 4, sets=('',), host=True))
  other = list(sampling.batches(method, config, state, mesh, 6, 4, 4, sets=('',), host=True))
  assert set(one[0][2]) == {''}  # only the sets asked for
  for (_, _, a), (_, _, b), (_, _, c) in zip(one, again, other):
    np.testing.assert_array_equal(a[''], b[''])
    assert not np.array_equal(a[''], c[''])
  # Batch j: the latents of fold_in(PRNGKey(seed), j), the generator, quantised.
  z = method.sample_latents(config, jax.random.fold_in(jax.random.PRNGKey(3), 1), 4)
  expected = extractors.quantize(method.generate(config, state, z)[-1])
  np.testing.assert_array_equal(one[1][2][''], np.asarray(expected)[:2])
  device = next(sampling.batches(method, config, state, mesh, 6, 3, 4, sets=('',)))
  assert device[2][''].shape[0] == 4  # on the devices: the whole (rounded) batch


def test_the_record_names_the_generator_the_samples_came_from():
  import jax
  from configs import began_digits, cogan_digits_negative
  from gans import methods, sampling
  for name, config, label in (('msggan', tiny_config(), 'EMA'),
                              ('began', began_digits.get_config('tiny'), 'trained G'),
                              ('cogan', cogan_digits_negative.get_config('tiny'), 'trained G')):
    state = methods.get(name).init_state(config, jax.random.PRNGKey(0))
    assert sampling.generator_label(state) == label, name
