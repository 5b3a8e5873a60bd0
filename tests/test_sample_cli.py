"""sample.py and gans.sampler: the formats, the images being exactly what eval.py scores, coupled
domains, scales, truncation, interpolation, and one-line errors.

The runs are made without training: a state from init_state, changed where a wrong reading
would otherwise go unseen (MSG-GAN's EMA generator differs from its trained one, CoGAN's
BatchNorm statistics are not the initial ones), saved as a workdir's checkpoint.
"""
import functools
import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, tiny_config
from test_cli import assert_one_line_error
from test_sampling import _recording_extractor


def make_run(path, config, state):
  """A workdir holding config.json and one checkpoint of `state`, as a training run leaves."""
  from gans import checkpoint
  path.mkdir(parents=True, exist_ok=True)
  (path / 'config.json').write_text(config.to_json())
  ckpt = checkpoint.Checkpointer(str(path / 'checkpoints'), config, asynchronous=False)
  ckpt.save(int(state.step), state)
  ckpt.close()
  return str(path)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """{name: (workdir, method, config, state)} for msggan, began and cogan."""
  import jax
  import jax.numpy as jnp
  from configs import began_digits, cogan_digits_negative
  from gans import methods
  root = tmp_path_factory.mktemp('runs')
  began = began_digits.get_config('tiny')
  began.model.residual_steps = 10  # G depends on the step: an export must carry it
  out = {}
  for name, config in (('msggan', tiny_config()), ('began', began),
                       ('cogan', cogan_digits_negative.get_config('tiny'))):
    method = methods.get(name)
    init = jax.jit(functools.partial(method.init_state, config))  # faster than op by op
    state = init(jax.random.PRNGKey(1)).replace(step=jnp.int32(3))
    if name == 'msggan':
      state = state.replace(g_ema=jax.tree.map(lambda p: 0.9 * p, state.g_params))
    if name == 'cogan':
      state = state.replace(g_stats=jax.tree.map(lambda s: 1.5 * s + 0.05, state.g_stats))
    out[name] = (make_run(root / name, config, state), method, config, state)
  return out


def _png(path):
  return np.asarray(Image.open(io.BytesIO(open(path, 'rb').read())))


def _npz(path):
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def test_npz_holds_exactly_the_images_the_evaluation_scores(runs, tmp_path):
  from gans import evaluation, parallel, sampler
  workdir, method, config, state = runs['msggan']
  out = sampler.sample(workdir, str(tmp_path / 's.npz'), num=10, seed=7, batch_size=4,
                       progress=False)
  images = _npz(out)
  assert list(images) == ['images']
  assert images['images'].shape == (10, 8, 8, 1) and images['images'].dtype == np.uint8
  options = evaluation.Options(metrics=('fid',), num_samples=10, batch_size=4, seed=7,
                               stats_dir=str(tmp_path), per_scale=False)
  fed = evaluation.generated_features(method, config, state, _recording_extractor(),
                                      parallel.make_mesh(), options)
  np.testing.assert_array_equal(fed.features, images['images'].reshape(10, -1))
  other = _npz(sampler.sample(workdir, str(tmp_path / 'o.npz'), num=10, seed=7, batch_size=6,
                              progress=False))['images']
  assert not np.array_equal(other, images['images'])  # the batch size decides the latents


def test_a_folder_gets_one_png_per_image_and_a_png_one_sheet(runs, tmp_path):
  from gans import figures, sampler
  workdir = runs['msggan'][0]
  ref = _npz(sampler.sample(workdir, str(tmp_path / 's.npz'), num=11, batch_size=4,
                            progress=False))['images']
  folder = tmp_path / 'folder'
  sampler.sample(workdir, str(folder), num=11, batch_size=4, progress=False)
  names = sorted(p.name for p in folder.iterdir())
  assert names == [f'{i:06d}.png' for i in range(11)]
  for i, name in enumerate(names):
    np.testing.assert_array_equal(_png(folder / name), ref[i, ..., 0])
  sheet = _png(sampler.sample(workdir, str(tmp_path / 'grid.png'), num=11, batch_size=4,
                              progress=False))
  expected = figures.grid(figures.upsample(ref, 8), 4)  # 8x8 tiles enlarged to 64, 4 columns
  np.testing.assert_array_equal(sheet, expected[..., 0])


