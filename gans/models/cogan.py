"""Coupled generators and discriminators (CoGAN), and the unshared pairs SCoGAN couples softly.

A network is a list of blocks. The generator's first `shared` blocks are one set of parameters
(`shared_<i>`) run once per z batch and feeding both domains' remaining blocks (`a_<i>`,
`b_<i>`); the discriminator's last `shared` blocks are one set run once on the concatenation
[domain a; domain b] of the per-domain blocks' outputs. With shared=0 the two networks are
independent (the baseline, and SCoGAN's nets): same structure, different parameters.

Architectures (spec coupled.md §2.2, §2.4, §2.6, §3.3):
  digits32  32x32 'SAME' net of the SCoGAN repo: the default (data in [-1, 1], tanh).
  digits28  the official Caffe/PyTorch 28x28 net; its sigmoid output s is returned as 2s - 1,
            so it shares the engine's [-1, 1] images.
  faces     the face net at 64x64 or 128x128 (BN + PReLU everywhere, tanh).
Every channel count is divided by a divisor (at least 1 channel), which is how the CPU configs
and the tiny variants shrink a net without changing its shape.
"""
import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import layers, parallel

ARCHS = ('digits32', 'digits28', 'faces')
# Spec §4 #11, follow the variant's source: 'normal' N(0, 0.02) and bias 0.1 (32x32 and SCoGAN
# nets), 'he' He normal and bias 0 (official 28x28), 'normal0' N(0, 0.02) and bias 0 (faces).
INITS = ('normal', 'he', 'normal0')


class PReLU(nn.Module):
  """Per-channel PReLU (Caffe's), slope initialised to `init` (spec §4 #10: 0.25)."""
  init: float = 0.25

  @nn.compact
  def __call__(self, x):
    alpha = self.param('alpha', nn.initializers.constant(self.init), (x.shape[-1],))
    return jnp.where(x >= 0, x, alpha.astype(x.dtype) * x)


@dataclasses.dataclass(frozen=True)
class Layer:
  """One block: a linear map, then optional BN, activation, pooling, dropout."""
  kind: str  # 'dense_map' (z -> HxWxC), 'convT', 'conv', 'dense', 'flatten_dense'
  features: int
  kernel: int = 1
  stride: int = 1
  padding: Any = 'SAME'
  shape: Optional[tuple] = None  # dense_map: (H, W)
  bn: bool = False
  act: str = 'none'  # 'prelu', 'tanh', 'sigmoid2', 'none'
  pool: bool = False
  dropout: float = 0.0


class Block(nn.Module):
  """One Layer. Parameters are float32; `dtype` is the compute dtype (bfloat16 on
  accelerators), BatchNorm statistics are reduced in float32 whatever it is."""
  layer: Layer
  weight_init: str = 'normal'  # see INITS
  prelu_init: float = 0.25
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    spec = self.layer
    kinit = (nn.initializers.he_normal() if self.weight_init == 'he'
             else nn.initializers.normal(0.02))
    binit = nn.initializers.constant(0.1 if self.weight_init == 'normal' else 0.0)
    dense = dict(kernel_init=kinit, bias_init=binit, dtype=self.dtype)
    k = (spec.kernel, spec.kernel)
    cin, rows = x.shape[-1], x.shape[0]
    if spec.kind == 'dense_map':
      x = nn.Dense(math.prod(spec.shape) * spec.features, **dense)(x)
      x = x.reshape(x.shape[0], *spec.shape, spec.features)
      layers.count_flops(2 * rows * cin * x[0].size)
    elif spec.kind == 'convT':  # counted as the products it needs: each input pixel times k^2
      layers.count_flops(2 * math.prod(x.shape[:3]) * spec.kernel ** 2 * cin * spec.features)
      x = layers.ConvTranspose(spec.features, k, (spec.stride,) * 2, spec.padding, **dense)(x)
    elif spec.kind == 'conv':
      x = nn.Conv(spec.features, k, (spec.stride,) * 2, padding=spec.padding, **dense)(x)
      layers.count_flops(2 * math.prod(x.shape[:3]) * spec.kernel ** 2 * cin * spec.features)
    elif spec.kind in ('dense', 'flatten_dense'):
      x = x.reshape(rows, -1)
      layers.count_flops(2 * rows * x.shape[1] * spec.features)
      x = nn.Dense(spec.features, **dense)(x)
    else:
      raise ValueError(spec.kind)
    if spec.pool:
      x = layers.max_pool(x)
    if spec.bn:  # learned shift, no learned scale (Caffe BatchNorm + Bias; spec §2.2)
      x = nn.BatchNorm(use_running_average=not train, use_scale=False, momentum=self.bn_momentum,
                       epsilon=1e-5, dtype=self.dtype)(x)
    if spec.act == 'prelu':
      x = PReLU(self.prelu_init)(x)
    elif spec.act == 'tanh':
      x = jnp.tanh(x)
    elif spec.act == 'sigmoid2':
      x = 2.0 * nn.sigmoid(x) - 1.0
    if spec.dropout:
      x = nn.Dropout(spec.dropout, deterministic=not train)(x)
    return x


