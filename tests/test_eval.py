"""The evaluation driver: counts, references and caching, sharding, figures, CLI paths.

Metrics run here in the feature space of a tiny project classifier trained for 10 steps (the
Inception network needs its 95 MB weights file, which tests cannot download; its extractor is
tested in test_inception.py).
"""
import json
import os
import typing

import numpy as np
import pytest

from conftest import run_cli, tiny_config
from test_cli import assert_one_line_error


@pytest.fixture(scope='module')
def classifier_dir(tmp_path_factory):
  """A tiny project classifier (configs/classifier_digits.py:tiny): metrics in its features."""
  from configs import classifier_digits
  from gans import trainer
  path = str(tmp_path_factory.mktemp('classifier'))
  config = classifier_digits.get_config('tiny')
  config.num_steps = 10  # one checkpoint: its features only need to be fixed, not good
  trainer.train(config, path)
  return path


@pytest.fixture(scope='module')
def stats(tmp_path_factory):
  return str(tmp_path_factory.mktemp('stats'))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, classifier_dir):
  """A 10-step MSG-GAN run that evaluated itself at step 10 (config.eval.every)."""
  from gans import trainer
  path = str(tmp_path_factory.mktemp('run'))
  config = tiny_config(num_steps=10)
  config.eval.update(every=10, num_samples=20, metrics='fid,kid', batch_size=8,
                     extractor='classifier', classifier=classifier_dir)
  with pytest.MonkeyPatch.context() as patch:
    patch.delenv('GANS_STATS_DIR', raising=False)  # the reference features go into the run
    trainer.train(config, path)
  return path


def test_metrics_inside_training_are_logged_like_the_losses(workdir):
  from gans import config as config_lib
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logged = [json.loads(line) for line in f]
  evals = [r for r in logged if 'fid_classifier' in r]
  assert [r['step'] for r in evals] == [10]
  assert {'fid_classifier_4x4', 'kid_classifier'} <= set(evals[0])
  assert os.path.exists(os.path.join(workdir, 'eval', '10.json'))
  cached = os.listdir(os.path.join(workdir, 'eval', 'reference'))  # every host reads the workdir
  assert len(cached) == 1 and cached[0].endswith('.npz')
  config = tiny_config()
  config.eval.every = 5
  with pytest.raises(config_lib.UserError, match='eval.every=5'):
    config_lib.validate(config)


def options(tmp, **kw):
  from gans import evaluation
  base = dict(metrics=('fid', 'kid', 'is', 'pr'), num_samples=50, batch_size=16,
              stats_dir=str(tmp), kid_subsets=5)
  return evaluation.Options(**{**base, **kw})


def test_every_number_carries_its_counts_reference_and_extractor(workdir, classifier_dir,
                                                                tmp_path):
  from gans import evaluation
  from gans.metrics import extractors
  record = evaluation.score_checkpoint(workdir, extractors.classifier(classifier_dir),
                                       options(tmp_path))
  m = record['metrics']
  assert set(m) == {'fid_classifier', 'fid_classifier_4x4', 'kid_classifier', 'is_classifier',
                    'precision_classifier', 'recall_classifier'}
  name = 'classifier-' + os.path.basename(classifier_dir)
  for key, entry in m.items():
    assert entry['num_fake'] == 50, key  # 4 batches of 16, the surplus 14 dropped
    assert entry['extractor'] == name
    if key != 'is_classifier':
      assert entry['num_real'] == 1797 and 'digits' in entry['reference'], key
  assert '4x4' in m['fid_classifier_4x4']['reference']
  assert m['kid_classifier']['subset_size'] == 50 and m['is_classifier']['splits'] == 10
  assert record['extractors'][name]['classifier_step'] == 10
  assert record['generator'] == 'EMA'  # MSG-GAN samples its EMA generator
  assert (record['seed'], record['sample_batch']) == (0, 16)  # what gans.sampling needs
  assert all('convention' in entry for entry in m.values())  # None: the classifier has none
  with open(os.path.join(workdir, 'eval', '10.json')) as f:
    assert json.load(f)['metrics'] == json.loads(json.dumps(m))
  table = evaluation.table(record)
  assert 'fid_classifier_4x4' in table and '1797' in table


