"""scripts/reproduce.py's engine: a paper's runs are trained once per seed, resumed or skipped
when the command is run again, scored once, and tabulated into their own section."""
import functools
import itertools
import json

import numpy as np
import pytest

from gans import papers
from gans.errors import UserError


def _pixel(workdir, judges, scale):
  del judges, scale
  from gans import checkpoint, methods  # pylint: disable=g-import-not-at-top
  config, state = checkpoint.load(workdir)
  return methods.get(config.method).checkpoint_scores(config, state)


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
  root = tmp_path_factory.mktemp('reproduce')
  paper = papers.Paper('A tiny paper', (papers.Row(
      'tiny CoGAN', papers.Run('configs/cogan_digits_negative.py:tiny',
                               {'eval.num_pairs': 32}), '0.9'),),
      (('pixel_agreement', 'pixel agreement'),), _pixel, seeds=(0, 1), note='for a test')
  results = root / 'results.md'
  results.write_text('# Results\n\nintro\n\n<!-- reproduce:tiny -->\nold\n'
                     '<!-- /reproduce:tiny -->\n\n## another paper\nkept\n')
  scores = papers.reproduce('tiny', 'smoke', root / 'runs', results, paper=paper)
  return root, paper, results, scores


def test_each_seed_is_trained_scored_and_tabulated(reproduced):
  root, paper, results, scores = reproduced
  values = []
  for seed in (0, 1):
    workdir = papers.run_dir(root / 'runs', paper.rows[0], seed)
    assert json.loads((workdir / 'config.json').read_text())['seed'] == seed
    assert json.loads((workdir / 'score.json').read_text()) == scores['tiny CoGAN'][seed]
    values.append(scores['tiny CoGAN'][seed]['pixel_agreement'])
  text = results.read_text()
  mean, std = np.mean(values), np.std(values, ddof=1)
  assert f'| tiny CoGAN | {mean:.3f} +- {std:.3f} | 0.9 |' in text
  assert text.count('<!-- reproduce:tiny -->') == 1 and 'old' not in text
  assert text.startswith('# Results\n\nintro\n') and text.endswith('## another paper\nkept\n')
  assert '--paper tiny --scale smoke' in text
  sheet = results.parent / 'results' / 'tiny' / 'tiny_cogan.png'
  assert sheet.exists() and '(results/tiny/tiny_cogan.png)' in text


def test_running_it_again_trains_and_scores_nothing(reproduced):
  root, paper, results, scores = reproduced
  workdir = papers.run_dir(root / 'runs', paper.rows[0], 0)
  (workdir / 'score.json').write_text(json.dumps({'pixel_agreement': 0.5}))
  steps = sorted(p.name for p in (workdir / 'checkpoints').iterdir())
  seconds = (workdir / 'reproduce_time.json').read_text()
  again = papers.reproduce('tiny', 'smoke', root / 'runs', results, paper=paper)
  assert again['tiny CoGAN'][0] == {'pixel_agreement': 0.5}  # cached, not recomputed
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == steps
  assert (workdir / 'reproduce_time.json').read_text() == seconds  # the page's time stays
  mean = np.mean([0.5, scores['tiny CoGAN'][1]['pixel_agreement']])
  assert f'| tiny CoGAN | {mean:.3f} +- ' in results.read_text()


def test_unknown_paper_or_scale_is_one_line():
  with pytest.raises(UserError, match='unknown scale'):
    papers.papers('huge')
  with pytest.raises(UserError, match='unknown paper'):
    papers.reproduce('stylegan', 'cpu', '/tmp/nowhere')


def test_every_paper_names_configs_that_load():
  """Every row and judge of every scale is a config file that exists and loads with its
  overrides (judge names resolved), so a typo is found here, not an hour into a run."""
  for scale, mnist in itertools.product(papers.SCALES, ('', '/data/mnist')):
    for paper in papers.papers(scale, mnist).values():
      judges = {name: f'/tmp/{name}' for name in paper.judges}
      for run in [r.run for r in paper.rows] + [j.run for j in paper.judges.values()]:
        config = run.load(judges, seed=3)
        assert config.seed == 3
        for key, value in run.overrides.items():
          got = functools.reduce(lambda c, k: c[k], key.split('.'), config)
          assert got == judges.get(str(value)[1:-1], value), (run.config, key)


def test_coupled_runs_are_judged_by_a_classifier_of_their_own_pair():
  """A judge trained on another pair (edges judged by a negatives classifier) scores nonsense,
  and a judge that is also the SL classifier scores what it trained: every coupled run of
  every scale has a judge of its pair's data, and SL (if on) reads another network."""
  pair_of = lambda c: (c.data.name, c.data_b.name, c.pair.transform, c.pair.pad)
  for scale, mnist in itertools.product(papers.SCALES, ('', '/data/mnist')):
    for paper in papers.papers(scale, mnist).values():
      judges = {name: f'/tmp/{name}' for name in paper.judges}
      judge_configs = {f'/tmp/{n}': j.run.load({}, j.seed) for n, j in paper.judges.items()}
      for row in paper.rows:
        config = row.run.load(judges, seed=0)
        if 'data_b' not in config:
          continue
        judge = config.eval.classifier
        assert pair_of(judge_configs[judge]) == pair_of(config), (scale, row.name)
        if config.reg.sl and scale != 'smoke':
          assert config.reg.sl_classifier in judge_configs, (scale, row.name)
          assert config.reg.sl_classifier != judge
          assert pair_of(judge_configs[config.reg.sl_classifier]) == pair_of(config)


def test_the_mnist_tables_are_the_digits_tables_on_mnist_read_from_the_idx_folder():
  """At CPU scale scogan_mnist(_edge) is scogan(_edge) with MNIST in place of the digits: each
  run has its digits row's nets, size, schedule and coupling (the MNIST configs alone are the
  paper's batch 128 and 25k steps, days on a CPU), and every run and judge reads the IDX folder
  that the page's command names (TFDS's mnist would need a download)."""
  table = papers.papers('cpu', '/data/mnist')
  for digits, mnist in (('scogan', 'scogan_mnist'), ('scogan_edge', 'scogan_mnist_edge')):
    d, m = table[digits], table[mnist]
    assert len(d.rows) == len(m.rows) == 6
    fake = lambda paper: {n: f'/tmp/{n}' for n in paper.judges}
    for digits_row, mnist_row in zip(d.rows, m.rows):
      a, b = digits_row.run.load(fake(d), 0), mnist_row.run.load(fake(m), 0)
      for block in ('model', 'coupled', 'optim', 'reg', 'pair', 'eval'):
        assert a[block].to_dict() == b[block].to_dict(), (mnist_row.name, block)
      assert (a.batch_size, a.num_steps) == (b.batch_size, b.num_steps) == (32, 500)
      assert (b.data.name, b.data.path) == ('idx', '/data/mnist')
    for judge in m.judges.values():
      c = judge.run.load({}, judge.seed)
      assert (c.data.name, c.data.path, c.num_steps) == ('idx', '/data/mnist', 500)
    text = papers.section(mnist, 'cpu', m, {r.name: {} for r in m.rows}, {}, '/r', 60.0, [])
    assert f'--paper {mnist} --scale cpu --root /r --mnist /data/mnist\n' in text
