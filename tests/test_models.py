import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans.models import msggan
from numpy_ref import np_conv

B = 2
KEY = jax.random.key(0)


def np_variables(module, *args, seed=1, scale=1.0):
  """Variables of module's shapes filled from numpy (jax.random compiles per shape: slow on CPU)."""
  shapes = jax.eval_shape(module.init, KEY, *args)
  rng = np.random.RandomState(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.randn(*s.shape), s.dtype), shapes)


def shapes_of(tree):
  return jax.tree.map(lambda s: tuple(s.shape), tree)


def n_params(tree):
  return sum(math.prod(s.shape) for s in jax.tree.leaves(tree))


def abstract_models(depth, width=512, channels=3, **d_kwargs):
  """(G params, G outputs, D params, D output), all abstract: cheap at any size."""
  g, d = msggan.Generator(depth, width, channels), msggan.Discriminator(depth, width, **d_kwargs)
  z = jax.ShapeDtypeStruct((B, 512), jnp.float32)
  g_vars = jax.eval_shape(g.init, KEY, z)
  outs = jax.eval_shape(g.apply, g_vars, z)
  d_vars = jax.eval_shape(d.init, KEY, outs)
  return g_vars['params'], outs, d_vars['params'], jax.eval_shape(d.apply, d_vars, outs)


# ---- numpy reference of the forward passes -------------------------------------------------

def lrelu(x):
  return np.where(x >= 0, x, 0.2 * x)


def pn(x):
  return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-8)


def np_layer(p, x, equalized, dilation=1, padding='SAME'):
  k = np.asarray(p['kernel'], np.float64)
  if equalized:
    k = k * math.sqrt(2) / math.sqrt(k.shape[0] * k.shape[1] * k.shape[2])
  y = np_conv(x, k, dilation, padding)
  return y + np.asarray(p['bias'], np.float64) if 'bias' in p else y


def np_generator(params, z, depth, equalized=True, pixelnorm=True, tanh=False, dilation=1):
  norm = pn if pixelnorm else (lambda x: x)
  z = np.asarray(z, np.float64)
  w = np.asarray(params['b0_dense']['kernel'], np.float64)
  c = params['b0_dense']['bias'].shape[0]
  if equalized:
    w = w * math.sqrt(2) / math.sqrt(z.shape[1])
  h = lrelu((z @ w).reshape(len(z), 4, 4, c) + np.asarray(params['b0_dense']['bias']))
  h = norm(lrelu(np_layer(params['b0_conv'], h, equalized, dilation)))
  outs = [np_layer(params['to_rgb0'], h, equalized)]
  for k in range(1, depth):
    h = np.repeat(np.repeat(h, 2, axis=1), 2, axis=2)
    h = norm(lrelu(np_layer(params[f'b{k}_conv1'], h, equalized, dilation)))
    h = norm(lrelu(np_layer(params[f'b{k}_conv2'], h, equalized, dilation)))
    outs.append(np_layer(params[f'to_rgb{k}'], h, equalized))
  return [np.tanh(o) for o in outs] if tanh else outs