def test_coupled_runs_write_both_domains_of_the_same_latents(runs, tmp_path):
  import jax
  from gans import parallel, sampler, sampling
  from gans.metrics import extractors
  workdir, method, config, state = runs['cogan']
  pairs = _npz(sampler.sample(workdir, str(tmp_path / 'p.npz'), num=6, batch_size=4, seed=2,
                              progress=False))
  assert sorted(pairs) == ['a', 'b'] and pairs['a'].shape == pairs['b'].shape == (6, 32, 32, 1)
  z = method.sample_latents(config, jax.random.fold_in(jax.random.PRNGKey(2), 0), 4)
  x_a, x_b = jax.jit(functools.partial(method.generate, config))(state, z)
  np.testing.assert_array_equal(pairs['a'][:4], extractors.quantize(x_a))
  np.testing.assert_array_equal(pairs['b'][:4], extractors.quantize(x_b))
  mesh = parallel.make_mesh()
  for domain in 'ab':  # what eval.py scores per domain, for the same seed
    scored = np.concatenate([s[''] for _, _, s in sampling.batches(
        method, config, state, mesh, 6, 2, 4, ('',), domain, host=True)])
    np.testing.assert_array_equal(pairs[domain], scored)
  folder = tmp_path / 'pairs'
  sampler.sample(workdir, str(folder), num=6, batch_size=4, seed=2, progress=False)
  assert sorted(p.name for p in folder.iterdir()) == ['a', 'b']
  np.testing.assert_array_equal(_png(folder / 'b' / '000005.png'), pairs['b'][5, ..., 0])
  sheet = _png(sampler.sample(workdir, str(tmp_path / 'p.png'), num=6, batch_size=4, seed=2,
                              progress=False))
  tiles = 3 * 65 + 1  # 3 columns of 32x32 tiles enlarged to 64, 1-pixel gaps
  assert sheet.shape == (2 * 65 + 1, 2 * tiles + 4)  # a | 4 black columns | b
  np.testing.assert_array_equal(sheet[1:65:2, tiles + 4 + 1:tiles + 4 + 65:2],
                                pairs['b'][0, ..., 0])


def test_scale_writes_the_generators_own_lower_scale(runs, tmp_path):
  from gans import parallel, sampler, sampling
  workdir, method, config, state = runs['msggan']
  low = _npz(sampler.sample(workdir, str(tmp_path / 'low.npz'), num=6, batch_size=4, scale=4,
                            progress=False))['images']
  assert low.shape == (6, 4, 4, 1)
  scored = np.concatenate([s['4x4'] for _, _, s in sampling.batches(
      method, config, state, parallel.make_mesh(), 6, 0, 4, ('4x4',), host=True)])
  np.testing.assert_array_equal(low, scored)  # eval's per-scale set: G's 4x4 output
  full = _npz(sampler.sample(workdir, str(tmp_path / 'full.npz'), num=6, batch_size=4, scale=8,
                             progress=False))['images']
  assert full.shape == (6, 8, 8, 1)


def test_truncation_redraws_the_components_beyond_the_threshold(runs, tmp_path):
  import jax
  from gans import sampler, sampling
  from gans.metrics import extractors
  _, method, config, state = runs['msggan']
  key, t, d = jax.random.PRNGKey(5), 0.7, config.model.latent_size
  raw = np.asarray(jax.random.normal(key, (64, d)))
  inside = np.asarray(jax.random.truncated_normal(jax.random.fold_in(key, 1), -t, t, (64, d)))
  expected = np.where(np.abs(raw) > t, inside, raw)
  assert 0 < (np.abs(raw) > t).mean() < 1 and np.abs(inside).max() <= t
  expected *= math.sqrt(d) / np.linalg.norm(expected, axis=-1, keepdims=True)  # MSG-GAN's norm
  got = np.asarray(sampling.latent_fn(method, t)(config, key, 64))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  workdir = runs['msggan'][0]
  images = _npz(sampler.sample(workdir, str(tmp_path / 't.npz'), num=4, batch_size=4,
                               truncation=t, progress=False))['images']
  z = sampling.latent_fn(method, t)(config, jax.random.fold_in(jax.random.PRNGKey(0), 0), 4)
  generate = jax.jit(functools.partial(method.generate, config))
  np.testing.assert_array_equal(images, extractors.quantize(generate(state, z)[-1]))
  # Uniform latents (CoGAN's, BEGAN's): U[-1, 1] conditioned on |z| <= t is t * z.
  for name in ('cogan', 'began'):
    _, m, c, _ = runs[name]
    plain = np.asarray(m.sample_latents(c, key, 16))
    np.testing.assert_array_equal(np.asarray(sampling.latent_fn(m, t)(c, key, 16)),
                                  plain * np.float32(t))


