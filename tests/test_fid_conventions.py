"""The three FID conventions against their peers' own resize and scaling.

tests/data/fid_conventions.npz holds what clean-fid, pytorch-fid (torch) and TTUR's TF1 resize
computed for a few uint8 images (scripts/make_metric_fixtures.py; torch, TF and clean-fid are
needed only to write it): the 299 x 299 x 3 Inception inputs at a fixed subset of rows and
columns, edges included. The jittable matrices here must give the same numbers.
"""
import os

import jax
import numpy as np
import pytest

from gans.errors import UserError
from gans.metrics import extractors

FIXTURE = os.path.join(os.path.dirname(__file__), 'data', 'fid_conventions.npz')
GROUPS = ('rgb32', 'grey28', 'rgb16', 'rgb24x40', 'grey331x317')


@pytest.fixture(scope='module')
def fixture():
  with np.load(FIXTURE) as f:
    return dict(f)


@pytest.fixture(scope='module')
def ours(fixture):
  """(group, convention) -> our Inception input at the fixture's rows and columns."""
  fn = jax.jit(extractors.inception_input, static_argnums=1)
  idx = fixture['index']
  return {(g, c): np.asarray(fn(fixture[f'{g}__images'], c))[:, idx][:, :, idx]
          for g in GROUPS for c in extractors.CONVENTIONS}


@pytest.mark.parametrize('convention', list(extractors.CONVENTIONS))
@pytest.mark.parametrize('group', GROUPS)
def test_inception_input_matches_the_peer(fixture, ours, group, convention):
  """Upsampling square, non-square and grey images, and one shrink (331x317 grey), where only
  'clean' antialiases. Seen: max abs difference <= 5e-7 on the [-1, 1] scale, every case."""
  peer = fixture[f'{group}__{convention}']
  assert ours[group, convention].shape == peer.shape
  np.testing.assert_allclose(ours[group, convention], peer, rtol=0, atol=1e-5)


def test_the_fixture_tells_the_conventions_apart(fixture, ours):
  """Each convention is far (> 0.1 on [-1, 1]) from the other peers' inputs, so the match above
  is not a tolerance wide enough to pass any of them."""
  for g in GROUPS:
    for c in extractors.CONVENTIONS:
      for other in extractors.CONVENTIONS:
        if other != c:
          assert np.abs(ours[g, c] - fixture[f'{g}__{other}']).max() > 0.1, (g, c, other)


@pytest.mark.parametrize('matrix', [extractors.pil_bicubic_matrix,
                                    extractors.torch_bilinear_matrix,
                                    extractors.tf1_bilinear_matrix])
@pytest.mark.parametrize('sizes', [(32, 299), (331, 299), (7, 7)])
def test_resize_rows_sum_to_one(matrix, sizes):
  w = matrix(*sizes)
  assert w.shape == sizes[::-1]
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
  if sizes[0] == sizes[1]:
    np.testing.assert_array_equal(w, np.eye(sizes[0]))


def test_tf1_grid_has_no_half_pixel_shift():
  """Output i samples input i * in / out: 2x up from [0, 10] gives 0, 5, 10, 10 (last repeated),
  where torch's half-pixel grid gives 0, 2.5, 7.5, 10."""
  x = np.array([0.0, 10.0])
  np.testing.assert_allclose(extractors.tf1_bilinear_matrix(2, 4) @ x, [0, 5, 10, 10])
  np.testing.assert_allclose(extractors.torch_bilinear_matrix(2, 4) @ x, [0, 2.5, 7.5, 10])


def test_scaling_per_convention():
  """uint8 at 299 (no resize): (x - 128) / 128, or pytorch-fid's x / 127.5 - 1."""
  x = np.zeros((1, 299, 299, 1), np.uint8)
  x[:, :, 100:200], x[:, :, 200:] = 128, 255
  got = lambda c: np.asarray(extractors.inception_input(x, c))[0, 0, [0, 100, 200], 0]
  np.testing.assert_allclose(got('clean'), [-1, 0, 127 / 128], rtol=0, atol=1e-7)
  np.testing.assert_allclose(got('tf'), [-1, 0, 127 / 128], rtol=0, atol=1e-7)
  np.testing.assert_allclose(got('pytorch-fid'), [-1, 0.5 / 127.5, 1], rtol=0, atol=1e-7)


def test_unknown_convention_is_a_one_line_error():
  with pytest.raises(UserError, match=r"unknown FID convention 'torch'; choose from clean, "
                                      r'pytorch-fid, tf$'):
    extractors.check_convention('torch')
  with pytest.raises(UserError, match='choose from clean, pytorch-fid, tf'):
    extractors.inception('/nonexistent.pth', convention='TF')  # before looking for weights
  assert extractors.DEFAULT_CONVENTION == 'clean'
