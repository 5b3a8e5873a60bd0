"""BEGAN's autoencoder discriminator and its generator (Berthelot et al. 2017, spec §4).

The layer list is carpedm20/BEGAN-tensorflow's: 3x3 'SAME' convs with ELU, no normalisation,
stride-2 convs down, nearest-neighbour x2 up, a linear bottleneck of size h, encoder widths
n, 2n, 3n, ... (one step per level), and a decoder of constant width n that starts from a linear
8x8xn map. The generator is that decoder with its own weights. Both end in a linear 3x3 conv
(tanh optional). Weights start Glorot-uniform with zero biases, as TF-slim's defaults there.

Two options from the authors' later code (carpedm20/BEGAN-tensorflow layers.py), off by
default: `skip` concatenates the nearest-upsampled initial 8x8 map to the input of every later
decoder level, and a `carry` in [0, 1] blends each width-preserving conv into a vanishing
residual, out = carry * in + (1 - carry) * elu(conv(in)).
"""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers

BASE = 8  # the smallest feature map is always 8x8 (spec §4)


def levels(resolution):
  """Resolution levels L = log2(R) - 2: 8 -> 1, 32 -> 3, 64 -> 4, 128 -> 5 (carpedm20's
  repeat_num)."""
  return int(math.log2(resolution)) - 2


def valid_resolution(resolution):
  return resolution >= BASE and resolution & (resolution - 1) == 0


class Conv(nn.Module):
  """3x3 'SAME' conv (TF's padding, so stride 2 pads one pixel at the end), float32 params cast
  to `dtype` at use; its FLOPs go to gans.layers.flop_counter like the other models' convs."""
  features: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.xavier_uniform(), (3, 3, cin, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), (self.stride, self.stride), 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    layers.count_flops(2 * math.prod(y.shape[:3]) * 9 * cin * self.features)
    return y + bias.astype(self.dtype)


class Dense(nn.Module):
  """Linear layer (the bottleneck and the decoder's first map), counted like Conv."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.xavier_uniform(), (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    layers.count_flops(2 * math.prod(x.shape[:-1]) * x.shape[-1] * self.features)
    return x.astype(self.dtype) @ kernel.astype(self.dtype) + bias.astype(self.dtype)


def _conv_elu(x, features, name, dtype, carry=None, stride=1):
  """ELU(conv(x)), blended with x into a vanishing residual when a carry is given and the
  conv keeps the shape."""
  y = nn.elu(Conv(features, stride, dtype, name=name)(x))
  if carry is not None and stride == 1 and features == x.shape[-1]:
    carry = jnp.asarray(carry, dtype)
    y = carry * x + (1 - carry) * y
  return y


class Decoder(nn.Module):
  """Code (B, c) -> image (B, R, R, channels), float32. BEGAN's generator, and D's second half."""
  resolution: int
  n: int
  channels: int
  repeat: int = 2
  skip: bool = False
  tanh: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, code, carry=None):
    x = Dense(BASE * BASE * self.n, self.dtype, name='fc')(code)
    x = h0 = x.reshape(code.shape[0], BASE, BASE, self.n)
    for level in range(levels(self.resolution)):
      if level:
        x = layers.upsample_nearest(x)
        if self.skip:
          x = jnp.concatenate([x, layers.upsample_nearest(h0, 2 ** level)], axis=-1)
      for r in range(self.repeat):
        x = _conv_elu(x, self.n, f'level{level}_conv{r}', self.dtype, carry)
    out = Conv(self.channels, dtype=self.dtype, name='to_image')(x).astype(jnp.float32)
    return jnp.tanh(out) if self.tanh else out


class Encoder(nn.Module):
  """Image (B, R, R, C) -> embedding (B, h), linear. Level l (from 1) works at width l * n; all
  but the last end in a stride-2 conv of that width, so the last works at 8x8."""
  resolution: int
  n: int
  h: int
  repeat: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, carry=None):
    x = _conv_elu(x, self.n, 'stem', self.dtype)
    num = levels(self.resolution)
    for level in range(num):
      width = self.n * (level + 1)
      for r in range(self.repeat):
        x = _conv_elu(x, width, f'level{level}_conv{r}', self.dtype, carry)
      if level < num - 1:
        x = _conv_elu(x, width, f'level{level}_down', self.dtype, stride=2)
    return Dense(self.h, self.dtype, name='embed')(x.reshape(x.shape[0], -1))


class Discriminator(Decoder):
  """The autoencoder: D(v) is the reconstruction of v (float32), not a score. Its fields are
  its decoder's (the second half, the generator's architecture) and the bottleneck size h."""
  h: int = 64

  @nn.compact
  def __call__(self, x, carry=None):
    code = Encoder(self.resolution, self.n, self.h, self.repeat, self.dtype, name='encoder')(
        x, carry)
    return Decoder(self.resolution, self.n, self.channels, self.repeat, self.skip, self.tanh,
                   self.dtype, name='decoder')(code, carry)
