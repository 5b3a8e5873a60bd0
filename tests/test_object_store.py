"""A workdir in a bucket (DESIGN.md, decision 9): training, a resume and evaluation with the run,
the classifier and the feature cache on gs://, served by a local GCS emulator, and nothing
written to the local disk on the way.

Every client of a gs:// workdir is pointed at the emulator: gcsfs (etils.epath's gs:// backend)
and google-cloud-storage (tensorboardX's) by STORAGE_EMULATOR_HOST, TensorStore (orbax's arrays)
by TENSORSTORE_GCS_HTTP_URL. The current directory, HOME and TMPDIR are fresh folders that must
stay empty; only the persistent compilation cache and matplotlib's font cache (conftest's
GANS_COMPILATION_CACHE and MPLCONFIGDIR, outside them) may receive files.
"""
import contextlib
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT, tiny_config

pytest.importorskip('gcp_storage_emulator',
                    reason='gcp-storage-emulator (requirements-test.txt) serves the test bucket')

BUCKET = 'gans-test'
CLOSED_PORT = '127.0.0.1:9'  # discard: nothing listens, so a credential probe fails at once


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait_until_serving(url, process, timeout=20):
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert process.poll() is None, f'the GCS emulator exited with {process.returncode}'
    try:
      with urllib.request.urlopen(f'{url}/storage/v1/b/{BUCKET}', timeout=1):
        return
    except OSError:
      time.sleep(0.1)
  raise TimeoutError(f'the GCS emulator did not answer at {url} within {timeout} s')


@pytest.fixture(scope='module')
def emulator(tmp_path_factory):
  """The URL of an in-memory emulator holding BUCKET, killed with the module."""
  url = f'http://127.0.0.1:{_free_port()}'
  folder = tmp_path_factory.mktemp('emulator')
  with open(folder / 'log', 'w') as log:
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'gcs_emulator.py'),
                                url.rsplit(':', 1)[1], BUCKET], cwd=folder, stdout=log,
                               stderr=subprocess.STDOUT)
  try:
    _wait_until_serving(url, process)
    yield url
  finally:
    process.kill()
    process.wait(timeout=10)


@pytest.fixture(scope='module')
def local(tmp_path_factory, emulator):
  """{'cwd', 'home', 'tmp'}: fresh folders that the run sees as such, with every gs:// client
  on the emulator and no credentials to find (a developer's own would reach Google)."""
  root = tmp_path_factory.mktemp('local')
  folders = {name: root / name for name in ('cwd', 'home', 'tmp')}
  env = {'STORAGE_EMULATOR_HOST': emulator, 'TENSORSTORE_GCS_HTTP_URL': emulator,
         'HOME': str(folders['home']), 'TMPDIR': str(folders['tmp']),
         # gcsfs asks the storage-control API for the bucket's layout unless this is off; it
         # is read when gcsfs is imported, which the first gs:// path does.
         'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false', 'NO_GCE_CHECK': 'true',
         'GCE_METADATA_HOST': CLOSED_PORT, 'GCE_METADATA_IP': CLOSED_PORT,
         'GCE_METADATA_ROOT': CLOSED_PORT}
  with pytest.MonkeyPatch.context() as patch:
    for name, value in env.items():
      patch.setenv(name, value)
    for name in ('GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_CONFIG', 'GANS_STATS_DIR'):
      patch.delenv(name, raising=False)
    for folder in folders.values():
      folder.mkdir()
    patch.setattr(tempfile, 'tempdir', None)  # gettempdir() reads TMPDIR again
    patch.chdir(folders['cwd'])
    yield folders


