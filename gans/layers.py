"""Shared model building blocks: equalized-lr convs, PixelNorm, minibatch stddev, resampling,
transposed convs.

Parameters are kept in float32; every layer casts its kernel and input to the module's `dtype`
at the point of use, so bfloat16 compute costs nothing in optimizer precision. Layouts are NHWC.
"""
import contextlib
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gans import parallel

Dtype = Any
GAIN = math.sqrt(2.0)  # BMSG-GAN uses gain sqrt(2) on every layer, linear ones included.


def split_variables(variables):
  """(params, the other collections) of a Flax variables dict: what is trained apart from what
  is only carried (BatchNorm statistics, spectral-norm vectors)."""
  variables = dict(variables)
  return variables.pop('params'), variables


def leaky_relu(x):
  return nn.leaky_relu(x, 0.2)


def _torch_default_init(fan_in):
  """PyTorch's Conv2d default (kaiming_uniform, a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


_FLOP_COUNTERS = []


@contextlib.contextmanager
def flop_counter():
  """Collect the FLOPs (2 x multiply-adds) of every conv and matmul traced inside the block.

  Counting happens at trace time from static shapes, so wrapping a jax.eval_shape of a model
  gives its exact FLOPs at no cost, whatever its size; trace a batch of one for per-image
  figures (a layer that runs on two rows per input, such as CoGAN's shared D layers on
  [a; b], then counts twice).
  """
  counts = []
  _FLOP_COUNTERS.append(counts)
  try:
    yield counts
  finally:
    _FLOP_COUNTERS.pop()


def traced_flops(fn, *args):
  """(fn's output shapes, the FLOPs its convs and matmuls make) for abstract or concrete args:
  jax.eval_shape under a flop_counter, so nothing is computed."""
  with flop_counter() as counts:
    out = jax.eval_shape(fn, *args)
  return out, sum(counts)


def count_flops(flops):
  if _FLOP_COUNTERS:
    _FLOP_COUNTERS[-1].append(flops)


def _l2_normalize(v):
  return v * jax.lax.rsqrt(jnp.sum(v * v) + 1e-24)


def spectral_normalize(module, w):
  """w / sigma_max(w) for a (fan, out) matrix, by one power iteration per call on a persistent u.

  u lives in the module's 'spectral' collection and advances only when that collection is
  mutable (training); the singular value does not depend on the order of w's rows, so any
  flattening of a kernel that keeps the output axis last gives PyTorch's value.
  """
  u_var = module.variable('spectral', 'u', lambda: _l2_normalize(
      jax.random.normal(module.make_rng('params'), (w.shape[1],))))
  u = u_var.value
  v = _l2_normalize(w @ u)
  u = _l2_normalize(w.T @ v)
  if module.is_mutable_collection('spectral') and not module.is_initializing():
    u_var.value = u
  u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
  return w / (v @ w @ u)


class EqConv(nn.Module):
  """Conv with optional equalized learning rate and spectral normalisation.

  Equalized: weights stored as N(0, 1) and multiplied by gain/sqrt(fan_in) at run time, so
  Adam sees unit-scale parameters (ProGAN/BMSG-GAN). Not equalized: PyTorch's default init
  (MSG-GAN v1). Spectral norm divides the kernel by its largest singular value, estimated by one
  power iteration per call on a persistent `u` kept in the 'spectral' collection.
  """
  features: int
  kernel_size: int = 3
  padding: Any = 'SAME'
  dilation: int = 1
  use_bias: bool = True
  equalized: bool = True
  spectral_norm: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, cin = self.kernel_size, x.shape[-1]
    fan_in = k * k * cin
    shape = (k, k, cin, self.features)
    if self.equalized:
      kernel = self.param('kernel', nn.initializers.normal(1.0), shape)
      kernel = kernel * (GAIN / math.sqrt(fan_in))
    else:
      kernel = self.param('kernel', _torch_default_init(fan_in), shape)
    if self.spectral_norm:
      kernel = spectral_normalize(self, kernel.reshape(-1, self.features)).reshape(shape)
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), window_strides=(1, 1),
        padding=self.padding, rhs_dilation=(self.dilation, self.dilation),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.use_bias:
      init = nn.initializers.zeros if self.equalized else _torch_default_init(fan_in)
      y = y + self.param('bias', init, (self.features,)).astype(self.dtype)
    count_flops(2 * math.prod(y.shape[:3]) * fan_in * self.features)
    return y

class EqDenseToMap(nn.Module):
  """The generator's first layer: a 4x4 transposed conv on a 1x1 input, i.e. a dense layer to a
  size x size x features map with one bias per channel (fan_in = input width, as BMSG-GAN)."""
  size: int
  features: int
  equalized: bool = True
  spectral_norm: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z):
    cin = z.shape[-1]
    # PyTorch's ConvTranspose2d computes its default-init fan from weight dim 1 (out * k * k).
    fan_in = cin if self.equalized else self.features * self.size * self.size
    shape = (cin, self.size * self.size * self.features)
    if self.equalized:
      kernel = self.param('kernel', nn.initializers.normal(1.0), shape) * (GAIN / math.sqrt(fan_in))
    else:
      kernel = self.param('kernel', _torch_default_init(fan_in), shape)
    if self.spectral_norm:
      kernel = spectral_normalize(self, kernel.reshape(-1, self.features)).reshape(shape)
    y = z.astype(self.dtype) @ kernel.astype(self.dtype)
    y = y.reshape(z.shape[0], self.size, self.size, self.features)
    init = nn.initializers.zeros if self.equalized else _torch_default_init(fan_in)
    count_flops(2 * z.shape[0] * cin * self.size * self.size * self.features)
    return y + self.param('bias', init, (self.features,)).astype(self.dtype)


def pixel_norm(x, eps=1e-8):
  """Per-pixel feature normalisation; the epsilon sits inside the square root (BMSG-GAN)."""
  x32 = x.astype(jnp.float32)
  return (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def _shard_moments(x):
  """Per shard and batch of x (shards, groups, rows, ...): a shift, the mean's offset from it, M2.

  The shift is the shard's first row, so the moments are of the rows' spread, not their size: in
  a collapsed batch (std/|mean| = 1e-5) E[x^2] - E[x]^2 in float32 loses all of the variance,
  and even two passes lose 1e-4 of it to the rounding of the mean. x - shift is exact there
  (Sterbenz). The statistic does not depend on the shift, so holding it constant changes no
  derivative.
  """
  shift = jax.lax.stop_gradient(x[:, :, 0])
  dev = x - shift[:, :, None]
  offset = jnp.mean(dev, axis=2)
  return shift, offset, jnp.sum(jnp.square(dev - offset[:, :, None]), axis=2)


def _every_shard(means, m2):
  """Every shard's means (shards, ...) and the sum of the M2s, on every device, in one all-reduce.

  Each shard writes its means into its own slot of zeros, so summing the slots adds only zeros to
  them: an all-gather in the form of the all-reduces a data-parallel step already makes (the
  step's HLO stays all-reduces only), and one collective where a two-pass variance needs two in
  sequence. It sends 2 * shards + 1 numbers per statistic where E[x], E[x^2] sent 2.
  """
  n = means.shape[0]
  slots = jnp.eye(n, dtype=means.dtype).reshape((n, n) + (1,) * (means.ndim - 1))
  placed = (means[:, None] * slots).reshape(n, -1)
  total = jnp.sum(jnp.concatenate([placed, m2.reshape(n, -1)], axis=1), axis=0)
  return total[:placed.shape[1]].reshape(means.shape), total[placed.shape[1]:].reshape(m2.shape[1:])


def _batch_variance(x):
  """Biased variance over axes 0 and 2 of x (shards, groups, rows, ...), by Chan's formula.

  Shard means are (shift, offset) pairs: their differences are taken as (shift_i - shift_0) +
  (offset_i - offset_0), each without cancellation, so the between-shard term keeps the
  precision of the within-shard ones.
  """
  shift, offset, m2 = _shard_moments(x)
  means, m2 = _every_shard(jnp.stack([shift, offset], axis=1), m2)
  to_first = (means[:, 0] - means[0, 0]) + (means[:, 1] - means[0, 1])
  between = jnp.sum(jnp.square(to_first - jnp.mean(to_first, axis=0)), axis=0)
  rows = x.shape[2]
  return (m2 + rows * between) / (rows * x.shape[0])


def minibatch_stddev(x, variant='bmsg', eps=1e-8, groups=1):
  """Append the batch's standard deviation as one extra channel.

  'bmsg': one scalar for the whole batch (std per position and channel, averaged over all of
  them). 'v1': MSG-GAN v1's H x W map (averaged over channels only). The batch is the global
  batch: each device reduces its own rows and one all-reduce combines them (_batch_variance),
  precise however collapsed the batch. `groups` > 1: x is parallel.concat_batch of that many
  equal batches (a real and a fake batch in one D pass), each getting its own statistic, as if
  D had seen it alone.
  """
  if variant not in ('bmsg', 'v1'):
    raise ValueError(f'unknown minibatch-stddev variant {variant!r}')
  x32 = parallel.grouped(x.astype(jnp.float32), groups)  # (shards, groups, rows, H, W, C)
  std = jnp.sqrt(_batch_variance(x32) + eps)  # (groups, H, W, C); biased, as the references
  stat = jnp.mean(std, axis=(1, 2, 3) if variant == 'bmsg' else 3)  # (groups,) or (groups, H, W)
  stat = stat.reshape((1, groups, 1) + stat.shape[1:] + (1,) * (4 - stat.ndim))
  stat = jnp.broadcast_to(stat, x32.shape[:-1] + (1,)).reshape(x.shape[:-1] + (1,))
  return jnp.concatenate([x, stat.astype(x.dtype)], axis=-1)


def upsample_nearest(x, factor=2):
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


def avg_pool(x, factor=2):
  """Box-filter downsampling by reshape-and-mean (identical to AvgPool with kernel = stride)."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


@jax.custom_vjp
def max_pool(x):
  """2x2 max pooling, stride 2 (flax's nn.max_pool(x, (2, 2), (2, 2)); an odd last row or column
  is dropped), whose gradient goes to the first maximum of each window, as in reduce_window's
  select-and-scatter and PyTorch's MaxPool2d.

  Written as a reshape because XLA:CPU lowers select-and-scatter to iota, reduce-window and
  scatter loops that cost a LeNet discriminator's step more than its convolutions do.
  """
  return _max_pool_windows(x).max(axis=-1)


def _max_pool_windows(x):
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(b, h // 2, w // 2, c, 4)


def _max_pool_fwd(x):
  windows = _max_pool_windows(x)
  first = jax.nn.one_hot(jnp.argmax(windows, axis=-1), 4, dtype=x.dtype)
  return windows.max(axis=-1), (first, x.shape)


def _max_pool_bwd(saved, g):
  first, (b, h, w, c) = saved
  g = (g[..., None] * first).reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
  g = g.reshape(b, h - h % 2, w - w % 2, c)
  return (jnp.pad(g, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def image_pyramid(x, depth):
  """[4x4, 8x8, ..., full] of a full-resolution batch, each scale pooled directly from x."""
  return [avg_pool(x, 2 ** (depth - 1 - s)) for s in range(depth)]


def _transpose_pads(k, s, padding):
  """lax.conv_transpose's (low, high) padding of the dilated input along one dimension."""
  if padding == 'SAME':
    low = k - 1 if s > k - 1 else -(-(k + s - 2) // 2)
    return low, k + s - 2 - low
  if padding == 'VALID':
    return k - 1, s - 1 + max(k - s, 0)
  return padding


def _phases(n, k, s, padding):
  """Along one dimension of a transposed conv: for each output phase r (rows s*q + r), the
  first kernel tap it reads and the padding of a stride-1 conv of the input by taps
  first, first + s, ... (empty where it reads none); and the output length."""
  low, high = _transpose_pads(k, s, padding)
  out = (n - 1) * s + 1 + low + high - k + 1
  phases = []
  for r in range(s):
    taps = [t for t in range(k) if (r + t - low) % s == 0]
    offset = (r + taps[0] - low) // s if taps else 0
    phases.append(taps and (taps[0], (-offset, -(-out // s) - n + offset + len(taps) - 1)))
  return phases, out


def conv_transpose(x, kernel, strides, padding):
  """lax.conv_transpose (NHWC, HWIO, kernel not flipped), on CPU as s*s stride-1 convs.

  XLA:CPU runs the kernel gradient of a strided transposed conv (an rhs-dilated convolution) on
  a generic loop, 5-10x slower than computing each output phase as a stride-1 conv of the
  undilated input by the kernel taps that phase reads, then interleaving the phases: the same
  products and sums, so the same result to float32 rounding, and the same gradient bytes to
  all-reduce. Accelerators keep lax.conv_transpose, which their libraries run natively.
  """
  if jax.default_backend() != 'cpu' or tuple(strides) == (1, 1):
    return jax.lax.conv_transpose(x, kernel, strides, padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  if isinstance(padding, str):
    padding = [padding] * 2
  (sh, sw), (b, c) = strides, (x.shape[0], kernel.shape[-1])
  rows, out_h = _phases(x.shape[1], kernel.shape[0], sh, padding[0])
  cols, out_w = _phases(x.shape[2], kernel.shape[1], sw, padding[1])
  qh, qw = -(-out_h // sh), -(-out_w // sw)
  conv = lambda row, col: jax.lax.conv_general_dilated(
      x, kernel[row[0]::sh, col[0]::sw], (1, 1), (row[1], col[1]),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y = jnp.stack([jnp.stack([conv(row, col) if row and col else jnp.zeros((b, qh, qw, c), x.dtype)
                            for col in cols], 3) for row in rows], 2)
  return y.reshape(b, qh * sh, qw * sw, c)[:, :out_h, :out_w]


class ConvTranspose(nn.Module):
  """flax.linen.ConvTranspose's parameters, names and arithmetic (so checkpoints carry over),
  computed by `conv_transpose`."""
  features: int
  kernel_size: tuple
  strides: tuple = (1, 1)
  padding: Any = 'SAME'
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv_transpose(x, kernel, self.strides, self.padding) + bias
