"""The FID Inception network: layer structure, one block against numpy, the weights file."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.errors import UserError
from gans.metrics import extractors, torch_weights
from gans.models import inception
from numpy_ref import np_conv
from torch_format import save_state_dict

# Output shapes at 299x299 (Szegedy et al. 2016, table 1; torchvision's inception_v3).
BLOCKS = {
    'Conv2d_1a_3x3': (149, 149, 32), 'Conv2d_2a_3x3': (147, 147, 32),
    'Conv2d_2b_3x3': (147, 147, 64), 'Conv2d_3b_1x1': (73, 73, 80),
    'Conv2d_4a_3x3': (71, 71, 192), 'Mixed_5b': (35, 35, 256), 'Mixed_5c': (35, 35, 288),
    'Mixed_5d': (35, 35, 288), 'Mixed_6a': (17, 17, 768), 'Mixed_6b': (17, 17, 768),
    'Mixed_6c': (17, 17, 768), 'Mixed_6d': (17, 17, 768), 'Mixed_6e': (17, 17, 768),
    'Mixed_7a': (8, 8, 1280), 'Mixed_7b': (8, 8, 2048), 'Mixed_7c': (8, 8, 2048),
}
# pytorch-fid's FID Inception: 23,850,960 parameters, 34,432 BatchNorm statistics.
NUM_PARAMS, NUM_STATS = 23_850_960, 34_432


def test_block_shapes_and_parameter_count():
  x = jax.ShapeDtypeStruct((2, 299, 299, 3), jnp.float32)
  variables = inception.variable_shapes()
  (pool, logits), inter = jax.eval_shape(
      lambda v, x: inception.FIDInceptionV3().apply(v, x, capture_intermediates=True,
                                                    mutable=['intermediates']), variables, x)
  shapes = {k: v['__call__'][0].shape[1:] for k, v in inter['intermediates'].items()
            if k in BLOCKS}
  assert shapes == BLOCKS
  assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
  count = lambda tree: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))
  assert (count(variables['params']), count(variables['batch_stats'])) == (NUM_PARAMS, NUM_STATS)


def random_state_dict(seed=0):
  """Random values under pytorch-fid's key names and shapes (conv OIHW, fc [out, in])."""
  rng = np.random.default_rng(seed)
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(inception.variable_shapes())[0]:
    path = tuple(p.key for p in path)
    shape = leaf.shape
    if len(shape) == 4:
      shape = (shape[3], shape[2], shape[0], shape[1])
      value = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
    elif len(shape) == 2:
      shape = shape[::-1]
      value = rng.normal(0, 0.02, shape)
    elif path[-1] == 'var':
      value = rng.uniform(0.5, 2.0, shape)
    else:
      value = rng.uniform(-0.2, 0.2, shape) + (path[-1] == 'scale')
    out[inception.torch_name(path)] = value.astype(np.float32)
    if path[-1] == 'mean':
      out[inception.torch_name(path).replace('running_mean', 'num_batches_tracked')] = np.array(
          0, np.int64)
  return out


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
  state_dict = random_state_dict()
  path = tmp_path_factory.mktemp('inception') / extractors.INCEPTION_FILE
  save_state_dict(state_dict, path)
  return path, state_dict


