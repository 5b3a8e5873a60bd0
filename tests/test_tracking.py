"""What a run leaves for TensorBoard and Weights & Biases: scalars, sample sheets and the config
(hparams), every step once after a resume, and W&B only when asked for (a fake wandb module
records the calls, so no wandb package or account is needed)."""
import collections
import importlib.util
import io
import json
import os
import shutil
import sys
import types

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

from conftest import tiny_config
from gans import config as config_lib
from gans import logs, trainer
from gans.errors import UserError
from test_train import read_metrics


class FakeWandb(types.ModuleType):
  """The part of wandb the trainer uses. Like W&B, a resumed run's `step` is one past the last
  step it logged."""

  def __init__(self):
    super().__init__('wandb')
    self.inits, self.logged, self.finished = [], collections.defaultdict(list), 0
    fake = self

    class Run:

      def __init__(self, run_id):
        self.id = run_id
        steps = [s for s, _ in fake.logged[run_id]]
        self.step = max(steps) + 1 if steps else 0

      def log(self, values, step):
        fake.logged[self.id].append((step, values))

      def finish(self):
        fake.finished += 1

    self._run = Run

  def init(self, **kwargs):
    self.inits.append(kwargs)
    return self._run(kwargs['id'])

  class Image:

    def __init__(self, data):
      self.data = data