def np_pool(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def np_discriminator(params, pyramid, combine='simple', mbstd='bmsg', equalized=True):
  pyr = [np.asarray(x, np.float64) for x in pyramid]
  depth = len(pyr)
  layer = lambda name, x, **kw: np_layer(params[name], x, equalized, **kw)

  def enter(s, h):
    if h is None:
      return layer(f'level{s}_from_rgb', pyr[s])
    if combine in ('simple', 'lin_cat'):
      return np.concatenate([layer(f'level{s}_from_rgb', pyr[s]), h], axis=-1)
    if combine == 'raw':
      return np.concatenate([pyr[s], h], axis=-1)
    return layer(f'level{s}_cat_lin', np.concatenate([h, pyr[s]], axis=-1))

  h = None
  for i in range(depth - 2, -1, -1):
    h = enter(i + 1, h)
    h = lrelu(layer(f'b{i}_conv1', h))
    h = np_pool(lrelu(layer(f'b{i}_conv2', h)))
  h = enter(0, h)
  std = np.sqrt(np.var(h, axis=0) + 1e-8)
  if mbstd == 'bmsg':
    h = np.concatenate([h, np.full(h.shape[:-1] + (1,), std.mean())], axis=-1)
  elif mbstd == 'v1':
    h = np.concatenate([h, np.broadcast_to(std.mean(-1)[..., None], h.shape[:-1] + (1,))], -1)
  h = lrelu(layer('final_conv3', h))
  h = lrelu(layer('final_conv4', h, padding='VALID'))
  return layer('final_score', h).reshape(-1)


def close(got, want, tol=1e-4):
  want = np.asarray(want)
  np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def tiny_pyramid(depth=3, channels=3, seed=0):
  rng = np.random.RandomState(seed)
  return [jnp.asarray(rng.randn(B, 2 ** (s + 2), 2 ** (s + 2), channels), jnp.float32)
          for s in range(depth)]


# ---- shapes, sizes, channel tables ---------------------------------------------------------

@pytest.mark.parametrize('depth', range(1, 10))
def test_output_shapes_every_depth(depth):
  for channels in (1, 3):
    _, outs, _, score = abstract_models(depth, channels=channels)
    assert [o.shape for o in outs] == [(B, 2 ** (s + 2), 2 ** (s + 2), channels)
                                       for s in range(depth)]
    assert all(o.dtype == jnp.float32 for o in outs)
    assert score.shape == (B,) and score.dtype == jnp.float32


# Spec §4 parameter counts (millions, 2 decimals) and §14 forward GFLOP per image.
SPEC_SIZES = {4: (20.72, 17.18, 12.77, 9.60), 5: (22.49, 18.36, 27.27, 19.27),
              6: (22.93, 18.66, 41.78, 28.94), 7: (23.04, 18.73, 56.30, 38.62),
              8: (23.07, 18.75, 70.85, 48.33), 9: (23.08, 18.76, 85.44, 58.07)}


@pytest.mark.parametrize('depth', range(4, 10))
def test_param_counts_and_flops_match_spec(depth):
  from gans import layers
  g, d = msggan.Generator(depth), msggan.Discriminator(depth)
  z = jax.ShapeDtypeStruct((1, 512), jnp.float32)
  g_vars = jax.eval_shape(g.init, KEY, z)
  with layers.flop_counter() as g_flops:
    outs = jax.eval_shape(g.apply, g_vars, z)
  d_vars = jax.eval_shape(d.init, KEY, outs)
  with layers.flop_counter() as d_flops:
    jax.eval_shape(d.apply, d_vars, outs)
  got = (n_params(g_vars) / 1e6, n_params(d_vars) / 1e6, sum(g_flops) / 1e9, sum(d_flops) / 1e9)
  assert tuple(round(x, 2) for x in got) == SPEC_SIZES[depth]


def test_channel_rules():
  assert [msggan.g_channels(k, 512) for k in range(9)] == [512] * 4 + [256, 128, 64, 32, 16]
  assert [msggan.d_block_channels(i, 512) for i in range(8)] == (
      [(512, 256)] * 3 + [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)])


def test_generator_param_shapes_depth9():
  g, _, _, _ = abstract_models(9)
  s = shapes_of(g)
  widths = [512, 512, 512, 512, 256, 128, 64, 32, 16]  # spec §4 table
  assert s['b0_dense'] == {'kernel': (512, 4 * 4 * 512), 'bias': (512,)}
  assert s['b0_conv']['kernel'] == (3, 3, 512, 512)
  for k in range(9):
    assert s[f'to_rgb{k}'] == {'kernel': (1, 1, widths[k], 3), 'bias': (3,)}
    if k:
      assert s[f'b{k}_conv1']['kernel'] == (3, 3, widths[k - 1], widths[k])
      assert s[f'b{k}_conv2']['kernel'] == (3, 3, widths[k], widths[k])
  assert len(s) == 2 + 9 + 2 * 8