def test_state_dict_names_are_pytorch_fids(weights_file):
  _, state_dict = weights_file
  assert len(state_dict) == 566
  assert state_dict['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)
  assert state_dict['Mixed_7c.branch3x3dbl_3b.conv.weight'].shape == (384, 384, 3, 1)
  assert state_dict['Mixed_6e.branch7x7_2.bn.running_var'].shape == (192,)
  assert state_dict['fc.weight'].shape == (1008, 2048)


@pytest.mark.parametrize('name', ['torch_zip.pth', 'torch_legacy.pth'])
def test_reads_files_written_by_torch(name):
  """Fixtures written by torch.save itself (tests/data/make_torch_fixtures.py), both formats."""
  import os
  sd = torch_weights.read_state_dict(os.path.join(os.path.dirname(__file__), 'data', name))
  np.testing.assert_allclose(sd['conv.weight'], np.arange(24).reshape(2, 3, 2, 2) / 7, rtol=1e-6)
  np.testing.assert_allclose(sd['bn.running_var'], [0.5, 1.25, 2.0])
  assert sd['bn.num_batches_tracked'].shape == () and sd['bn.num_batches_tracked'] == 5
  np.testing.assert_array_equal(sd['transposed'], np.arange(12).reshape(3, 4).T)
  np.testing.assert_array_equal(sd['offset'], [5, 6, 7, 8])
  assert sd['double'].dtype == np.float64


def test_loads_a_weights_file_in_the_published_format_and_runs(weights_file):
  path, state_dict = weights_file
  variables, digest = extractors.load_inception_variables(str(path), sha256_prefix='')
  assert len(digest) == 64
  kernel = variables['params']['Mixed_5b']['branch5x5_2']['conv']['kernel']
  np.testing.assert_array_equal(
      kernel, state_dict['Mixed_5b.branch5x5_2.conv.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables['batch_stats']['Mixed_7c']['branch_pool']['bn']['var'],
                                state_dict['Mixed_7c.branch_pool.bn.running_var'])
  np.testing.assert_array_equal(variables['params']['fc']['kernel'], state_dict['fc.weight'].T)
  ext = extractors.inception(str(path), sha256_prefix='')
  assert ext.info['convention'] == extractors.DEFAULT_CONVENTION
  images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), np.uint8)
  features, logits = jax.jit(ext.apply)(ext.params, images)
  assert features.shape == (2, 2048) and logits.shape == (2, 1008)
  assert np.all(np.isfinite(features)) and np.all(np.asarray(features) >= 0)  # after a ReLU
  # Logits leave the fc bias out (the original IS code): pool @ W exactly.
  np.testing.assert_allclose(logits, np.asarray(features, np.float64) @ state_dict['fc.weight'].T,
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('convention', ['clean', 'pytorch-fid', 'tf'])
def test_extractor_applies_and_records_its_convention(weights_file, convention):
  """The network sees the convention's resize and scaling, and every result names it."""
  ext = extractors.inception(str(weights_file[0]), sha256_prefix='', convention=convention)
  assert ext.info['convention'] == convention
  assert ext.info['resize'] == extractors.CONVENTION_RESIZE[convention]
  images = np.random.default_rng(1).integers(0, 256, (2, 12, 10, 3), np.uint8)
  x = extractors.inception_input(images, convention)
  expected = inception.FIDInceptionV3().apply(ext.params, x)[0]
  np.testing.assert_allclose(jax.jit(ext.apply)(ext.params, images)[0], expected,
                             rtol=1e-5, atol=1e-5)
  if convention == extractors.DEFAULT_CONVENTION:
    assert extractors.inception(str(weights_file[0]), sha256_prefix='').info == ext.info


def test_missing_corrupt_and_wrong_weights_are_one_line_errors(tmp_path, weights_file):
  with pytest.raises(UserError, match='pytorch-fid/releases.*--inception'):
    extractors.load_inception_variables(str(tmp_path / 'nope.pth'))
  with pytest.raises(UserError, match='does not start with 6726825d'):
    extractors.load_inception_variables(str(weights_file[0]))  # the published prefix
  (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
  with pytest.raises(UserError, match='cannot be read'):
    extractors.load_inception_variables(str(tmp_path / 'junk.pth'), sha256_prefix='')
  wrong = dict(weights_file[1])
  wrong['fc.weight'] = wrong['fc.weight'][:1000]  # torchvision's 1000 classes, not the FID graph
  save_state_dict(wrong, tmp_path / 'wrong.pth')
  with pytest.raises(UserError, match=r'fc.weight has shape \(2048, 1000\)'):
    extractors.load_inception_variables(str(tmp_path / 'wrong.pth'), sha256_prefix='')


def np_basic_conv(x, p, s, name, padding='SAME'):
  k = p[name]['conv']['kernel']
  y = np_conv(x, k, padding=padding)
  bn, st = p[name]['bn'], s[name]['bn']
  y = (y - st['mean']) / np.sqrt(st['var'] + 1e-3) * bn['scale'] + bn['bias']
  return np.maximum(y, 0)


def np_pool3(x, kind):
  """3x3 stride-1 pool, padding 1: average over the in-image pixels only, or max."""
  n, h, w, c = x.shape
  fill = -np.inf if kind == 'max' else 0.0
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)
  ones = np.pad(np.ones((1, h, w, 1)), ((0, 0), (1, 1), (1, 1), (0, 0)))
  win = lambda a: np.stack([a[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
  if kind == 'max':
    return win(xp).max(0)
  return win(xp).sum(0) / win(ones).sum(0)


def random_block_variables(module, x, seed):
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
  rng = np.random.default_rng(seed)
  def fill(path, a):
    leaf = path[-1].key
    if leaf == 'var':
      return rng.uniform(0.5, 2.0, a.shape).astype(np.float32)
    scale = np.sqrt(2 / np.prod(a.shape[:-1])) if leaf == 'kernel' else 0.2
    return (rng.normal(0, scale, a.shape) + (leaf == 'scale')).astype(np.float32)
  return flax.core.unfreeze(jax.tree_util.tree_map_with_path(fill, shapes))


def test_inception_a_block_matches_numpy():
  """Mixed_5b: four branches, the pool branch averaging without the zero padding."""
  x = np.random.default_rng(0).normal(size=(2, 5, 5, 192)).astype(np.float32)
  block = inception.InceptionA(32)
  v = random_block_variables(block, x, 1)
  p, s = v['params'], v['batch_stats']
  ref = np.concatenate([
      np_basic_conv(x, p, s, 'branch1x1'),
      np_basic_conv(np_basic_conv(x, p, s, 'branch5x5_1'), p, s, 'branch5x5_2'),
      np_basic_conv(np_basic_conv(np_basic_conv(x, p, s, 'branch3x3dbl_1'), p, s,
                                  'branch3x3dbl_2'), p, s, 'branch3x3dbl_3'),
      np_basic_conv(np_pool3(x, 'avg'), p, s, 'branch_pool')], axis=-1)
  np.testing.assert_allclose(block.apply(v, x), ref, rtol=1e-4, atol=1e-4)


def test_last_block_max_pools_its_pool_branch():
  """Mixed_7c (FIDInceptionE_2): the pool branch is a 3x3 max pool, not an average."""
  x = np.random.default_rng(1).normal(size=(1, 3, 3, 64)).astype(np.float32)
  block = inception.InceptionE('max')
  v = random_block_variables(block, x, 2)
  p, s = v['params'], v['batch_stats']
  out = np.asarray(block.apply(v, x))
  pooled = np_basic_conv(np_pool3(x, 'max'), p, s, 'branch_pool')
  np.testing.assert_allclose(out[..., -192:], pooled, rtol=1e-4, atol=1e-4)
  b3 = np_basic_conv(x, p, s, 'branch3x3_1')
  np.testing.assert_allclose(out[..., 320:704], np_basic_conv(b3, p, s, 'branch3x3_2a'),
                             rtol=1e-4, atol=1e-4)