@pytest.fixture(scope='module')
def run(local):
  """Train a classifier and a 20-step MSG-GAN (scored at steps 10 and 20) in the bucket, resume
  it to 30, score it, draw its figures: what each step returned, and the resume's stderr."""
  from configs import classifier_digits
  from gans import evaluation, trainer
  from gans.metrics import extractors
  bucket = f'gs://{BUCKET}'
  workdir, classifier = f'{bucket}/run', f'{bucket}/classifier'
  config = classifier_digits.get_config('tiny')
  config.num_steps = 10
  trainer.train(config, classifier)
  config = tiny_config(num_steps=20)
  config.eval.update(every=10, num_samples=20, metrics='fid', batch_size=8,
                     extractor='classifier', classifier=classifier)
  trainer.train(config, workdir)
  config.num_steps = 30
  said = io.StringIO()
  with contextlib.redirect_stderr(said):
    state = trainer.train(config, workdir)
  options = evaluation.Options(metrics=('fid',), num_samples=20, batch_size=8,
                               stats_dir=f'{bucket}/stats')
  return {'workdir': workdir, 'state': state, 'said': said.getvalue(),
          'scores': evaluation.method_scores(workdir),
          'record': evaluation.score_checkpoint(workdir, extractors.classifier(classifier),
                                                options),
          'figures': evaluation.draw_figures(workdir, sheet_samples=4)}


def _objects(url, prefix=''):
  """The names in BUCKET under prefix, asked of the emulator itself rather than through the
  clients under test."""
  names, token = set(), ''
  while True:
    query = f'prefix={prefix}' + (f'&pageToken={token}' if token else '')
    with urllib.request.urlopen(f'{url}/storage/v1/b/{BUCKET}/o?{query}', timeout=10) as r:
      page = json.load(r)
    names |= {item['name'] for item in page.get('items', [])}
    token = page.get('nextPageToken')
    if not token:
      return names


def _read(url, name):
  quoted = urllib.parse.quote(name, safe='')
  with urllib.request.urlopen(f'{url}/storage/v1/b/{BUCKET}/o/{quoted}?alt=media', timeout=10) as r:
    return r.read()


def _event_steps(data, tag):
  """The steps of `tag`'s scalars in an event file (TFRecord framing: length, its CRC, the
  Event, its CRC)."""
  from tensorboardX.proto import event_pb2
  steps, at = [], 0
  while at < len(data):
    (length,) = struct.unpack('Q', data[at:at + 8])
    event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
    steps += [event.step for v in event.summary.value if v.tag == tag]
    at += 16 + length
  return steps


def test_training_resumes_from_the_bucket(run):
  from gans import logs
  assert int(run['state'].step) == 30
  assert f'resumed from step 20 ({run["workdir"]}/checkpoints/20)' in run['said']
  logged = logs.read_metrics(run['workdir'])
  assert [r['step'] for r in logged if 'd_loss' in r] == [10, 20, 30]
  assert [r['step'] for r in logged if 'fid_classifier' in r] == [10, 20, 30]


def test_every_output_is_in_the_bucket(run, emulator):
  names = _objects(emulator, 'run/')
  expected = {'config.json', 'config_history/00000000.json', 'config_history/00000020.json',
              'last_checkpoint.json', 'metrics.jsonl', 'eval/10.json', 'eval/20.json',
              'eval/30.json', 'checkpoints/30/commit_success.txt',
              'checkpoints/30/state/manifest.ocdbt', 'samples/all_scales/step_00000030.png'}
  assert {f'run/{n}' for n in expected} <= names
  assert 'run/lock.json' not in names  # released
  assert not [n for n in names if n.endswith('.tmp')]  # every temporary renamed into place
  events = sorted(n for n in names if n.startswith('run/tensorboard/events.out.tfevents.'))
  steps = [_event_steps(_read(emulator, n), 'd_loss') for n in events]
  assert [s for s in steps if s] == [[10, 20], [30]]  # sheets' image-only files have no d_loss
  assert len([n for n in names if n.startswith('run/eval/reference/')]) == 1  # in training
  cache = run['record']['reference_cache']
  assert cache.startswith(f'gs://{BUCKET}/stats/') and _objects(emulator, 'stats/') == {
      cache[len(f'gs://{BUCKET}/'):]}
  assert [e['classifier_step'] for e in run['record']['extractors'].values()] == [10]
  assert {'fid_classifier', 'd_loss_logged'} <= set(run['scores']['metrics'])
  figures = {p[len(f'gs://{BUCKET}/'):] for p in run['figures']}
  assert 'run/figures/losses.png' in figures and figures <= names


def test_nothing_is_written_to_the_local_disk(run, local):
  """A URL taken for a local path (os.path.abspath('gs://b/run')) would show as cwd/gs:/..."""
  del run
  written = {name: sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))
             for name, folder in local.items()}
  assert written == {'cwd': [], 'home': [], 'tmp': []}