def test_discriminator_param_shapes_depth9():
  _, _, d, _ = abstract_models(9)
  s = shapes_of(d)
  # spec §5.3 rows, block i = 0..7: (c_in, c_out), from_rgb width at that level
  table = [(512, 256, 256), (512, 256, 256), (512, 256, 256), (256, 256, 128),
           (128, 128, 64), (64, 64, 32), (32, 32, 16), (16, 16, 16)]
  for i, (c_in, c_out, rgb) in enumerate(table):
    assert s[f'b{i}_conv1']['kernel'] == (3, 3, c_in, c_in)
    assert s[f'b{i}_conv2']['kernel'] == (3, 3, c_in, c_out)
    assert s[f'level{i + 1}_from_rgb'] == {'kernel': (1, 1, 3, rgb), 'bias': (rgb,)}
  assert s['level0_from_rgb']['kernel'] == (1, 1, 3, 256)
  assert s['final_conv3']['kernel'] == (3, 3, 513, 512)
  assert s['final_conv4']['kernel'] == (4, 4, 512, 512)
  assert s['final_score'] == {'kernel': (1, 1, 512, 1), 'bias': (1,)}


@pytest.mark.parametrize('depth,width', [(4, 512), (5, 256), (6, 128), (7, 64), (8, 32),
                                         (9, 16)])
def test_discriminator_top_from_rgb_width(depth, width):
  _, _, d, _ = abstract_models(depth)
  assert d[f'level{depth - 1}_from_rgb']['kernel'].shape == (1, 1, 3, width)
  assert d[f'b{depth - 2}_conv1']['kernel'].shape[2] == width


# ---- combine options ------------------------------------------------------------------------

def tiny_d(combine='simple', **kw):
  pyr = tiny_pyramid()
  d = msggan.Discriminator(3, 16, combine=combine, **kw)
  return d, pyr, jax.eval_shape(d.init, KEY, pyr)['params']


def test_lin_cat_is_simple():
  assert shapes_of(tiny_d('simple')[2]) == shapes_of(tiny_d('lin_cat')[2])


def test_raw_combine_widens_first_conv():
  s = shapes_of(tiny_d('raw')[2])
  w_h = msggan.d_block_channels(1, 16)[1]  # 8 channels leave block 1
  assert s['b0_conv1']['kernel'] == (3, 3, w_h + 3, 16)
  assert s['b0_conv2']['kernel'] == (3, 3, 16, 8)
  assert s['final_conv3']['kernel'] == (3, 3, 8 + 3 + 1, 16)
  assert 'level2_from_rgb' in s and 'level1_from_rgb' not in s and 'level0_from_rgb' not in s


def test_cat_lin_combine_is_bias_free_1x1():
  s = shapes_of(tiny_d('cat_lin')[2])
  for level in (0, 1):
    assert s[f'level{level}_cat_lin'] == {'kernel': (1, 1, 8 + 3, 16)}
  assert s['level2_from_rgb']['kernel'] == (1, 1, 3, 16)
  assert s['b0_conv1']['kernel'] == (3, 3, 16, 16)


@pytest.mark.parametrize('combine', msggan.COMBINES)
def test_discriminator_forward_matches_numpy(combine):
  d, pyr, _ = tiny_d(combine)
  v = np_variables(d, pyr)
  score = d.apply(v, pyr)
  assert score.shape == (B,) and score.dtype == jnp.float32
  assert np.all(np.isfinite(score))
  close(score, np_discriminator(v['params'], pyr, combine))


def test_discriminator_rejects_bad_input():
  d, pyr, _ = tiny_d()
  with pytest.raises(ValueError):
    jax.eval_shape(d.init, KEY, pyr[1:])
  with pytest.raises(ValueError, match='combine'):
    tiny_d('nope')


@pytest.mark.parametrize('mbstd', ['v1', 'none'])
def test_discriminator_mbstd_variants(mbstd):
  d, pyr, s = tiny_d(mbstd=mbstd)
  assert s['final_conv3']['kernel'].shape[2] == 16 + (mbstd != 'none')
  v = np_variables(d, pyr)
  close(d.apply(v, pyr), np_discriminator(v['params'], pyr, mbstd=mbstd))


# ---- generator forward and v1 options -------------------------------------------------------

def tiny_g(**kw):
  g = msggan.Generator(3, 16, **kw)
  z = jnp.asarray(np.random.RandomState(0).randn(B, 16), jnp.float32)
  return g, z


