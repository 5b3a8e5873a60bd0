"""VGG19 convolutional features (ImageNet, Keras layout) for SCoGAN's perceptual loss (PL).

There is no internet at training time and no bundled copy, so the weights come from a file the
user supplies: an .npz with `<layer>/kernel` (3x3xIxO, HWIO) and `<layer>/bias` for block1_conv1
... block5_conv4. Make it once from the standard Keras file
`vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` (md5 253f8cb515780f3b799900260a226db6, from
https://storage.googleapis.com/tensorflow/keras-applications/vgg19/ or the fchollet/
deep-learning-models v0.1 release) with

  pip install h5py && python -m gans.models.vgg vgg19_notop.h5 vgg19.npz

Inputs follow Keras' `vgg19.preprocess_input`: [-1, 1] -> [0, 255], RGB -> BGR, minus the
ImageNet channel means; grey images are repeated to three channels.
"""
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gans import layers
from gans.errors import UserError

BLOCKS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)
LAYERS = tuple(f'block{b + 1}_conv{i + 1}' for b, n in enumerate(BLOCKS) for i in range(n))
STYLE_LAYERS = ('block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1')
CONTENT_LAYER = 'block5_conv2'
_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def preprocess(x):
  """[-1, 1] NHWC (1 or 3 channels, RGB) -> Keras VGG input (BGR, mean subtracted)."""
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return (x[..., ::-1] + 1.0) * 127.5 - _BGR_MEAN


class VGG19(nn.Module):
  """The conv stack up to `last`; returns {layer name: post-ReLU activation} for `wanted`."""
  wanted: tuple = STYLE_LAYERS + (CONTENT_LAYER,)
  width_divisor: int = 1  # > 1 only for the small random stand-in of the tests

  @nn.compact
  def __call__(self, x):
    x, out = preprocess(x), {}
    last = max(LAYERS.index(name) for name in self.wanted)
    for b, (n, width) in enumerate(zip(BLOCKS, WIDTHS)):
      if b:
        x = layers.max_pool(x) if x.shape[1] > 1 else x
      for i in range(n):
        name = f'block{b + 1}_conv{i + 1}'
        x = nn.relu(nn.Conv(max(1, width // self.width_divisor), (3, 3), name=name)(x))
        if name in self.wanted:
          out[name] = x
        if LAYERS.index(name) == last:
          return out
    return out


def load_params(path, wanted=STYLE_LAYERS + (CONTENT_LAYER,)):
  """{'layer': {'kernel', 'bias'}} from the .npz described above, as far as `wanted` needs."""
  try:
    arrays = np.load(path)
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read VGG19 weights {path!r} ({e}); make the file with '
                    '`python -m gans.models.vgg IN.h5 OUT.npz` (see gans/models/vgg.py)') from e
  last = max(LAYERS.index(name) for name in wanted)
  params = {}
  for name in LAYERS[:last + 1]:
    missing = [k for k in ('kernel', 'bias') if f'{name}/{k}' not in arrays]
    if missing:
      raise UserError(f'{path} has no {name}/{missing[0]}: not a VGG19 weights file from '
                      '`python -m gans.models.vgg`')
    params[name] = {'kernel': jnp.asarray(arrays[f'{name}/kernel'], jnp.float32),
                    'bias': jnp.asarray(arrays[f'{name}/bias'], jnp.float32)}
  return params


def convert_keras_h5(h5_path, npz_path):
  """One-off: the Keras notop .h5 -> the .npz load_params reads (needs h5py)."""
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError('converting the Keras file needs h5py: pip install h5py') from e
  out = {}
  with h5py.File(h5_path, 'r') as f:
    for name in LAYERS:
      if name not in f:
        raise UserError(f'{h5_path} has no layer {name}: not the Keras VGG19 weights file')
      found = []
      f[name].visititems(lambda _, obj: found.append(np.asarray(obj)) if isinstance(
          obj, h5py.Dataset) else None)
      kernel = [a for a in found if a.ndim == 4]
      bias = [a for a in found if a.ndim == 1]
      if len(kernel) != 1 or len(bias) != 1:
        raise UserError(f'{h5_path}: layer {name} does not hold one kernel and one bias')
      out[f'{name}/kernel'], out[f'{name}/bias'] = kernel[0], bias[0]
  np.savez(npz_path, **out)
  return npz_path


if __name__ == '__main__':
  if len(sys.argv) != 3:
    sys.exit('usage: python -m gans.models.vgg vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 '
             'vgg19.npz')
  print(convert_keras_h5(sys.argv[1], sys.argv[2]))
