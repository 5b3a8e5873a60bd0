"""Domain pairs (unpaired, disjoint, transformed then padded) and the pair-agreement metrics."""
import ml_collections
import numpy as np
import pytest

from gans import parallel
from gans.data import feeding, pairs, sources
from gans.errors import UserError
from gans.metrics import agreement
from gans.methods import coupled


def _config(name='digits2negative'):
  return pairs.configure(coupled.defaults('cogan'), name)


def test_digit_halves_are_disjoint_and_domain_b_is_the_padded_negative():
  config = _config()
  srcs = coupled.sources(config)
  base = sources.DigitsSource(28, 1)
  a, b = srcs['a'].load_all(), srcs['b'].load_all()
  assert len(a) + len(b) == len(base) == 1797 and a.shape[1:] == (32, 32, 1)
  np.testing.assert_array_equal(a[:, 2:-2, 2:-2], base.load_all()[:len(a)])
  np.testing.assert_array_equal(b[:, 2:-2, 2:-2], 255 - base.load_all()[len(a):])
  assert not a[:, :2].any() and not b[:, :2].any()  # black border added after the transform
  assert srcs['b'].name == 'negative(digits[half:])'


def test_edge_is_the_dilation_minus_the_image():
  rng = np.random.default_rng(0)
  x = (rng.random((2, 6, 7, 1)) < 0.3).astype(np.uint8) * 200
  expected = np.zeros_like(x)
  for n in range(2):
    for i in range(6):
      for j in range(7):
        patch = x[n, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, 0]
        expected[n, i, j, 0] = patch.max() - x[n, i, j, 0]
  np.testing.assert_array_equal(pairs.transform('edge', x), expected)
  np.testing.assert_array_equal(pairs.transform('rotate', x)[0, :, :, 0], np.rot90(x[0, :, :, 0]))
  with pytest.raises(UserError, match='pair.transform'):
    pairs.transform('blur', x)


def test_the_two_domains_are_drawn_independently():
  """Each domain is its own stream with its own permutation, even at equal sizes."""
  config = _config('digits2rotate')
  config.batch_size = 16
  feeder = feeding.Feeder(coupled.sources(config), coupled.example_spec(config), config,
                          parallel.make_mesh())
  _, (ia, ib) = feeder.get(0, 3)
  assert not np.array_equal(np.asarray(ia), np.asarray(ib))


def test_presets_and_unknown_pairs():
  svhn = _config('mnist2svhn')
  assert ((svhn.data.name, svhn.data_b.name, svhn.model.image_channels)
          == ('mnist', 'svhn_cropped', 3))
  a2o = _config('cycle_gan/apple2orange')
  assert (a2o.data.split, a2o.data_b.split) == ('trainA', 'trainB')
  assert _config('celeba/Eyeglasses').pair.attribute == 'Eyeglasses'
  with pytest.raises(UserError, match='unknown domain pair'):
    _config('mnist2usps')


def test_celeba_attribute_split_under_mock_data():
  import tensorflow_datasets as tfds
  config = _config('celeba/Smiling')
  config.model.update(arch='faces', resolution=64)
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    data = ml_collections.ConfigDict({'name': 'celeb_a', 'split': 'train', 'data_dir': None})
    smiling = pairs.attribute_values(data, 'Smiling')
    srcs = coupled.sources(config)
    with pytest.raises(UserError, match='no attribute'):
      pairs.attribute_values(data, 'Grinning')
  assert len(srcs['a']) == smiling.sum() and len(srcs['b']) == (~smiling).sum()
  np.testing.assert_array_equal(srcs['a'].source.indices, np.flatnonzero(smiling))


def test_pixel_agreement_on_hand_made_pairs():
  rng = np.random.default_rng(0)
  a01 = (rng.random((5, 12, 12, 1)) < 0.3).astype(np.float32)
  to_pm1 = lambda x: x * 2 - 1
  for t in ('negative', 'edge', 'rotate'):
    b01 = pairs.transform(t, a01)
    assert agreement.pixel_agreement(to_pm1(a01), to_pm1(b01), t) == 1.0
  assert agreement.pixel_agreement(to_pm1(a01), to_pm1(a01), 'negative') == 0.0
  half = to_pm1(1 - a01).copy()
  half[:, :, :6] *= -1  # the left half of every pair is wrong
  assert agreement.pixel_agreement(to_pm1(a01), half, 'negative') == 0.5
  # grey 3-channel outputs are averaged over channels; thresholds at 0.5 in [0, 1]
  grey = np.repeat(to_pm1(a01) * 0.9, 3, -1)
  assert agreement.pixel_agreement(grey, np.repeat(to_pm1(1 - a01), 3, -1), 'negative') == 1.0
  # the padded border is not counted: a negative with a black frame still agrees fully
  framed = np.pad(to_pm1(1 - a01), ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1)
  padded_a = np.pad(to_pm1(a01), ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1)
  assert agreement.pixel_agreement(padded_a, framed, 'negative', crop=2) == 1.0
  assert agreement.pixel_agreement(padded_a, framed, 'negative') < 1.0


def test_classifier_agreement_and_its_chance_level():
  agree, chance = agreement.classifier_agreement([0, 1, 2, 2], [0, 1, 1, 2], 3)
  assert agree == 0.75
  assert np.isclose(chance, 0.25 * 0.25 + 0.25 * 0.5 + 0.5 * 0.25)


def test_pair_sheet_and_slerp():
  from gans import figures
  a, b = np.zeros((5, 4, 4, 1)), np.ones((5, 4, 4, 1))
  images, ncol = figures.pair_rows(a, b, max_columns=3)
  assert ncol == 3 and images.shape == (12, 4, 4, 1)
  np.testing.assert_array_equal(images[3:6], 1.0)  # row 2 = domain b of the first 3 z
  np.testing.assert_array_equal(images[11], -1.0)  # padding of the last row pair
  z0, z1 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
  walk = figures.slerp_walk(z0, z1, 3)
  np.testing.assert_allclose(walk[0, 1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(walk, axis=-1), 1.0, atol=1e-6)