class NoWandb:
  """A meta-path finder that fails any import of wandb (and so any find_spec of it)."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    assert name.split('.')[0] != 'wandb', f'{name} imported'


@pytest.fixture
def fake_wandb(monkeypatch):
  fake = FakeWandb()
  monkeypatch.setitem(sys.modules, 'wandb', fake)
  return fake


def scalars_by_tag(events):
  """{tag: [(step, value)]} of the scalar events, in file order."""
  out = collections.defaultdict(list)
  for e in events:
    for v in e.summary.value:
      if v.HasField('simple_value'):
        out[v.tag].append((e.step, v.simple_value))
  return out


def test_a_resumed_run_shows_every_step_once_in_tensorboard(tmp_path, monkeypatch):
  monkeypatch.delitem(sys.modules, 'wandb', raising=False)
  monkeypatch.setattr(sys, 'meta_path', [NoWandb(), *sys.meta_path])  # off: never imported
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=20), workdir)
  shutil.rmtree(tmp_path / 'checkpoints' / '20')  # as if killed after logging step 20
  trainer.train(tiny_config(num_steps=40), workdir)  # resumes from 10
  assert 'wandb' not in sys.modules
  events = logs.read_events(tmp_path / 'tensorboard')
  metrics = {r['step']: r for r in read_metrics(workdir)}
  scalars = scalars_by_tag(events)
  assert {'d_loss', 'g_loss', 'images_per_s'} <= set(scalars)
  for tag, points in scalars.items():
    assert [s for s, _ in points] == [10, 20, 30, 40], tag
    for step, value in points:  # the values of the run that continued
      assert value == pytest.approx(metrics[step][tag], rel=1e-6), (tag, step)
  images = collections.defaultdict(list)
  for e in events:
    for v in e.summary.value:
      if v.HasField('image'):
        images[v.tag].append(e.step)
        assert v.image.encoded_image_string.startswith(b'\x89PNG')
  assert 'samples/all_scales' in images
  assert all(steps == [10, 20, 30, 40] for steps in images.values()), images
  starts = [v for e in events for v in e.summary.value
            if v.tag == '_hparams_/session_start_info']
  assert len(starts) == 1  # this start's config only
  data = HParamsPluginData.FromString(starts[0].metadata.plugin_data.content)
  assert data.session_start_info.hparams['num_steps'].number_value == 40
  assert data.session_start_info.hparams['loss.name'].string_value
  assert not (tmp_path / 'wandb_run.json').exists()


def test_a_torn_event_file_is_cut_at_the_tear(tmp_path):
  writer = logs.MetricWriter(tmp_path)
  for step in (10, 20, 30):
    writer.write(step, {'loss': step / 10})
  writer.close()
  [path] = (tmp_path / 'tensorboard').glob('events.out.tfevents.*')
  path.write_bytes(path.read_bytes()[:-7])  # the last record, cut short
  stale = path.parent / f'{path.name}.123.tmp'  # a rewrite cut short
  stale.write_bytes(path.read_bytes())
  logs.MetricWriter(tmp_path, resume_step=20).close()
  assert not stale.exists()
  assert scalars_by_tag(logs.read_events(tmp_path / 'tensorboard'))['loss'] == [(10, 1), (20, 2)]


def test_wandb_gets_the_scalars_the_sheets_and_the_config(tmp_path, fake_wandb):
  trainer.train(tiny_config(num_steps=10, **{'log.wandb': 'me/gans-test'}), str(tmp_path))
  [init] = fake_wandb.inits
  assert (init['project'], init['entity'], init['resume']) == ('gans-test', 'me', 'allow')
  assert init['config']['num_steps'] == 10 and init['config']['model']['width']
  assert json.loads((tmp_path / 'wandb_run.json').read_text())['id'] == init['id']
  logged = fake_wandb.logged[init['id']]
  scalars = {k for step, values in logged for k, v in values.items() if isinstance(v, float)}
  assert {'d_loss', 'g_loss', 'images_per_s'} <= scalars
  sheets = [(step, k) for step, values in logged for k, v in values.items()
            if isinstance(v, FakeWandb.Image)]
  assert (10, 'samples/all_scales') in sheets
  assert all(step == 10 for step, _ in logged)
  assert fake_wandb.finished == 1


def test_a_resume_continues_the_wandb_run_and_a_restart_opens_a_new_one(tmp_path, fake_wandb):
  config = tiny_config(**{'log.wandb': 'gans-test', 'log.wandb_mode': 'offline'})

  def start(resume_step, steps):
    writer = logs.MetricWriter(tmp_path, resume_step=resume_step, config=config)
    for step in steps:
      writer.write(step, {'loss': float(step)})
    writer.close()
    return fake_wandb.inits[-1]

  first = start(0, [10, 20, 30])
  assert first['mode'] == 'offline'
  resumed = start(20, [30, 40])  # a resume from the checkpoint at 20
  assert resumed['id'] == first['id']
  # W&B keeps the 30 it has; logging goes on from the first step it has not seen.
  assert [s for s, _ in fake_wandb.logged[first['id']]] == [10, 20, 30, 40]
  restarted = start(0, [10])  # killed before its first checkpoint: a new W&B run
  assert restarted['id'] != first['id']


def test_wandb_config_is_checked_before_anything_runs(monkeypatch):
  config = tiny_config(**{'log.wandb_mode': 'sometimes'})
  with pytest.raises(UserError, match='wandb_mode'):
    config_lib.validate(config)
  with pytest.raises(UserError, match='ENTITY/PROJECT'):
    config_lib.validate(tiny_config(**{'log.wandb': 'a/b/c'}))
  monkeypatch.setitem(sys.modules, 'wandb', None)  # not installed
  with pytest.raises(UserError, match='pip install wandb') as e:
    config_lib.validate(tiny_config(**{'log.wandb': 'gans-test'}))
  assert '\n' not in str(e.value)


def test_a_wandb_that_cannot_start_is_one_line(tmp_path, fake_wandb, monkeypatch):
  def refuse(**kwargs):
    del kwargs
    raise RuntimeError('api_key not configured (no-tty). call wandb.login()\nmore')
  monkeypatch.setattr(fake_wandb, 'init', refuse)
  config = tiny_config(**{'log.wandb': 'gans-test'})
  with pytest.raises(UserError, match='wandb login') as e:
    logs.MetricWriter(tmp_path, config=config)
  assert 'api_key not configured' in str(e.value) and '\n' not in str(e.value)


@pytest.mark.skipif(importlib.util.find_spec('wandb') is None, reason='wandb is not installed')
def test_wandb_offline_writes_a_run_folder(tmp_path, monkeypatch):
  monkeypatch.setenv('WANDB_MODE', 'offline')
  monkeypatch.setenv('WANDB_DIR', str(tmp_path / 'wandb_dir'))
  monkeypatch.setenv('WANDB_SILENT', 'true')
  os.makedirs(tmp_path / 'wandb_dir')
  workdir = tmp_path / 'run'
  trainer.train(tiny_config(num_steps=10, **{'log.wandb': 'gans-test'}), str(workdir))
  run_id = json.loads((workdir / 'wandb_run.json').read_text())['id']
  folders = os.listdir(tmp_path / 'wandb_dir' / 'wandb')
  assert any(f.startswith('offline-run-') and f.endswith(run_id) for f in folders), folders


def test_summarize_logs_the_last_steps_value_and_the_interval_mean():
  """Names in at_step get the value of the interval's last step (the last of the last
  dispatch, whatever the dispatch sizes) and their mean as <name>_mean; others the mean."""
  host = [{'M': np.array([1.0, 2.0, 6.0]), 'loss': np.array([1.0, 3.0, 2.0])},
          {'M': np.array([4.0, 0.5]), 'loss': np.array([5.0, 4.0])}]
  assert logs.summarize(host) == {'M': pytest.approx(13.5 / 5), 'loss': pytest.approx(3.0)}
  assert logs.summarize(host, ('M',)) == {'M': 0.5, 'M_mean': pytest.approx(13.5 / 5),
                                          'loss': pytest.approx(3.0)}
  assert logs.summarize([{'k': np.float32(0.25)}], ('k',)) == {'k': 0.25, 'k_mean': 0.25}


def test_sheets_are_logged_from_the_bytes_written_not_read_back(tmp_path):
  """figures.write_samples hands over the PNG bytes it wrote, and MetricWriter.images takes
  {name: PNG bytes}: the event file holds exactly the bytes of the sheet on disk, and the writer
  never reads a sheet back (on gs:// that would be one download per sheet per interval)."""
  import jax
  from gans import figures, methods
  from configs import began_digits
  method, config = methods.get('began'), began_digits.get_config('tiny')
  state = method.init_state(config, jax.random.PRNGKey(0))
  latents = method.sample_latents(config, jax.random.PRNGKey(1), 4)
  pngs = {}
  paths = figures.write_samples(method, config, state, latents, str(tmp_path / 'samples'),
                                'step_00000010', pngs=pngs)
  assert sorted(pngs) == ['reconstructions', 'samples']
  assert sorted(paths) == sorted(str(tmp_path / 'samples' / n / 'step_00000010.png') for n in pngs)
  for name, png in pngs.items():
    assert (tmp_path / 'samples' / name / 'step_00000010.png').read_bytes() == png
  shutil.rmtree(tmp_path / 'samples')  # nothing left on disk to read back
  writer = logs.MetricWriter(tmp_path / 'run')
  writer.images(10, pngs)
  writer.close()
  logged = {v.tag: v.image for e in logs.read_events(tmp_path / 'run' / 'tensorboard')
            for v in e.summary.value if v.HasField('image')}
  assert {k: v.encoded_image_string for k, v in logged.items()} == {
      f'samples/{k}': v for k, v in pngs.items()}
  size = Image.open(io.BytesIO(pngs['samples'])).size
  assert (logged['samples/samples'].width, logged['samples/samples'].height) == size


def test_the_config_is_given_once_at_construction(tmp_path):
  """hparams writes the config the writer was made with; it takes no second copy."""
  writer = logs.MetricWriter(tmp_path, config=tiny_config(num_steps=7))
  writer.hparams(metrics=('d_loss',), step=0)
  writer.close()
  [start] = [v for e in logs.read_events(tmp_path / 'tensorboard') for v in e.summary.value
             if v.tag == '_hparams_/session_start_info']
  data = HParamsPluginData.FromString(start.metadata.plugin_data.content)
  assert data.session_start_info.hparams['num_steps'].number_value == 7
  with pytest.raises(ValueError, match='config='):
    logs.MetricWriter(tmp_path / 'none').hparams()
