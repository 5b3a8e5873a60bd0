"""gans.evaluation.coverage (and its CLI, scripts/class_coverage.py): the class histogram of a
generator's samples as a classifier judges them, made from exactly the images gans.sampling
gives the evaluation, and its entropy."""
import json
import math

import jax
import numpy as np
import pytest

from conftest import load_script
from gans import checkpoint, methods, trainer
from gans.errors import UserError
from gans.evaluation import coverage
from gans.methods import classifier as classifier_lib


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """(tiny BEGAN workdir of 10 steps, tiny classifier workdir of 60 steps: enough that its
  labels of the samples differ, which 10 steps are not)."""
  from configs import began_digits, classifier_digits
  root = tmp_path_factory.mktemp('coverage')
  config = classifier_digits.get_config('tiny')
  config.num_steps = 60
  trainer.train(config, str(root / 'classifier'))
  config = began_digits.get_config('tiny')
  config.num_steps = 10
  trainer.train(config, str(root / 'began'))
  return str(root / 'began'), str(root / 'classifier')


def expected_labels(workdir, frozen, num, seed, batch):
  """The labels spelled out from gans.sampling's contract: batch j is the generator on
  sample_latents(fold_in(PRNGKey(seed), j), batch), quantised round((x + 1) * 127.5) clipped,
  the surplus rows of the last batch dropped."""
  config, state = checkpoint.load(workdir)
  method = methods.get(config.method)
  labels = []
  for j, start in enumerate(range(0, num, batch)):
    z = method.sample_latents(config, jax.random.fold_in(jax.random.PRNGKey(seed), j), batch)
    x = np.asarray(method.generate(config, state, z)['samples'], np.float64)
    uint8 = np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)
    labels.append(frozen.predict_all(uint8)[:min(batch, num - start)])
  return np.concatenate(labels)


def test_histogram_and_entropy_against_numpy():
  labels = [0, 0, 1, 2, 2, 2, 9, 9, 9, 9, 4]
  r = coverage.histogram(labels, 10)
  counts = np.bincount(labels, minlength=10)
  p = counts / counts.sum()
  assert r['counts'] == counts.tolist()
  np.testing.assert_allclose(r['fractions'], p)
  np.testing.assert_allclose(r['entropy'], -sum(q * np.log(q) for q in p if q > 0), rtol=1e-12)
  assert r['min_fraction'] == 0.0 and r['classes_covered'] == 5
  assert r['max_entropy'] == pytest.approx(math.log(10))
  even = coverage.histogram(np.arange(20) % 10, 10)
  assert even['entropy'] == pytest.approx(math.log(10)) and even['min_fraction'] == 0.1
  one = coverage.histogram([3] * 5, 10)
  assert one['entropy'] == 0.0 and str(one['entropy']) == '0.0' and one['classes_covered'] == 1


def test_coverage_labels_the_samples_the_evaluation_scores(runs):
  """Counts of 37 samples (batches of 16: the last one's surplus dropped) equal the labels of
  the images spelled out from gans.sampling's contract; the entropy is numpy's of the counts."""
  began, classifier = runs
  frozen = classifier_lib.load_frozen(classifier)
  r = coverage.class_coverage(began, frozen, num_samples=37, seed=3, batch_size=16)
  labels = expected_labels(began, frozen, 37, 3, 16)
  assert r['counts'] == np.bincount(labels, minlength=10).tolist()
  assert sum(r['counts']) == 37 and r['step'] == 10 and r['num_samples'] == 37
  assert r['classes_covered'] > 1  # else any images would give the same counts
  p = np.asarray(r['counts']) / 37
  np.testing.assert_allclose(r['entropy'], -np.sum(p[p > 0] * np.log(p[p > 0])), rtol=1e-12)
  assert r['min_fraction'] == pytest.approx(p.min())
  other = coverage.class_coverage(began, classifier, num_samples=37, seed=4, batch_size=16)
  assert other['counts'] == np.bincount(expected_labels(began, frozen, 37, 4, 16),
                                        minlength=10).tolist()


def test_the_command_prints_a_table_and_writes_json(runs, tmp_path, capsys):
  script = load_script('class_coverage')
  began, classifier = runs
  out = tmp_path / 'coverage.json'
  assert script.main(['--workdir', f'{began},{began}', '--classifier', classifier,
                      '--num_samples', '20', '--batch_size', '8', '--json', str(out)]) == 0
  printed = capsys.readouterr().out
  results = json.loads(out.read_text())
  assert len(results) == 2 and results[0] == results[1]
  assert f'{began} step 10, 20 samples: entropy {results[0]["entropy"]:.3f} of 2.303' in printed
  assert f'counts {results[0]["counts"]}' in printed
  # a generator run given as the classifier: one line, exit code 2
  assert script.main(['--workdir', began, '--classifier', began]) == 2
  assert 'not a classifier' in capsys.readouterr().err
  with pytest.raises(UserError, match='class coverage needs a generator'):
    coverage.class_coverage(classifier, classifier, num_samples=4)