def test_reference_features_are_cached_once_per_dataset_and_extractor(workdir, classifier_dir,
                                                                     tmp_path):
  from gans import checkpoint, evaluation, methods, parallel
  from gans.metrics import extractors
  config, state = checkpoint.load(workdir)
  method, mesh = methods.get('msggan'), parallel.make_mesh()
  ext = extractors.classifier(classifier_dir)
  first, _, path = evaluation.reference_features(method, config, ext, mesh, options(tmp_path))
  assert os.path.basename(path).startswith(f'digits_train_8px_{ext.name}_n1797_')
  stamp = os.stat(path).st_mtime_ns
  again, _, same = evaluation.reference_features(method, config, ext, mesh, options(tmp_path))
  assert same == path and os.stat(path).st_mtime_ns == stamp
  np.testing.assert_array_equal(first.features, again.features)
  assert first.features.shape == (1797, 32)  # the tiny classifier's feature_size
  mean, cov, count = again.gaussians['4x4']  # per-scale sets keep only their Gaussian
  assert mean.shape == (32,) and cov.shape == (32, 32) and count == 1797
  # Real vs real: two halves of the digits are close; the generator (10 steps) is far.
  from gans.metrics.fid import fid
  halves = fid(first.features[::2], first.features[1::2])
  fake = evaluation.generated_features(method, config, state, ext, mesh,
                                     options(tmp_path, num_samples=900, per_scale=False))
  assert halves < 0.1 * fid(first.features, fake.features)
  assert not fake.gaussians  # --noper_scale: the samples' lower scales are not extracted


