"""What evaluation tells people: the offline route when the Inception weights are missing, a
progress line while features are extracted, and curves of a run whose last log line is torn.

The extraction runs an untrained tiny MSG-GAN through an extractor with no weights: the
progress line depends on counts and batches, not on what the features mean, and nothing needs
training first.
"""
import io
import json
import os
import re
import sys
import types

import pytest

from conftest import tiny_config

# done/total, percent, images/s and ETA, as training's line has them
LINE = re.compile(r'(\d+)/(\d+) +(\d+\.\d)% \| +\d+\.\d img/s \| .* \| ETA \d\d:\d\d')


def test_missing_inception_weights_name_the_offline_route(tmp_path):
  from gans.errors import UserError
  from gans.metrics import extractors
  with pytest.raises(UserError) as error:
    extractors.load_inception_variables(str(tmp_path / 'none.pth'))
  message = str(error.value)
  assert '\n' not in message
  for fragment in ('none.pth', '--inception', '--extractor classifier --classifier DIR',
                   'configs/classifier_*.py', 'offline'):
    assert fragment in message


@pytest.fixture(scope='module')
def run():
  """(method, config, state, extractor, mesh) of a tiny MSG-GAN at initialisation."""
  import jax
  from gans import methods, parallel
  from gans.metrics import extractors
  config = tiny_config()
  method = methods.get('msggan')
  state = method.init_state(config, jax.random.PRNGKey(0))
  frozen = types.SimpleNamespace(features=lambda x: x.mean(axis=(1, 2)),
                                 logits=lambda x: x.std(axis=(1, 2)))
  return method, config, state, extractors.from_frozen(frozen, 'mean'), parallel.make_mesh()


def options(tmp_path, **kw):
  from gans import evaluation
  return evaluation.Options(**{'batch_size': 4, 'stats_dir': str(tmp_path), 'per_scale': False,
                               **kw})


def progress_lines(text, total):
  return [m.groups() for m in map(LINE.search, text.splitlines()) if m and m[2] == str(total)]


def test_extraction_progress_in_a_log_file_is_a_few_lines(run, tmp_path, capsys):
  """50 batches of reals and 10 of samples: each a header, a line every tenth and the last."""
  from gans import evaluation
  method, config, state, ext, mesh = run
  opts = options(tmp_path, num_real=200, num_samples=40)
  evaluation.reference_features(method, config, ext, mesh, opts)
  evaluation.generated_features(method, config, state, ext, mesh, opts)
  err = capsys.readouterr().err
  assert '\r' not in err
  assert 'reals digits train' in err and 'samples step 0' in err, err
  reals, samples = progress_lines(err, 200), progress_lines(err, 40)
  assert 2 <= len(reals) <= 12, err  # not one per batch
  assert reals[-1] == ('200', '200', '100.0') and samples[-1] == ('40', '40', '100.0'), err
  for done, total, percent in reals + samples:
    assert float(percent) == pytest.approx(100 * int(done) / int(total), abs=0.05)
  evaluation.reference_features(method, config, ext, mesh, opts)
  assert capsys.readouterr().err == ''  # cached: nothing extracted, nothing said


class Terminal(io.StringIO):

  def isatty(self):
    return True


def test_extraction_progress_is_redrawn_in_place_on_a_terminal(run, tmp_path, monkeypatch):
  from gans import evaluation
  method, config, state, ext, mesh = run
  monkeypatch.setattr(sys, 'stderr', Terminal())
  evaluation.reference_features(method, config, ext, mesh, options(tmp_path, num_real=40))
  err = sys.stderr.getvalue()
  redraws = err.split('\r')[1:]
  assert len(redraws) == 10, err  # every batch, in place
  assert [LINE.search(r)[1] for r in redraws] == [str(4 * i) for i in range(1, 11)]
  assert redraws[-1].startswith('features of reals digits train: 40/40 100.0%')
  assert err.endswith('\n')


def test_curves_and_logged_scalars_skip_a_torn_last_line(run, tmp_path):
  """A run killed while writing metrics.jsonl leaves half a line; the rest still draws."""
  import jax.numpy as jnp
  from gans import evaluation
  method, config, state, _, _ = run
  rows = [json.dumps({'step': s, 'd_loss': 1.0 / s, 'g_loss': 2.0 / s}) for s in (10, 20)]
  (tmp_path / 'metrics.jsonl').write_text('\n'.join(rows) + '\n{"step": 30, "d_lo')
  assert [os.path.basename(p) for p in evaluation.curve_figures(str(tmp_path))] == ['losses.png']
  state = state.replace(step=jnp.asarray(30, state.step.dtype))
  record = evaluation.method_scores(str(tmp_path), loaded=(config, state))
  assert record['metrics']['d_loss_logged'] == {'value': 0.05,
                                                'reference': 'metrics.jsonl, step 20'}


def test_the_fid_convention_reaches_the_inception_loader(monkeypatch):
  """eval.py --convention and config.eval.convention are passed to extractors.inception."""
  from gans import evaluation
  from gans.metrics import extractors
  calls = []
  monkeypatch.setattr(extractors, 'inception', lambda path=None, **kw: calls.append((path, kw)))
  evaluation.make_extractors(['inception'], 'w.pth', convention='tf')
  evaluation.make_extractors(['inception'], 'w.pth')
  assert calls == [('w.pth', {'convention': 'tf'}), ('w.pth', {})]