def _ch(c, divisor):
  return max(1, c // divisor)


def generator_layers(arch, resolution, channels, divisor=1):
  """The generator's blocks, input (z) to image."""
  d = lambda c: _ch(c, divisor)
  if arch == 'digits32':
    return [Layer('dense_map', d(1024), shape=(4, 4), bn=True, act='prelu'),
            *[Layer('convT', d(c), 3, 2, bn=True, act='prelu') for c in (512, 256, 128)],
            Layer('convT', channels, 6, 1, act='tanh')]
  if arch == 'digits28':  # PyTorch ConvTranspose(k, s, p) = lax padding k - 1 - p each side
    return [Layer('dense_map', d(1024), shape=(4, 4), bn=True, act='prelu'),
            *[Layer('convT', d(c), 3, 2, ((1, 1), (1, 1)), bn=True, act='prelu')
              for c in (512, 256, 128)],
            Layer('convT', channels, 6, 1, ((4, 4), (4, 4)), act='sigmoid2')]
  if arch == 'faces':  # 4x4 -> resolution in k4 s2 steps, channels halving from 1024
    widths = [1024 // 2 ** i for i in range(1, int(math.log2(resolution // 4)) + 1)]
    return [Layer('dense_map', d(1024), shape=(4, 4), bn=True, act='prelu'),
            *[Layer('convT', d(c), 4, 2, bn=True, act='prelu') for c in widths],
            Layer('convT', channels, 3, 1, act='tanh')]
  raise ValueError(arch)


def discriminator_layers(arch, resolution, divisor=1, dropout=False):
  """The discriminator's blocks, image to one logit. `dropout`: the SCoGAN 128 D's dropouts."""
  d = lambda c: _ch(c, divisor)
  if arch == 'digits32':
    return [Layer('conv', d(20), 5, pool=True), Layer('conv', d(50), 5, padding='VALID', pool=True),
            Layer('flatten_dense', d(500), act='prelu', dropout=0.5), Layer('dense', 1)]
  if arch == 'digits28':  # LeNet; Caffe's FC-500 dropout is kept
    return [Layer('conv', d(20), 5, padding='VALID', pool=True),
            Layer('conv', d(50), 5, padding='VALID', pool=True),
            Layer('conv', d(500), 4, padding='VALID', act='prelu', dropout=0.5),
            Layer('dense', 1)]
  if arch == 'faces':  # resolution -> 2x2 in stride-2 convs, then FC 2048 and the logit
    convs = [(32, 5), (64, 5), (128, 5), (256, 3), (512, 3), (1024, 3)]
    convs = convs[len(convs) - int(math.log2(resolution // 2)):]
    drops = [0.0] * (len(convs) - 4) + [0.1, 0.3, 0.3, 0.5] if dropout else [0.0] * len(convs)
    return [*[Layer('conv', d(c), k, 2, bn=True, act='prelu', dropout=p)
              for (c, k), p in zip(convs, drops)],
            Layer('flatten_dense', d(2048), bn=True, act='prelu', dropout=0.5 if dropout else 0.0),
            Layer('dense', 1)]
  raise ValueError(arch)


class _Coupled(nn.Module):
  layers: Sequence[Layer]
  shared: int
  weight_init: str = 'normal'
  prelu_init: float = 0.25
  dtype: Any = jnp.float32

  def block(self, i, name):
    return Block(self.layers[i], self.weight_init, self.prelu_init, dtype=self.dtype,
                 name=f'{name}_{i}')


class CoupledGenerator(_Coupled):
  """(x_a, x_b, features_a, features_b) for one z batch; features are every block's output."""

  @nn.compact
  def __call__(self, z, train: bool = True):
    h, trunk = z, []
    for i in range(self.shared):
      h = self.block(i, 'shared')(h, train)
      trunk.append(h)
    outs = []
    for domain in ('a', 'b'):
      x, feats = h, list(trunk)
      for i in range(self.shared, len(self.layers)):
        x = self.block(i, domain)(x, train)
        feats.append(x)
      outs.append((x, feats[:-1]))
    (x_a, f_a), (x_b, f_b) = outs
    f32 = lambda t: jax.tree.map(lambda v: v.astype(jnp.float32), t)
    return f32(x_a), f32(x_b), f32(f_a), f32(f_b)


class CoupledDiscriminator(_Coupled):
  """(logits_a, logits_b), each (B,): per-domain first blocks, then the shared last blocks
  once on [a; b] (spec §4 #8)."""

  @nn.compact
  def __call__(self, x_a, x_b, train: bool = True):
    first = len(self.layers) - self.shared
    hs = []
    for domain, x in (('a', x_a), ('b', x_b)):
      for i in range(first):
        x = self.block(i, domain)(x, train)
      hs.append(x)
    if self.shared:
      h = parallel.concat_batch(hs)  # device block by device block: no rows move
      for i in range(first, len(self.layers)):
        h = self.block(i, 'shared')(h, train)
      hs = parallel.split_batch(h, [x_a.shape[0], x_b.shape[0]])
    return hs[0][:, 0].astype(jnp.float32), hs[1][:, 0].astype(jnp.float32)


class Encoder(nn.Module):
  """SCoGAN's CC encoder (spec §3.5): image -> z, shared by both domains."""
  latent_size: int
  divisor: int = 1
  dropout: float = 0.4

  @nn.compact
  def __call__(self, x, train: bool = True):
    for c, s in ((64, 1), (128, 2), (128, 2), (256, 2)):
      x = nn.leaky_relu(nn.Conv(_ch(c, self.divisor), (3, 3), (s, s),
                                kernel_init=nn.initializers.normal(0.02))(x), 0.2)
    x = nn.Dropout(self.dropout, deterministic=not train)(x.reshape(x.shape[0], -1))
    return nn.Dense(self.latent_size, kernel_init=nn.initializers.normal(0.02))(x)


def block_pairs(g_params):
  """[(name_a, name_b)] of the generator's per-domain blocks that correspond (a_i, b_i)."""
  return [(n, 'b' + n[1:]) for n in sorted(g_params) if n.startswith('a_')]


def count(params):
  return sum(x.size for x in jax.tree.leaves(params))