def test_interpolation_strips_end_at_the_endpoints_images(runs, tmp_path):
  import jax
  from gans import sampler
  from gans.metrics import extractors
  workdir, method, config, state = runs['msggan']
  rows, steps = 3, 5
  sheet = _png(sampler.sample(workdir, str(tmp_path / 'walk.png'), num=rows, seed=4,
                              interpolate=steps))
  assert sheet.shape == (rows * 65 + 1, steps * 65 + 1)  # 8x8 tiles enlarged 8x, 1-pixel gaps
  ka, kb = jax.random.split(jax.random.PRNGKey(4))
  generate = jax.jit(functools.partial(method.generate, config))
  for col, key in ((0, ka), (steps - 1, kb)):
    ends = extractors.quantize(generate(state, method.sample_latents(config, key, rows))[-1])
    for r in range(rows):
      tile = sheet[1 + 65 * r:65 * (r + 1):8, 1 + 65 * col:65 * (col + 1):8]
      np.testing.assert_array_equal(tile, np.asarray(ends)[r, ..., 0])
  middle = sheet[1:65, 1 + 65 * 2:65 * 3]
  assert not np.array_equal(middle, sheet[1:65, 1:65])  # the walk moves
  gif = sampler.sample(workdir, str(tmp_path / 'walk.gif'), num=rows, seed=4,
                       interpolate=steps)
  with Image.open(gif) as im:
    assert im.n_frames == 2 * steps - 2  # forth and back


def _start(args):
  from conftest import with_fast_compile
  import os
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  env['XLA_FLAGS'] = with_fast_compile(env.get('XLA_FLAGS', ''))
  return subprocess.Popen([sys.executable, 'sample.py', *args], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_user_mistakes_are_one_line_errors(runs, tmp_path):
  from configs import classifier_digits
  classifier = tmp_path / 'classifier'
  classifier.mkdir()
  (classifier / 'config.json').write_text(classifier_digits.get_config('tiny').to_json())
  msggan, began = runs['msggan'][0], runs['began'][0]
  from gans import sampler
  from gans.errors import UserError  # what cli.run prints as one line, exit code 2
  with pytest.raises(UserError, match=r'^--scale 2: msggan makes no 2x2 images; its output '
                     r'scales are 4, 8$'):
    sampler.sample(msggan, str(tmp_path / 'x.npz'), num=2, scale=2)
  with pytest.raises(UserError, match='--scale 4: began has one output scale, 8x8'):
    sampler.sample(began, str(tmp_path / 'x.npz'), num=2, scale=4)
  cases = [  # started together: each is a fresh process
      (['--workdir', msggan, '--out', str(tmp_path / 'x.npz'), '--scale', '2'],
       ['--scale 2', '4, 8']),
      (['--workdir', str(classifier), '--export', str(tmp_path / 'g.msgpack')],
       ['classifier', 'no generator']),
      (['--workdir', msggan, '--out', str(tmp_path / 'x.jpg')], ["'.jpg'", '.npz']),
      (['--workdir', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'x.npz')],
       ['nothing', 'no training run']),
  ]
  procs = [(_start(args), fragments) for args, fragments in cases]
  for proc, fragments in procs:
    stdout, stderr = proc.communicate(timeout=300)
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                                      stderr), *fragments)


def test_the_bench_times_sample_pys_path():
  from gans import bench
  result = bench.sample_benchmark(tiny_config(), 10, 4)
  assert result['benchmark'] == 'sample_npz' and result['num'] == 10
  assert result['wall_s'] > 0 and result['images_per_s'] > 0
