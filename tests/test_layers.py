import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_cli
from gans import layers
from numpy_ref import np_conv

RTOL, ATOL = 1e-5, 1e-5


def np_box_pool(x, f):
  b, h, w, c = x.shape
  out = np.zeros((b, h // f, w // f, c))
  for i in range(h // f):
    for j in range(w // f):
      out[:, i, j] = x[:, i * f:(i + 1) * f, j * f:(j + 1) * f].mean(axis=(1, 2))
  return out


def np_variables(module, *args, seed=1):
  """Variables of module's shapes filled from numpy: jax.random would compile threefry once per
  parameter shape (seconds each on CPU). Biases come out random, so tests see them added."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.RandomState(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.randn(*s.shape), s.dtype), shapes)


@pytest.mark.parametrize('k,padding,dilation', [
    (1, 'SAME', 1), (3, 'SAME', 1), (3, 'SAME', 2), (1, 'VALID', 1), (3, 'VALID', 1),
    (4, 'VALID', 1)])
def test_eqconv_matches_numpy(k, padding, dilation):
  x = np.random.RandomState(0).randn(2, 7, 7, 5).astype(np.float32)
  m = layers.EqConv(4, kernel_size=k, padding=padding, dilation=dilation)
  v = np_variables(m, x)
  kernel, bias = np.asarray(v['params']['kernel']), np.asarray(v['params']['bias'])
  assert kernel.shape == (k, k, 5, 4) and bias.shape == (4,)
  want = np_conv(x, kernel * math.sqrt(2) / math.sqrt(k * k * 5), dilation, padding) + bias
  got = m.apply(v, x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_eqconv_init_is_unit_normal_and_zero_bias():
  v = layers.EqConv(64).init(jax.random.key(3), jnp.zeros((1, 4, 4, 64)))
  kernel = np.asarray(v['params']['kernel'])
  assert kernel.dtype == np.float32 and kernel.size == 3 * 3 * 64 * 64
  assert abs(kernel.mean()) < 0.02
  assert abs(kernel.std() - 1) < 0.02
  np.testing.assert_array_equal(v['params']['bias'], 0)


def test_plain_conv_uses_torch_init_and_no_runtime_scale():
  x = np.random.RandomState(0).randn(2, 6, 6, 8).astype(np.float32)
  m = layers.EqConv(32, equalized=False)
  v = m.init(jax.random.key(0), x)
  bound = 1 / math.sqrt(3 * 3 * 8)
  kernel, bias = np.asarray(v['params']['kernel']), np.asarray(v['params']['bias'])
  for p in (kernel, bias):
    assert np.all(np.abs(p) <= bound)
  assert np.abs(kernel).max() > 0.9 * bound  # uniform over the whole range, not shrunk
  np.testing.assert_allclose(m.apply(v, x), np_conv(x, kernel) + bias, rtol=RTOL, atol=ATOL)


def _np_sigma(w):
  return np.linalg.svd(np.asarray(w, np.float64).reshape(-1, w.shape[-1]), compute_uv=False)[0]


def test_spectral_norm_converges_to_unit_sigma():
  x = np.random.RandomState(0).randn(2, 5, 5, 4).astype(np.float32)
  m = layers.EqConv(6, spectral_norm=True, equalized=False)
  v = np_variables(m, x)
  assert v['spectral']['u'].shape == (6,)
  kernel, bias = np.asarray(v['params']['kernel']), np.asarray(v['params']['bias'])
  step = jax.jit(lambda v: m.apply(v, x, mutable=['spectral']))
  for _ in range(200):
    y, mut = step(v)
    v = {**v, **mut}
  want_kernel = kernel / _np_sigma(kernel)
  assert _np_sigma(want_kernel) == pytest.approx(1.0)
  np.testing.assert_allclose(y, np_conv(x, want_kernel) + bias, rtol=1e-4, atol=1e-5)


def test_spectral_u_advances_only_when_mutable():
  x = np.random.RandomState(0).randn(2, 5, 5, 4).astype(np.float32)
  m = layers.EqConv(6, spectral_norm=True)
  v = np_variables(m, x)
  y1, y2 = m.apply(v, x), m.apply(v, x)
  np.testing.assert_array_equal(y1, y2)
  _, mut = m.apply(v, x, mutable=['spectral'])
  assert not np.allclose(mut['spectral']['u'], v['spectral']['u'])
  np.testing.assert_allclose(np.linalg.norm(mut['spectral']['u']), 1, rtol=1e-5)


def test_eq_dense_to_map_matches_numpy():
  z = np.random.RandomState(0).randn(3, 8).astype(np.float32)
  m = layers.EqDenseToMap(4, 5)
  v = np_variables(m, z)
  w, b = np.asarray(v['params']['kernel'], np.float64), np.asarray(v['params']['bias'])
  assert w.shape == (8, 4 * 4 * 5) and b.shape == (5,)
  want = (z @ (w * math.sqrt(2) / math.sqrt(8))).reshape(3, 4, 4, 5) + b
  np.testing.assert_allclose(m.apply(v, z), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('scale', [1.0, 1e-5])  # 1e-5: the epsilon dominates, inside the root
def test_pixel_norm(scale):
  x = (np.random.RandomState(0).randn(2, 3, 3, 7) * scale).astype(np.float32)
  x64 = x.astype(np.float64)
  want = x64 / np.sqrt(np.mean(x64 ** 2, axis=-1, keepdims=True) + 1e-8)
  np.testing.assert_allclose(layers.pixel_norm(jnp.asarray(x)), want, rtol=RTOL, atol=1e-7)


def _np_batch_std(x):
  x = x.astype(np.float64)
  return np.sqrt(np.mean((x - x.mean(axis=0)) ** 2, axis=0) + 1e-8)  # biased


def test_minibatch_stddev_bmsg_is_one_scalar():
  x = np.random.RandomState(0).randn(4, 3, 3, 5).astype(np.float32)
  out = np.asarray(layers.minibatch_stddev(jnp.asarray(x), 'bmsg'))
  assert out.shape == (4, 3, 3, 6)
  np.testing.assert_array_equal(out[..., :5], x)
  np.testing.assert_allclose(out[..., 5], _np_batch_std(x).mean(), rtol=RTOL)


def test_minibatch_stddev_v1_is_channel_mean_map():
  x = np.random.RandomState(0).randn(4, 3, 3, 5).astype(np.float32)
  out = np.asarray(layers.minibatch_stddev(jnp.asarray(x), 'v1'))
  assert out.shape == (4, 3, 3, 6)
  np.testing.assert_array_equal(out[..., :5], x)
  want = np.broadcast_to(_np_batch_std(x).mean(axis=-1), (4, 3, 3))
  np.testing.assert_allclose(out[..., 5], want, rtol=RTOL)
  assert np.ptp(out[0, ..., 5]) > 0  # a real map, not a constant


@pytest.mark.parametrize('variant', ['bmsg', 'v1'])
def test_minibatch_stddev_groups_are_the_batches_alone(variant):
  """Two batches joined (as the D step joins reals and fakes) get each its own statistic."""
  rng = np.random.RandomState(0)
  a, b = rng.randn(4, 3, 3, 5), 3 + 2 * rng.randn(4, 3, 3, 5)
  joined = layers.minibatch_stddev(jnp.asarray(np.concatenate([a, b]), jnp.float32), variant,
                                   groups=2)
  for part, alone in zip(np.split(np.asarray(joined), 2), (a, b)):
    np.testing.assert_allclose(
        part, layers.minibatch_stddev(jnp.asarray(alone, jnp.float32), variant), rtol=RTOL)


def test_minibatch_stddev_eps_inside_root_and_bad_variant():
  x = jnp.ones((3, 2, 2, 2))
  np.testing.assert_allclose(layers.minibatch_stddev(x)[..., 2], 1e-4, rtol=1e-4)
  with pytest.raises(ValueError):
    layers.minibatch_stddev(x, 'nope')


def mbstd_input(ratio, groups, shards=1, seed=0):
  """A D activation whose `groups` batches are joined as parallel.concat_batch joins them on
  `shards` devices. ratio: a collapsed batch, every row its group's mean (1 to 100 in size,
  either sign) up to std = ratio * |mean|, the case minibatch stddev exists to detect; None:
  ordinary activations, a different mean and spread per group. 16 x 4x4x8 or 32 x 8x8x4."""
  b, h, w, c = (16, 4, 4, 8) if groups == 1 else (32, 8, 8, 4)
  rng = np.random.RandomState(seed)
  shape = (shards, groups, b // (shards * groups), h, w, c)
  if ratio is None:
    spread = np.arange(1, groups + 1).reshape(1, groups, 1, 1, 1, 1)
    x = spread - 1 + spread * rng.randn(*shape)
  else:
    mean = rng.choice([-1, 1], (groups, h, w, c)) * np.exp(rng.uniform(0, np.log(100),
                                                                       (groups, h, w, c)))
    x = mean[None, :, None] + ratio * np.abs(mean[None, :, None]) * rng.randn(*shape)
  weights = rng.randn(b, h, w)  # d/dx of sum(weights * the appended channel) is checked
  return x.reshape(b, h, w, c).astype(np.float32), weights.astype(np.float32)


def _np_grouped_std(x, groups, shards, eps=1e-8):
  """Deviations and per-batch std in float64 by two passes, in parallel.grouped's layout, from
  the float32 values the layer sees (not the values before rounding)."""
  x = np.asarray(x, np.float64).reshape((shards, groups, -1) + x.shape[1:])
  dev = x - x.mean(axis=(0, 2), keepdims=True)
  return dev, np.sqrt(np.mean(dev ** 2, axis=(0, 2), keepdims=True) + eps)


def _stat_axes(variant):
  return (3, 4, 5) if variant == 'bmsg' else (5,)


def np_mbstd_channel(x, variant, groups=1, shards=1):
  """The appended channel (B, H, W) as PyTorch's two-pass reference computes it, in float64."""
  dev, std = _np_grouped_std(x, groups, shards)
  stat = std.mean(axis=_stat_axes(variant), keepdims=True)
  return np.broadcast_to(stat, dev.shape[:-1] + (1,)).reshape(x.shape[:-1])


def np_mbstd_grad(x, weights, variant, groups=1, shards=1):
  """d/dx of sum(weights * appended channel) in float64: d std/dx = dev / (rows * std), and
  each statistic is the mean of its stds and appears in every row of its batch."""
  dev, std = _np_grouped_std(x, groups, shards)
  per_stat = np.asarray(weights, np.float64).reshape(dev.shape[:-1] + (1,))
  per_stat = per_stat.sum(axis=(0, 2) + _stat_axes(variant)[:-1], keepdims=True)
  count = math.prod(dev.shape[a] for a in (0, 2) + _stat_axes(variant))
  return (per_stat * dev / (count * std)).reshape(x.shape)


def mbstd_channel_and_grad(variant, groups):
  """One jitted function: (d/dx of sum(weights * appended channel), the appended channel)."""
  def loss(x, weights):
    channel = layers.minibatch_stddev(x, variant, groups=groups)[..., -1]
    return jnp.sum(channel * weights), channel
  return jax.jit(jax.grad(loss, has_aux=True))


def check_mbstd(grad, channel, x, weights, variant, groups, shards=1):
  """rtol 1e-5 against float64 on the value, whatever std/|mean|; the gradient too, up to the
  rows where it is near 0 (a row at the batch mean)."""
  np.testing.assert_allclose(channel, np_mbstd_channel(x, variant, groups, shards), rtol=1e-5)
  want = np_mbstd_grad(x, weights, variant, groups, shards)
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


MBSTD_CASES = [(v, g, r) for v in ('bmsg', 'v1') for g in (1, 2) for r in (1e-5, 1e-4, None)]


@pytest.mark.parametrize('variant,groups,ratio', MBSTD_CASES)
def test_minibatch_stddev_matches_float64_on_collapsed_batches(variant, groups, ratio):
  """Issue 12: the one-pass E[x^2] - E[x]^2 in float32 was 18% to 38x off on these collapsed
  batches, the mode collapse the statistic exists to detect (1e-7 on ordinary ones)."""
  x, weights = mbstd_input(ratio, groups)
  grad, channel = mbstd_channel_and_grad(variant, groups)(x, weights)
  check_mbstd(grad, channel, x, weights, variant, groups)


EIGHT_DEVICES = """
import json, sys
import jax, numpy as np
from gans import bench, layers, parallel
sys.path.insert(0, 'tests')
from test_layers import MBSTD_CASES, mbstd_channel_and_grad, mbstd_input
mesh, out, ops = parallel.make_mesh(), {}, {}
for variant, groups, ratio in MBSTD_CASES:
  x, weights = mbstd_input(ratio, groups, shards=8)
  f = mbstd_channel_and_grad(variant, groups)
  forward = jax.jit(lambda x: layers.minibatch_stddev(x, variant, groups=groups))
  x = jax.device_put(x, parallel.batch_sharding(mesh))
  with jax.set_mesh(mesh):
    grad, channel = f(x, jax.device_put(weights, parallel.batch_sharding(mesh)))
    hlo = forward.lower(x).compile().as_text()
  name = f'{variant}-{groups}-{ratio}'
  out[name + '-grad'], out[name + '-channel'] = np.asarray(grad), np.asarray(channel)
  ops[name] = bench.communication(hlo)
np.savez(sys.argv[1], **out)
print(json.dumps(ops))
"""


def test_minibatch_stddev_on_eight_devices_is_precise_in_one_collective(tmp_path):
  """The batch sharded over 8 devices: the same float64 agreement, and the forward talks by one
  all-reduce (the one-pass variance's budget: a two-pass one would wait for the mean's)."""
  out = run_cli(['-c', EIGHT_DEVICES, str(tmp_path / 'out.npz')],
                env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert out.returncode == 0, out.stderr[-3000:]
  ops, got = json.loads(out.stdout.strip().splitlines()[-1]), np.load(tmp_path / 'out.npz')
  for variant, groups, ratio in MBSTD_CASES:
    name = f'{variant}-{groups}-{ratio}'
    assert (ops[name]['all-reduce'], ops[name]['other']) == (1, 0), (name, ops[name])
    x, weights = mbstd_input(ratio, groups, shards=8)
    check_mbstd(got[name + '-grad'], got[name + '-channel'], x, weights, variant, groups, 8)


@pytest.mark.parametrize('f', [2, 3])
def test_upsample_nearest(f):
  x = np.random.RandomState(0).randn(2, 3, 4, 2).astype(np.float32)
  want = np.repeat(np.repeat(x, f, axis=1), f, axis=2)
  np.testing.assert_array_equal(layers.upsample_nearest(jnp.asarray(x), f), want)


@pytest.mark.parametrize('f', [1, 2, 4])
def test_avg_pool(f):
  x = np.random.RandomState(0).randn(2, 8, 8, 3).astype(np.float32)
  np.testing.assert_allclose(layers.avg_pool(jnp.asarray(x), f), np_box_pool(x, f), rtol=RTOL,
                             atol=1e-6)


def test_image_pyramid_low_to_high_from_full_res():
  x = np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32)
  pyr = layers.image_pyramid(jnp.asarray(x), 4)
  assert [p.shape[1] for p in pyr] == [4, 8, 16, 32]
  for p, f in zip(pyr, [8, 4, 2, 1]):
    np.testing.assert_allclose(p, np_box_pool(x, f), rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize('k,padding,hw', [(3, 'SAME', 8), (1, 'SAME', 8), (4, 'VALID', 5)])
def test_flop_counter_counts_the_traced_batch(k, padding, hw):
  x = jnp.zeros((2, 8, 8, 4))
  m = layers.EqConv(6, kernel_size=k, padding=padding)
  v = np_variables(m, x)
  with layers.flop_counter() as counts:
    m.apply(v, x)
  assert counts == [2 * 2 * hw * hw * k * k * 4 * 6]
  with layers.flop_counter() as counts:
    jax.eval_shape(layers.EqDenseToMap(4, 6).init, jax.random.key(0), jnp.zeros((3, 5)))
  assert counts == [3 * 2 * 5 * 4 * 4 * 6]


def test_bfloat16_keeps_float32_params():
  x = np.random.RandomState(0).randn(2, 6, 6, 8).astype(np.float32)
  m = layers.EqConv(8, dtype=jnp.bfloat16)
  shapes = jax.eval_shape(m.init, jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  v = np_variables(m, x)
  y16 = m.apply(v, x)
  y32 = layers.EqConv(8).apply(v, x)
  assert y16.dtype == jnp.bfloat16 and y32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, rtol=0.05, atol=0.05)


def np_conv_transpose(x, w, s, low, high):
  """lax.conv_transpose's definition: every input pixel scatters x * kernel into an output
  laid out as the stride-dilated input padded by (low, high) and correlated with w."""
  b, h, wd, _ = x.shape
  k = w.shape[0]
  size = lambda n: (n - 1) * s + 1 + low + high - k + 1
  out = np.zeros((b, size(h), size(wd), w.shape[3]))
  for i in range(h):
    for j in range(wd):
      for ty in range(k):
        for tx in range(k):
          oy, ox = s * i + low - ty, s * j + low - tx
          if 0 <= oy < out.shape[1] and 0 <= ox < out.shape[2]:
            out[:, oy, ox] += x[:, i, j] @ w[ty, tx]
  return out


@pytest.mark.parametrize('k,s,padding,pads', [
    (3, 2, 'SAME', (2, 1)), (4, 2, 'SAME', (2, 2)), (3, 2, ((1, 1),) * 2, (1, 1)),
    (5, 2, 'VALID', (4, 4)), (3, 3, 'SAME', (2, 2)), (6, 1, 'SAME', (3, 2)),
    (1, 2, 'VALID', (0, 1))])  # the last: phase 1 reads no tap
def test_conv_transpose_matches_numpy_and_lax_with_its_gradients(k, s, padding, pads):
  rng = np.random.RandomState(0)
  x = rng.randn(2, 5, 4, 3).astype(np.float32)  # odd and non-square: every phase and crop
  w = rng.randn(k, k, 3, 2).astype(np.float32)
  y = layers.conv_transpose(jnp.asarray(x), jnp.asarray(w), (s, s), padding)
  np.testing.assert_allclose(y, np_conv_transpose(x, w, s, *pads), rtol=RTOL, atol=1e-4)
  ref = lambda x, w: jax.lax.conv_transpose(x, w, (s, s), padding,
                                            dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  cotangent = rng.randn(*y.shape).astype(np.float32)
  loss = lambda f: jax.grad(lambda x, w: jnp.sum(f(x, w) * cotangent), (0, 1))(x, w)
  mine = lambda x, w: layers.conv_transpose(x, w, (s, s), padding)
  for got, want in zip(loss(mine), loss(ref)):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-4)


def test_conv_transpose_module_has_flaxs_parameters_and_outputs():
  import flax.linen as nn
  x = jnp.asarray(np.random.RandomState(0).randn(2, 4, 4, 3), jnp.float32)
  init = dict(kernel_init=nn.initializers.normal(0.02), bias_init=nn.initializers.constant(0.1))
  ours, flax_ = (cls(5, (3, 3), (2, 2), 'SAME', **init)
                 for cls in (layers.ConvTranspose, nn.ConvTranspose))
  v_ours, v_flax = ours.init(jax.random.key(1), x), flax_.init(jax.random.key(1), x)
  jax.tree.map(np.testing.assert_array_equal, v_ours, v_flax)
  np.testing.assert_allclose(ours.apply(v_ours, x), flax_.apply(v_flax, x), rtol=RTOL, atol=1e-6)


def np_max_pool_and_grad(x, g):
  """2x2 max pooling and its gradient, which goes to the first maximum in row-major order."""
  b, h, w, c = x.shape
  out, dx = np.zeros((b, h // 2, w // 2, c)), np.zeros_like(x)
  for n in range(b):
    for i in range(h // 2):
      for j in range(w // 2):
        for ch in range(c):
          window = x[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, ch].reshape(-1)
          first = int(np.argmax(window))
          out[n, i, j, ch] = window[first]
          dx[n, 2 * i + first // 2, 2 * j + first % 2, ch] = g[n, i, j, ch]
  return out, dx


@pytest.mark.parametrize('hw', [(6, 6), (5, 7)])
def test_max_pool_and_its_gradient_to_the_first_maximum(hw):
  rng = np.random.RandomState(0)
  x = rng.randn(2, *hw, 3).astype(np.float32)
  x[0, :4, :4, 0] = 0.5  # ties, as a conv of a flat background makes them
  x[1, 0, 1, 1] = x[1, 1, 0, 1] = x[1, 0, 0, 1] + 1  # two maxima, neither the first pixel
  g = rng.randn(2, hw[0] // 2, hw[1] // 2, 3).astype(np.float32)
  y, vjp = jax.vjp(layers.max_pool, jnp.asarray(x))
  want_y, want_dx = np_max_pool_and_grad(x, g)
  np.testing.assert_array_equal(y, want_y)
  np.testing.assert_array_equal(vjp(jnp.asarray(g))[0], want_dx)
  import flax.linen as nn  # and flax's reduce_window (select-and-scatter) agrees
  y, vjp = jax.vjp(lambda x: nn.max_pool(x, (2, 2), (2, 2)), jnp.asarray(x))
  np.testing.assert_array_equal(vjp(jnp.asarray(g))[0], want_dx)
