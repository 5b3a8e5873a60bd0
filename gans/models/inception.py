"""Inception-v3 as the FID graph (TF `inception-2015-12-05`, pytorch-fid's port), in Flax.

The layer names are pytorch-fid's state-dict names (`Mixed_5b.branch1x1.conv.weight` lives at
params['Mixed_5b']['branch1x1']['conv']['kernel']), so its weights file maps onto the tree one
to one. The FID graph differs from torchvision's Inception-v3 in two ways, both reproduced
here: every 3x3 average pool in the A, C and E blocks ignores the zero padding
(count_include_pad=False, as TensorFlow), and the last block (Mixed_7c) pools its branch with a
max pool instead of an average pool. BatchNorm runs on its stored statistics (inference mode:
train-mode statistics roughly double FID, spec section 1), and every convolution runs at
precision HIGHEST, so that no TF32-class arithmetic shifts the features on a GPU.

Input: float NHWC in [-1, 1] at 299x299, as gans.metrics.extractors.inception_input makes it
from uint8 images under a named FID convention (any size >= 75 runs; the features are only the
standard ones at 299). Output: pool3 features [N, 2048] and logits [N, 1008].
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_HI = jax.lax.Precision.HIGHEST
NUM_CLASSES = 1008
FEATURES = 2048


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3, stored statistics) -> ReLU, torchvision's unit."""
  features: int
  kernel: tuple = (1, 1)
  strides: int = 1
  padding: tuple = (0, 0)  # (pad_h, pad_w), symmetric, as torch

  @nn.compact
  def __call__(self, x):
    (ph, pw) = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=_HI, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _avg3(x):
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max3s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, name='branch1x1')(x)
    b5 = BasicConv2d(48, name='branch5x5_1')(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = BasicConv2d(self.pool_features, name='branch_pool')(_avg3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, (3, 3), strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max3s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    b1 = BasicConv2d(192, name='branch1x1')(x)
    b7 = BasicConv2d(c, name='branch7x7_1')(x)
    b7 = BasicConv2d(c, **row, name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, **col, name='branch7x7_3')(b7)
    bd = BasicConv2d(c, name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c, **col, name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c, **row, name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c, **col, name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, **row, name='branch7x7dbl_5')(bd)
    bp = BasicConv2d(192, name='branch_pool')(_avg3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, name='branch3x3_1')(x)
    b3 = BasicConv2d(320, (3, 3), strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, (3, 3), strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max3s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (pool='avg') and the FID graph's Mixed_7c (pool='max')."""
  pool: str = 'avg'

  @nn.compact
  def __call__(self, x):
    row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
    b1 = BasicConv2d(320, name='branch1x1')(x)
    b3 = BasicConv2d(384, name='branch3x3_1')(x)
    b3 = jnp.concatenate([BasicConv2d(384, **row, name='branch3x3_2a')(b3),
                          BasicConv2d(384, **col, name='branch3x3_2b')(b3)], axis=-1)
    bd = BasicConv2d(448, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([BasicConv2d(384, **row, name='branch3x3dbl_3a')(bd),
                          BasicConv2d(384, **col, name='branch3x3dbl_3b')(bd)], axis=-1)
    if self.pool == 'max':
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg3(x)
    bp = BasicConv2d(192, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """x in [-1, 1], NHWC -> (pool3 features [N, 2048], logits [N, 1008]).

  `output_bias=False` leaves the fc bias out of the logits, as the original Inception Score
  code (and StyleGAN2-ADA's `no_output_bias=True`) does; the bias is still a parameter.
  """
  output_bias: bool = False

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, (3, 3), strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv2d(32, (3, 3), name='Conv2d_2a_3x3')(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max3s2(x)
    x = BasicConv2d(80, name='Conv2d_3b_1x1')(x)
    x = BasicConv2d(192, (3, 3), name='Conv2d_4a_3x3')(x)
    x = _max3s2(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE('avg', name='Mixed_7b')(x)
    x = InceptionE('max', name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    fc = nn.Dense(NUM_CLASSES, precision=_HI, name='fc')
    logits = fc(pool)
    if not self.output_bias:
      logits = logits - fc.variables['params']['bias']
    return pool, logits


# pytorch-fid's port of the TF graph's weights (mseitzer/pytorch-fid, src/pytorch_fid/inception.py).
WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
               'pt_inception-2015-12-05-6726825d.pth')
# The file name's suffix: by torch.hub's convention, the leading hex digits of its SHA-256. No
# full digest is published; the full digest of the file used is recorded with every result.
SHA256_PREFIX = '6726825d'


def variable_shapes():
  """{'params': ..., 'batch_stats': ...} as ShapeDtypeStructs, without running an init."""
  x = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32)
  return jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0), x)


_TORCH_LEAF = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
               ('params', 'bias'): 'bias', ('batch_stats', 'mean'): 'running_mean',
               ('batch_stats', 'var'): 'running_var'}


def torch_name(path):
  """The state-dict key of a flax variable path, e.g. ('params', 'fc', 'kernel') -> 'fc.weight'."""
  collection, *modules, leaf = path
  return '.'.join([*modules, _TORCH_LEAF[(collection, leaf)]])


def from_state_dict(state_dict):
  """Flax variables (numpy float32) from pytorch-fid's state dict; ValueError on any mismatch.

  Conv weights go OIHW -> HWIO and the fc weight [1008, 2048] -> [2048, 1008]. BatchNorm's
  num_batches_tracked counters are the only keys allowed to be left over.
  """
  shapes = variable_shapes()
  flat = {}
  for path, shape in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    path = tuple(p.key for p in path)
    name = torch_name(path)
    if name not in state_dict:
      raise ValueError(f'{name} is missing')
    value = np.asarray(state_dict[name], np.float32)
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    elif value.ndim == 2:
      value = value.T
    if value.shape != shape.shape:
      raise ValueError(f'{name} has shape {value.shape}, expected {shape.shape}')
    flat[path] = value
  used = {torch_name(p) for p in flat}
  extra = sorted(k for k in state_dict if k not in used and not k.endswith('num_batches_tracked'))
  if extra:
    raise ValueError(f'unexpected keys {", ".join(extra[:3])}{" ..." if len(extra) > 3 else ""}')
  return jax.tree_util.tree_map_with_path(lambda p, _: flat[tuple(k.key for k in p)], shapes)