def test_sharded_over_four_devices_gives_the_same_features(workdir, classifier_dir, tmp_path):
  from gans import checkpoint, evaluation, methods, parallel
  from gans.metrics import extractors
  config, state = checkpoint.load(workdir)
  one = evaluation.generated_features(methods.get('msggan'), config, state,
                                    extractors.classifier(classifier_dir), parallel.make_mesh(),
                                    options(tmp_path, num_samples=40))
  np.save(tmp_path / 'one.npy', one.features)
  script = ('import sys; sys.path.insert(0, "tests"); import numpy as np, jax; '
            'from test_eval import options; from gans.metrics import extractors; '
            'from gans import checkpoint, evaluation, methods, parallel; '
            'assert jax.device_count() == 4; '
            f'c, s = checkpoint.load({workdir!r}); '
            'f = evaluation.generated_features(methods.get("msggan"), c, s, '
            f'extractors.classifier({classifier_dir!r}), parallel.make_mesh(), '
            f'options({str(tmp_path)!r}, num_samples=40)); '
            f'np.testing.assert_allclose(f.features, np.load({str(tmp_path / "one.npy")!r}), '
            'rtol=1e-4, atol=1e-5); assert len(f.features) == 40; print("same")')
  result = run_cli(['-c', script], env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4'})
  assert result.returncode == 0 and 'same' in result.stdout, result.stderr[-3000:]


def test_cli_metrics_and_figures(workdir, classifier_dir, stats):
  result = run_cli(['eval.py', '--workdir', workdir, '--extractor', 'classifier',
                    '--classifier', classifier_dir, '--metrics', 'fid,is', '--num_samples', '30',
                    '--stats_dir', stats, '--figures', '--sheet_samples', '4'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'fid_classifier_4x4' in result.stdout and 'is_classifier' in result.stdout
  figures = os.path.join(workdir, 'figures')
  for name in ('all_scales/step_00000010.png', '8x8/step_00000010.png',
               'interpolation/step_00000010.png', 'losses.png', 'training_scalars.png',
               'metrics.png'):
    assert os.path.exists(os.path.join(figures, name)), name


def test_cli_errors_are_one_line(workdir, tmp_path):
  assert_one_line_error(run_cli(['eval.py', '--workdir', workdir, '--metrics', 'fid,fdi']),
                        "unknown metric 'fdi'")
  assert_one_line_error(run_cli(['eval.py', '--workdir', workdir, '--inception',
                                 str(tmp_path / 'none.pth')]),
                        'none.pth', 'pt_inception-2015-12-05-6726825d.pth', '--inception')
  (tmp_path / 'other.pth').write_bytes(b'some other file')
  assert_one_line_error(run_cli(['eval.py', '--workdir', workdir, '--inception',
                                 str(tmp_path / 'other.pth')]), 'does not start with 6726825d')
  assert_one_line_error(run_cli(['eval.py', '--workdir', workdir, '--extractor', 'classifier']),
                        '--classifier=DIR')
  assert_one_line_error(run_cli(['eval.py', '--workdir', workdir, '--convention', 'fast']),
                        "unknown FID convention 'fast'")


def test_slerp_keeps_the_latent_norm_and_hits_both_ends():
  from gans import figures
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(3, 16)), rng.normal(size=(3, 16))
  a *= 4 / np.linalg.norm(a, axis=1, keepdims=True)
  b *= 4 / np.linalg.norm(b, axis=1, keepdims=True)
  z = np.stack([figures.slerp(t, a, b) for t in np.linspace(0, 1, 5)], axis=1)
  assert z.shape == (3, 5, 16)
  np.testing.assert_allclose(z[:, 0], a, atol=1e-5)
  np.testing.assert_allclose(z[:, -1], b, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 4.0, rtol=1e-5)
  np.testing.assert_allclose(figures.slerp(0.5, a, a), a, atol=1e-5)  # parallel: lerp


@pytest.fixture(scope='module')
def coupled_workdir(tmp_path_factory):
  """A 5-step CoGAN run on digits / negative digits."""
  from configs import cogan_digits_negative
  from gans import trainer
  path = str(tmp_path_factory.mktemp('cogan'))
  config = cogan_digits_negative.get_config('tiny')
  config.num_steps = 5
  config.steps_per_dispatch = config.log_every = config.checkpoint_every = config.sample_every = 5
  trainer.train(config, path)
  return path


def test_method_scores_pair_agreement_and_logged_scalars(coupled_workdir):
  """eval.py's own numbers for a coupled run: pair agreement from the method's evaluate hook
  and the logged losses, written into eval/<step>.json."""
  from gans import evaluation
  record = evaluation.method_scores(coupled_workdir)
  assert 0.0 <= record['metrics']['pixel_agreement']['value'] <= 1.0
  assert record['metrics']['d_loss_logged']['reference'] == 'metrics.jsonl, step 5'
  with open(os.path.join(coupled_workdir, 'eval', '5.json')) as f:
    assert 'pixel_agreement' in json.load(f)['metrics']


def test_coupled_runs_are_scored_per_domain_against_their_own_stream(coupled_workdir,
                                                                    classifier_dir, tmp_path):
  """Every metric once per domain (fid_classifier_a, ..._b), each against its own reals: the
  reference features of domain b are those of the negated digits, and domain b's samples are
  G_b's (generate()[1])."""
  import jax
  from gans import checkpoint, evaluation, methods, parallel
  from gans.metrics import extractors
  ext = extractors.classifier(classifier_dir)
  record = evaluation.score_checkpoint(coupled_workdir, ext, options(tmp_path, num_samples=32))
  assert {k for k in record['metrics'] if 'classifier' in k} == {
      f'{m}_classifier_{d}' for d in 'ab' for m in ('fid', 'kid', 'is', 'precision', 'recall')}
  assert record['metrics']['fid_classifier_b']['reference'].startswith('domain b: ')
  assert len(record['reference_cache']) == 2
  assert record['generator'] == 'trained G'  # CoGAN keeps no EMA generator
  config, state = checkpoint.load(coupled_workdir)
  method, mesh, opts = methods.get('cogan'), parallel.make_mesh(), options(tmp_path)
  source = method.sources(config)['b']
  real, _, _ = evaluation.reference_features(method, config, ext, mesh, opts, 'b')
  direct = ext.apply(ext.params, extractors.quantize(source[np.arange(16)] / 127.5 - 1.0))[0]
  np.testing.assert_allclose(real.features[:16], direct, rtol=1e-4, atol=1e-5)
  fake = evaluation.generated_features(method, config, state, ext, mesh, opts, 'b')
  z = method.sample_latents(config, jax.random.fold_in(jax.random.PRNGKey(opts.seed), 0), 16)
  x_b = method.generate(config, state, z)[1]
  np.testing.assert_allclose(fake.features[:16], ext.apply(ext.params, extractors.quantize(x_b))[0],
                             rtol=1e-3, atol=1e-4)


def test_the_feature_cache_every_process_reads(monkeypatch):
  """Each host has its own ~/.cache: with several processes the default is the run's folder."""
  from gans import evaluation
  monkeypatch.delenv('GANS_STATS_DIR', raising=False)
  assert evaluation.shared_stats(evaluation.Options(), 'gs://b/run').stats_dir == (
      'gs://b/run/eval/reference')
  assert evaluation.shared_stats(evaluation.Options(stats_dir='gs://b/stats'), 'gs://b/run') == (
      evaluation.Options(stats_dir='gs://b/stats'))
  monkeypatch.setenv('GANS_STATS_DIR', '/shared/stats')
  assert evaluation.stats_dir(evaluation.shared_stats(evaluation.Options(), 'gs://b/run')) == (
      '/shared/stats')


class _Linear(typing.NamedTuple):
  """A frozen 'classifier' whose features are the scaled pixels: its params matter."""
  params: dict

  def features(self, x):
    return x.reshape(x.shape[0], -1) * self.params['w']

  def logits(self, x):
    return x.mean(axis=(1, 2))


def test_the_reference_cache_follows_files_data_config_extractor_and_version(tmp_path,
                                                                            monkeypatch):
  """A cached reference is served only for the same content: rewriting an image (same name),
  another data_b for domain b of a pair, another classifier under the same name and info, or
  a new cache version each make a new cache file and new features."""
  from PIL import Image
  from configs import cogan_digits_negative
  from gans import evaluation, methods, parallel
  from gans.evaluation import features as features_lib
  from gans.metrics import extractors
  mesh, opts = parallel.make_mesh(), options(tmp_path / 'stats', batch_size=4)
  ext = extractors.from_frozen(_Linear({'w': np.float32(1)}), 'lin')
  folder = tmp_path / 'images'
  folder.mkdir()
  for i in range(6):
    Image.new('L', (8, 8), 30 * i).save(folder / f'{i}.png')
  config = tiny_config()
  config.data.update(name='folder', path=str(folder))
  method = methods.get('msggan')
  first, _, path = evaluation.reference_features(method, config, ext, mesh, opts)
  again, _, same = evaluation.reference_features(method, config, ext, mesh, opts)
  assert same == path
  Image.new('L', (8, 8), 250).save(folder / '0.png')  # new content under the same name
  stamp = os.stat(folder / '0.png').st_mtime_ns
  os.utime(folder / '0.png', ns=(stamp + 10**9, stamp + 10**9))
  changed, _, other = evaluation.reference_features(method, config, ext, mesh, opts)
  assert other != path, 'stale features served for a rewritten image'
  assert not np.array_equal(changed.features, first.features)
  retrained = extractors.from_frozen(_Linear({'w': np.float32(2)}), 'lin')
  assert retrained.info == ext.info
  assert evaluation.reference_features(method, config, retrained, mesh, opts)[2] != other
  monkeypatch.setattr(features_lib, 'CACHE_VERSION', features_lib.CACHE_VERSION + 1)
  assert evaluation.reference_features(method, config, ext, mesh, opts)[2] != other
  monkeypatch.undo()
  # Domain b of a two-dataset pair is read with config.data_b, not config.data.
  pair = cogan_digits_negative.get_config('tiny')
  pair.data_b.name, pair.pair.transform = 'digits', 'none'
  cogan = methods.get('cogan')
  b, _, b_path = evaluation.reference_features(cogan, pair, ext, mesh, opts, 'b')
  pair.data_b.center_crop = 4
  cropped, _, cropped_path = evaluation.reference_features(cogan, pair, ext, mesh, opts, 'b')
  assert cropped_path != b_path, 'domain b keyed on config.data instead of config.data_b'
  assert not np.array_equal(cropped.features, b.features)
  assert evaluation.reference_features(cogan, pair, ext, mesh, opts, 'a')[2] not in (
      b_path, cropped_path)
  key = json.loads(evaluation.reference_key(cogan, pair, cogan.sources(pair)['b'], ext, 10, 'b'))
  assert key['data_b']['center_crop'] == 4 and key['pair']['transform'] == 'none'
  assert key['extractor']['params_sha256'] and key['version'] == evaluation.CACHE_VERSION
  tf = extractors.from_frozen(_Linear({'w': np.float32(1)}), 'lin', {'convention': 'tf'})
  tf_key = json.loads(evaluation.reference_key(cogan, pair, cogan.sources(pair)['b'], tf, 10, 'b'))
  assert tf_key['extractor']['convention'] == 'tf' and key['extractor']['convention'] is None