def test_generator_4x4_output_is_to_rgb0_of_block0():
  g, z = tiny_g()
  v = np_variables(g, z)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), v['params'])
  w = p['b0_dense']['kernel'] * math.sqrt(2) / math.sqrt(16)
  h = lrelu((np.asarray(z, np.float64) @ w).reshape(B, 4, 4, 16) + p['b0_dense']['bias'])
  h = pn(lrelu(np_conv(h, p['b0_conv']['kernel'] * math.sqrt(2) / math.sqrt(9 * 16))
               + p['b0_conv']['bias']))
  rgb = np.einsum('bhwc,co->bhwo', h, p['to_rgb0']['kernel'][0, 0] * math.sqrt(2) / 4)
  close(g.apply(v, z)[0], rgb + p['to_rgb0']['bias'])


@pytest.mark.parametrize('kw', [{}, {'pixelnorm': False}, {'dilation': 2}, {'tanh': True},
                                {'image_channels': 1}])
def test_generator_forward_matches_numpy(kw):
  g, z = tiny_g(**kw)
  v = np_variables(g, z)
  outs = g.apply(v, z)
  opts = {k: kw[k] for k in ('pixelnorm', 'dilation', 'tanh') if k in kw}
  want = np_generator(v['params'], z, 3, **opts)
  assert [o.shape for o in outs] == [w.shape for w in want]
  for o, w in zip(outs, want):
    close(o, w)
  if kw.get('tanh'):
    assert all(np.abs(o).max() <= 1 for o in outs)


def test_generator_not_equalized_matches_numpy():
  g, z = tiny_g(equalized=False)
  v = np_variables(g, z, scale=0.1)
  for o, w in zip(g.apply(v, z), np_generator(v['params'], z, 3, equalized=False)):
    close(o, w)


def test_discriminator_not_equalized_matches_numpy():
  d, pyr, _ = tiny_d(equalized=False)
  v = np_variables(d, pyr, scale=0.1)
  close(d.apply(v, pyr), np_discriminator(v['params'], pyr, equalized=False))


def test_spectral_norm_collections():
  g, z = tiny_g(spectral_norm=True)
  d, pyr, _ = tiny_d(spectral_norm=True)
  g_vars, d_vars = jax.eval_shape(g.init, KEY, z), jax.eval_shape(d.init, KEY, pyr)
  # v1 wraps the block convs only; to_rgb, from_rgb and the final 1x1 stay plain.
  assert set(g_vars['spectral']) == {'b0_dense', 'b0_conv', 'b1_conv1', 'b1_conv2', 'b2_conv1',
                                     'b2_conv2'}
  assert set(d_vars['spectral']) == {'b0_conv1', 'b0_conv2', 'b1_conv1', 'b1_conv2',
                                     'final_conv3', 'final_conv4'}
  assert d_vars['spectral']['final_conv4']['u'].shape == (16,)
  outs, mut = g.apply(np_variables(g, z), z, mutable=['spectral'])
  assert set(mut) == {'spectral'} and all(np.all(np.isfinite(o)) for o in outs)
  score = d.apply(np_variables(d, pyr), outs)
  assert score.shape == (B,) and np.all(np.isfinite(score))


def test_dilated_discriminator_keeps_shapes():
  d, pyr, s = tiny_d(dilation=2)
  assert shapes_of(s) == shapes_of(tiny_d()[2])
  score = d.apply(np_variables(d, pyr), pyr)
  assert score.shape == (B,) and np.all(np.isfinite(score))


def test_tanh_option_reaches_the_generator():
  """model.tanh (MSG-GAN v1, spec §11) is read from the config: with the same parameters every
  output scale is tanh of the output without it, so in (-1, 1), where the plain outputs are
  not."""
  import functools
  from conftest import tiny_config
  from gans.methods import msggan as method
  plain, squashed = tiny_config(), tiny_config(**{'model.tanh': True})
  state = jax.jit(functools.partial(method.init_state, plain))(KEY)
  z = method.sample_latents(plain, jax.random.key(1), 8)
  outs = [jax.jit(functools.partial(method.generate, c, ema=False))(state, z)
          for c in (plain, squashed)]
  assert max(float(np.abs(o).max()) for o in outs[0]) > 1.5
  for a, b in zip(*outs):
    close(b, np.tanh(np.asarray(a, np.float64)), tol=1e-5)
    assert np.abs(b).max() < 1
