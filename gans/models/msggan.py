"""MSG-GAN generator and discriminator (BMSG-GAN, with the MSG-GAN v1 options).

Every multi-scale list is ordered low -> high resolution: index 0 is 4x4, index depth-1 the full
resolution 2^(depth+1). Channel widths follow BMSG-GAN's rule with 512 replaced by `width`, so
`width=512` reproduces the reference exactly and tiny configs shrink every layer alike; the rule
halves the width per level above 32x32, so it needs width >= min_width(depth).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from gans import layers

COMBINES = ('simple', 'lin_cat', 'raw', 'cat_lin')
MBSTD_VARIANTS = ('bmsg', 'v1', 'none')


def g_channels(k, width):
  """Output width of generator block k (GAN.py:53-64): `width` up to 32x32, then halving."""
  return width if k <= 3 else width >> (k - 3)


def min_width(depth):
  """Smallest width whose halvings still leave every D level >= 1 image-feature channel."""
  return max(2, 2 ** (depth - 3))


def d_block_channels(i, width):
  """(input, output) width of discriminator block i, which works at 2^(i+3) pixels (§5.3)."""
  if i <= 2:
    return width, width // 2
  c = width >> (i - 2)
  return c, c


class Generator(nn.Module):
  depth: int
  width: int = 512
  image_channels: int = 3
  equalized: bool = True
  spectral_norm: bool = False
  dilation: int = 1
  pixelnorm: bool = True
  tanh: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z) -> Sequence[jnp.ndarray]:
    conv = functools.partial(layers.EqConv, equalized=self.equalized, dtype=self.dtype)
    body = functools.partial(conv, spectral_norm=self.spectral_norm, dilation=self.dilation)
    norm = layers.pixel_norm if self.pixelnorm else (lambda x: x)
    c = g_channels(0, self.width)
    h = layers.EqDenseToMap(4, c, self.equalized, self.spectral_norm, self.dtype,
                            name='b0_dense')(z)
    h = layers.leaky_relu(h)
    h = norm(layers.leaky_relu(body(c, name='b0_conv')(h)))
    outputs = [self._to_rgb(conv, h, 0)]
    for k in range(1, self.depth):
      c = g_channels(k, self.width)
      h = layers.upsample_nearest(h)
      h = norm(layers.leaky_relu(body(c, name=f'b{k}_conv1')(h)))
      h = norm(layers.leaky_relu(body(c, name=f'b{k}_conv2')(h)))
      outputs.append(self._to_rgb(conv, h, k))
    return outputs

  def _to_rgb(self, conv, h, k):
    rgb = conv(self.image_channels, kernel_size=1, name=f'to_rgb{k}')(h).astype(jnp.float32)
    return jnp.tanh(rgb) if self.tanh else rgb


class Discriminator(nn.Module):
  """Takes the whole pyramid; returns one raw score per image (float32, shape (B,)).

  combine: 'simple' (= 'lin_cat') concat[from_rgb(x_s), h] as BMSG-GAN does; 'raw' concatenates
  the image itself; 'cat_lin' applies a learnable linear 1x1 to concat[h, x_s] (msg-stylegan-tf).
  groups > 1: each scale is parallel.concat_batch of that many equal batches, scored in one
  pass with the minibatch statistic of each batch its own.
  """
  depth: int
  width: int = 512
  combine: str = 'simple'
  mbstd: str = 'bmsg'
  equalized: bool = True
  spectral_norm: bool = False
  dilation: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, pyramid: Sequence[jnp.ndarray], groups: int = 1) -> jnp.ndarray:
    if len(pyramid) != self.depth:
      raise ValueError(f'expected {self.depth} scales, got {len(pyramid)}')
    conv = functools.partial(layers.EqConv, equalized=self.equalized, dtype=self.dtype)
    body = functools.partial(conv, spectral_norm=self.spectral_norm)
    top = self.depth - 2  # index of the block at full resolution; -1 when depth is 1
    h = None
    for i in range(top, -1, -1):  # blocks at 2^(i+3) pixels, high -> low resolution
      c_in, c_out = d_block_channels(i, self.width)
      h = self._enter(conv, pyramid[i + 1], h, c_in, name=f'level{i + 1}')
      h = layers.leaky_relu(body(c_in, dilation=self.dilation, name=f'b{i}_conv1')(h))
      h = layers.leaky_relu(body(c_out, dilation=self.dilation, name=f'b{i}_conv2')(h))
      h = layers.avg_pool(h)
    h = self._enter(conv, pyramid[0], h, self.width, name='level0')
    if self.mbstd != 'none':
      h = layers.minibatch_stddev(h, self.mbstd, groups=groups)
    h = layers.leaky_relu(body(self.width, dilation=self.dilation, name='final_conv3')(h))
    h = layers.leaky_relu(body(self.width, kernel_size=4, padding='VALID', name='final_conv4')(h))
    score = conv(1, kernel_size=1, name='final_score')(h)
    return score.reshape(-1).astype(jnp.float32)

  def _enter(self, conv, x, h, c_in, name):
    """Bring scale x into the main path h (None at the top level) for a block of width c_in."""
    x = x.astype(self.dtype)
    if h is None:
      return conv(c_in, kernel_size=1, name=f'{name}_from_rgb')(x)
    if self.combine in ('simple', 'lin_cat'):
      rgb = conv(c_in - h.shape[-1], kernel_size=1, name=f'{name}_from_rgb')(x)
      return jnp.concatenate([rgb, h], axis=-1)
    if self.combine == 'raw':
      return jnp.concatenate([x, h], axis=-1)
    if self.combine == 'cat_lin':
      return conv(c_in, kernel_size=1, use_bias=False, name=f'{name}_cat_lin')(
          jnp.concatenate([h, x], axis=-1))
    raise ValueError(f'unknown combine {self.combine!r}; choose from {COMBINES}')
