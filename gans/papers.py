"""The papers' tables at a named scale: what to train, how to score it, and the results page.

A paper is a list of rows, each a config trained once per seed into ROOT/<row>/seed<S>,
plus the frozen classifiers its measures need (trained once, into ROOT/judges/<name>). Running a
paper trains what is unfinished (trainer.train resumes a workdir from its latest checkpoint and
does nothing in a finished one, so an interrupted reproduction is continued by running the same
command), scores every run, keeps the scores beside it (score.json), and rewrites the paper's
section of docs/results.md: mean +- std over seeds, the paper's number where it has one, the
command, the hardware, the wall time and the date, and a sample sheet of each row.

Scales: `cpu` fits a 2-core CPU in under an hour per paper (the embedded digits; MNIST for the
scogan_mnist tables); `paper` is the paper's own setting, for an accelerator; `smoke` is the
tiny configs, for tests.
"""
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import time
from typing import Callable

import numpy as np
from etils import epath

from gans import config as config_lib
from gans.errors import UserError
from gans.methods import coupled

REPO = epath.Path(__file__).parent.parent
SCALES = ('smoke', 'cpu', 'paper')


@dataclasses.dataclass(frozen=True)
class Run:
  """One training job: a config file (FILE[:variant], relative to the repository) and dotted
  overrides; values that are judge names in braces ('{sl}') become that judge's workdir."""
  config: str
  overrides: dict = dataclasses.field(default_factory=dict)

  def load(self, judges: dict, seed: int):
    values = {k: judges[v[1:-1]] if isinstance(v, str) and re.fullmatch(r'\{\w+\}', v) else v
              for k, v in self.overrides.items()}
    return config_lib.from_file(REPO / self.config, {**values, 'seed': seed})

  def command(self, judges: dict) -> str:
    flags = ' '.join(f'--config.{k}={judges.get(str(v)[1:-1], v)}'
                     for k, v in self.overrides.items())
    return f'python train.py --config {self.config} {flags}'.strip()


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  run: Run
  paper: str = '-'  # the paper's number for this row, as the paper states it


@dataclasses.dataclass(frozen=True)
class Judge:
  """A frozen classifier a paper's measures (or its SL) need, trained once with `seed`."""
  run: Run
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class Paper:
  title: str
  rows: tuple
  measures: tuple  # (score key, column heading)
  score: Callable  # (workdir, {judge: workdir}, scale) -> {score key: float}
  judges: dict = dataclasses.field(default_factory=dict)  # name -> Judge
  seeds: tuple = (0, 1, 2)
  note: str = ''
  flags: str = ''  # reproduce.py's flags beyond --paper/--scale/--root (the MNIST folder)


# ---- measures -------------------------------------------------------------------------------


def _samples(scale):
  return {'smoke': 64, 'cpu': 10_000, 'paper': 50_000}[scale]


def fid_classifier(workdir, judge, scale) -> float:
  """FID in the judge classifier's features, the run's own dataset as the reference."""
  from gans import evaluation  # pylint: disable=g-import-not-at-top
  extractor = evaluation.make_extractors(['classifier'], classifier_dir=judge)[0]
  options = evaluation.Options(metrics=('fid',), num_samples=_samples(scale), per_scale=False,
                               stats_dir=os.path.join(workdir, 'eval', 'reference'))
  record = evaluation.score_checkpoint(workdir, extractor, options)
  return record['metrics']['fid_classifier']['value']


def inception_scores(workdir, judges, scale) -> dict:
  """FID (TF convention, as the MSG-GAN and BEGAN papers computed it) and IS over 50k samples;
  the weights file is found as eval.py finds it ($GANS_INCEPTION or ~/.cache/gans/)."""
  del judges
  from gans import evaluation  # pylint: disable=g-import-not-at-top
  extractor = evaluation.make_extractors(['inception'], convention='tf')[0]
  options = evaluation.Options(metrics=('fid', 'is'), num_samples=_samples(scale),
                               per_scale=False)
  metrics = evaluation.score_checkpoint(workdir, extractor, options)['metrics']
  return {'fid_tf': metrics['fid']['value'], 'is': metrics['is']['value']}


def one_stream_scores(workdir, judges, scale) -> dict:
  """MSG-GAN and BEGAN on digits: FID in the digit classifier's features, and the entropy and
  rarest-class fraction of the classifier's class histogram of the samples."""
  from gans.evaluation import coverage  # pylint: disable=g-import-not-at-top
  covered = coverage.class_coverage(workdir, judges['digits'],
                                    num_samples=min(_samples(scale), 2000))
  return {'fid_classifier': fid_classifier(workdir, judges['digits'], scale),
          'entropy': covered['entropy'], 'min_fraction': covered['min_fraction']}


def pair_scores(workdir, judges, scale) -> dict:
  """Coupled runs: pixel agreement and pair agreement over eval.num_pairs pairs of the final
  checkpoint, judged by the run's eval.classifier (a judge of its pair, never its SL
  classifier)."""
  del judges, scale
  from gans import checkpoint, methods  # pylint: disable=g-import-not-at-top
  config, state = checkpoint.load(workdir)
  return methods.get(config.method).checkpoint_scores(config, state)


# ---- the papers -----------------------------------------------------------------------------

ONE_STREAM = (('fid_classifier', 'FID (digit classifier features)'),
              ('entropy', 'class entropy (max 2.303)'), ('min_fraction', 'rarest class'))
INCEPTION = (('fid_tf', 'FID (tf convention, 50k)'), ('is', 'IS'))
PAIR = (('pixel_agreement', 'pixel agreement'), ('pair_agreement', 'pair agreement'),
        ('pair_agreement_chance', 'chance'))
SCOGAN_ROWS = (('FR', 'fr'), ('SL+CC', 'sl_cc'), ('CC+FR', 'cc_fr'), ('FR+SL+CC', 'fr_sl_cc'))


COGAN_PAPER = {'negative': '0.967 +- 0.008 (pixel, MNIST)', 'edge': '0.952 +- 0.002 (pixel, MNIST)'}
# The coupled tables train 18 GANs and 2 classifiers each: at the digits configs' 2,000 steps
# that is about 2.5 h on 2 cores, so the CPU scale stops every coupled run at 500 steps (each at
# its 500-step checkpoint) and each classifier at 500 (held-out accuracy 0.956, 0.958 at 2,000).
CPU_STEPS = {'num_steps': 500, 'sample_every': 250, 'checkpoint_every': 250}
# MNIST at the digits tables' size: the MNIST configs are the paper's full net at batch 128.
CPU_MNIST = {k: coupled.CPU_SIZE[k] for k in ('model.g_divisor', 'batch_size', 'eval.num_pairs')}


def _tiny(scale):
  return ((lambda c: c + ('_tiny' if ':' in c else ':tiny')) if scale == 'smoke'
          else (lambda c: c))


def coupled_study(base: str, pair: str, scale: str, mnist: str = '') -> tuple:
  """(judges, CoGAN rows, SCoGAN rows) of <base>2<pair> at `scale`, one builder for every table
  of coupled runs: base is 'digits' (the embedded digits, CPU and smoke scales) or 'mnist'
  (read from the IDX folder `mnist`, else TFDS mnist), pair 'negative' or 'edge'.

  The judges are an SL classifier ('sl_<pair>') and another network of the same recipe judging
  pair agreement ('judge_<pair>'); the rows are CoGAN (G 4 / D 3 shared), the unshared
  baseline and the four SCoGAN couplings, every run judged by its own pair's judge."""
  v = _tiny(scale)
  data = {'data.name': 'idx', 'data.path': mnist} if base == 'mnist' and mnist else {}
  if base == 'digits':  # the digits configs' pair is the negatives: swap the transform
    cogan, scogan = 'configs/cogan_digits_negative.py', 'configs/scogan_digits_negative.py'
    if pair != 'negative':
      data['pair.transform'] = pair
    suffix = {'negative': '', 'edge': ', edges'}[pair]
  else:
    cogan, scogan = f'configs/cogan_mnist_{pair}.py', f'configs/scogan_mnist_{pair}.py'
    suffix = {('paper', 'negative'): ', task B, MNIST / negatives',
              ('paper', 'edge'): ', task A, MNIST / edges'}.get((scale, pair), f', MNIST {pair}s')
  steps = CPU_STEPS if scale == 'cpu' else {}
  size = {**steps, **(CPU_MNIST if scale == 'cpu' and base == 'mnist' else {})}
  classifier = Run(v(f'configs/classifier_pair.py:{base}2{pair}'), {**steps, **data})
  sl, judge = f'sl_{pair}', f'judge_{pair}'

  def run(config, coupling=''):
    sl_on = 'sl' in coupling and scale != 'smoke'  # tiny configs use an untrained stand-in
    return Run(v(config + (f':{coupling}' if coupling else '')),
               {**size, **data, 'eval.classifier': f'{{{judge}}}',
                **({'reg.sl_classifier': f'{{{sl}}}'} if sl_on else {})})

  cogan_rows = (Row(f'CoGAN, G 4 / D 3 shared{suffix}', run(cogan), COGAN_PAPER[pair]),
                Row(f'unshared baseline{suffix}', run(cogan, 'unshared')))
  scogan_rows = tuple(Row(f'SCoGAN {name}{suffix}', run(scogan, coupling))
                      for name, coupling in SCOGAN_ROWS)
  return {sl: Judge(classifier, 0), judge: Judge(classifier, 1)}, cogan_rows, scogan_rows


def _scogan(title, study, note, flags='') -> Paper:
  judges, cogan_rows, scogan_rows = study
  return Paper(f'SCoGAN (soft-coupled GAN): {title}', cogan_rows + scogan_rows, PAIR,
               pair_scores, judges, note=note, flags=flags)


def papers(scale: str, mnist: str = '') -> dict:
  """{paper: Paper} at `scale`; `mnist` is a folder of the MNIST IDX files, which the MNIST
  tables then read instead of TFDS's mnist (that one needs a download)."""
  if scale not in SCALES:
    raise UserError(f'unknown scale {scale!r}; choose one of {", ".join(SCALES)}')
  flags = f'--mnist {mnist}' if mnist else ''
  if scale == 'paper':
    return _paper_scale(mnist, flags)
  seeds = (0, 1) if scale == 'smoke' else (0, 1, 2)
  v = _tiny(scale)
  steps = CPU_STEPS.get('num_steps') if scale == 'cpu' else 2000
  negatives, edges = (coupled_study('digits', pair, scale) for pair in ('negative', 'edge'))
  mnist_negatives, mnist_edges = (coupled_study('mnist', pair, scale, mnist)
                                  for pair in ('negative', 'edge'))
  digits_judge = {'digits': Judge(Run(v('configs/classifier_digits.py')))}
  scogan_note = ('No SCoGAN report with numbers is public (spec coupled.md §3.1). Two unshared '
                 'GANs on one z, coupled only by the named regularisers (each at weight 10), '
                 f'with the CoGAN table\'s nets (G at 1/8 width), batch 32 per domain and '
                 f'{steps} steps, on {{}}. SL uses a classifier trained on both domains; pair '
                 'agreement is judged by another one (same recipe, another seed).')
  mnist_data = ('the CoGAN paper\'s halves of MNIST train (28x28, padded to 32x32; '
                f'{"IDX files" if mnist else "TFDS mnist"})')
  return {
      'msggan': Paper(
          'MSG-GAN (Karnewar & Wang, CVPR 2020)',
          (Row('MSG-GAN, relativistic hinge, 16x16', Run(v('configs/msggan_digits.py'))),),
          ONE_STREAM, one_stream_scores, digits_judge, seeds,
          note='The paper reports FID on flowers, churches, faces (`--scale paper`); the CPU '
               'scale checks that the multi-scale method learns the embedded digits, scored '
               'by a digit classifier trained by the project (not by Inception).'),
      'began': Paper(
          'BEGAN (Berthelot et al., 2017)',
          (Row('BEGAN, gamma 1.0, lambda_k 0.1, tanh', Run(v('configs/began_digits.py'))),),
          ONE_STREAM, one_stream_scores, digits_judge, seeds,
          note='The paper shows gamma trading diversity for quality on faces and an IS of 5.62 '
               'on CIFAR-10; the CPU scale measures how many digit classes the samples cover.'),
      'cogan': Paper('CoGAN (Liu & Tuzel, NIPS 2016)', negatives[1], PAIR, pair_scores,
                     {'judge_negative': negatives[0]['judge_negative']}, seeds,
                     note="The paper's task B is MNIST and its negative; here the embedded "
                          'digits (1,797 8x8 scans) and their negatives, G at 1/8 width, '
                          f'{steps} steps of 32 pairs.'),
      'scogan': _scogan('negatives', negatives,
                        scogan_note.format('the embedded digits and their negatives')),
      'scogan_edge': _scogan('edges', edges,
                             scogan_note.format('the embedded digits and their edges')),
      'scogan_mnist': _scogan('MNIST negatives', mnist_negatives,
                              scogan_note.format(mnist_data + ' and their negatives'), flags),
      'scogan_mnist_edge': _scogan('MNIST edges', mnist_edges,
                                   scogan_note.format(mnist_data + ' and their edges'), flags),
  }


def _paper_scale(mnist, flags) -> dict:
  """The papers' own settings (TFDS datasets or the MNIST IDX files, an accelerator, the
  Inception weights)."""
  edges, negatives = (coupled_study('mnist', pair, 'paper', mnist) for pair in ('edge', 'negative'))
  note = ('The CoGAN paper\'s MNIST task with its full net, batch 128 and 25,000 steps; SL uses '
          'a classifier trained on both domains, pair agreement another one.')
  return {
      'msggan': Paper('MSG-GAN (Karnewar & Wang, CVPR 2020)',
                      (Row('MSG-ProGAN, Oxford flowers 256', Run('configs/msggan_flowers256.py'),
                           'FID 28.27 [secondary]'),),
                      INCEPTION, inception_scores, seeds=(0,)),
      'began': Paper('BEGAN (Berthelot et al., 2017)',
                     (Row('BEGAN, CIFAR-10', Run('configs/began_cifar10.py'), 'IS 5.62'),),
                     INCEPTION, inception_scores, seeds=(0,)),
      'cogan': Paper('CoGAN (Liu & Tuzel, NIPS 2016)', edges[1] + negatives[1], PAIR,
                     pair_scores, {'judge_edge': edges[0]['judge_edge'],
                                   'judge_negative': negatives[0]['judge_negative']},
                     seeds=(0, 1, 2, 3, 4), flags=flags),
      'scogan': _scogan('negatives', negatives, note, flags),
      'scogan_edge': _scogan('edges', edges, note, flags),
  }


# ---- running and the results page ----------------------------------------------------------


def _slug(text):
  return re.sub(r'[^a-z0-9]+', '_', text.lower()).strip('_')


def run_dir(root, row: Row, seed) -> epath.Path:
  """ROOT/<row>/seed<S>: by the row's name alone, so a row two papers share (CoGAN's, in the
  SCoGAN table) is trained once."""
  return epath.Path(root) / _slug(row.name) / f'seed{seed}'


def _train(config, workdir) -> float:
  """Train (or resume) a run; returns the seconds spent training it in total (kept in
  workdir/reproduce_time.json across interruptions, with the step reached: a run recorded
  finished is not opened again, so rerunning a paper adds nothing to its wall time)."""
  from gans import parallel, trainer  # pylint: disable=g-import-not-at-top
  workdir = epath.Path(workdir)
  record = workdir / 'reproduce_time.json'
  saved = json.loads(record.read_text()) if record.exists() else {'seconds': 0.0}
  if saved.get('step') == config.num_steps:
    return saved['seconds']
  t0 = time.time()
  state = trainer.train(config, str(workdir))
  spent = saved['seconds'] + time.time() - t0
  record.write_text(json.dumps({'seconds': spent, 'step': int(parallel.to_host(state.step))}))
  return spent


def _judges(paper: Paper, root) -> tuple:
  """({name: workdir}, seconds spent training them) of the paper's judges, trained first."""
  out, seconds = {}, 0.0
  for name, judge in paper.judges.items():
    config = judge.run.config.removeprefix('configs/').replace('.py', '')
    workdir = epath.Path(root) / 'judges' / f'{_slug(config)}_seed{judge.seed}'
    seconds += _train(judge.run.load({}, judge.seed), workdir)
    out[name] = str(workdir)
  return out, seconds


def reproduce(name: str, scale: str, root, results=None, log=print, paper=None,
              mnist='') -> dict:
  """Train, score and tabulate one paper (`paper`, or papers(scale, mnist)[name]); returns
  {row: {seed: scores}} and rewrites its section of `results` (default docs/results.md)
  unless results is ''."""
  if paper is None:
    table = papers(scale, mnist)
    if name not in table:
      raise UserError(f'unknown paper {name!r}; choose one of {", ".join(table)}')
    paper = table[name]
  judges, seconds = _judges(paper, root)
  scores = {}
  for row in paper.rows:
    scores[row.name] = {}
    for seed in paper.seeds:
      workdir = run_dir(root, row, seed)
      log(f'{name}: {row.name}, seed {seed} -> {workdir}')
      seconds += _train(row.run.load(judges, seed), workdir)
      cached = workdir / 'score.json'
      if not cached.exists():  # a finished run is scored once
        cached.write_text(json.dumps(paper.score(str(workdir), judges, scale)))
      scores[row.name][seed] = json.loads(cached.read_text())
  if results != '':
    write_section(results or REPO / 'docs' / 'results.md', name, scale, paper, scores, judges,
                  root, seconds)
  return scores


def _mean_std(values):
  values = np.asarray(values, np.float64)
  if len(values) < 2:
    return f'{values.mean():.3f}'
  return f'{values.mean():.3f} +- {values.std(ddof=1):.3f}'


def section(name, scale, paper: Paper, scores, judges, root, seconds, figures) -> str:
  """The markdown of one paper's section."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  hardware = (f'{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})'
              if device.platform == 'cpu' else f'{jax.device_count()} x {device.device_kind}')
  lines = [f'## {paper.title}', '', paper.note, '',
           f'Scale `{scale}`, {len(paper.seeds)} seeds ({", ".join(map(str, paper.seeds))}); '
           f'mean +- sample std over seeds. Command (resumes if interrupted):', '',
           f'    python scripts/reproduce.py --paper {name} --scale {scale} --root {root} '
           f'{paper.flags}'.rstrip(), '',
           f'Hardware: {hardware}, jax {jax.__version__}. Training wall time, all runs and '
           f'classifiers: '
           f'{seconds / 60:.1f} min. Written {datetime.date.today().isoformat()}.', '',
           '| experiment | ' + ' | '.join(h for _, h in paper.measures) + ' | paper |',
           '|---' * (len(paper.measures) + 2) + '|']
  for row in paper.rows:
    cells = []
    for key, _ in paper.measures:
      values = [s[key] for s in scores[row.name].values() if key in s]
      cells.append(_mean_std(values) if values else '-')
    lines.append(f'| {row.name} | ' + ' | '.join(cells) + f' | {row.paper} |')
  if judges:
    lines += ['', 'Classifiers the measures use (trained first, `--workdir` as named):', '']
    lines += [f'- {n}: `{paper.judges[n].run.command({})} --config.seed={paper.judges[n].seed}'
              f' --workdir {w}`' for n, w in judges.items()]
  lines += ['', 'Each row trains with:', '']
  lines += [f'- {row.name}: `{row.run.command(judges)} --config.seed=S`' for row in paper.rows]
  if figures:
    lines += ['', 'Samples of seed 0 at the end of training:', '']
    lines += [f'![{title}]({path})' for title, path in figures]
  return '\n'.join(lines) + '\n'


def _figures(name, paper: Paper, root, results_path) -> list:
  """Copy each row's last sample sheet of seed 0 next to the results page."""
  out = []
  target = epath.Path(results_path).parent / 'results' / name
  for row in paper.rows:
    # samples/<sheet>/step_<N>.png: the last step of the first sheet (by name)
    sheets = sorted((run_dir(root, row, paper.seeds[0]) / 'samples').glob('*/*.png'))
    if not sheets:
      continue
    folder = sheets[0].parent
    sheet = max((s for s in sheets if s.parent == folder), key=lambda s: s.name)
    target.mkdir(parents=True, exist_ok=True)
    dest = target / f'{run_dir(root, row, 0).parent.name}.png'
    shutil.copyfile(sheet, dest)
    out.append((row.name, os.path.relpath(dest, epath.Path(results_path).parent)))
  return out


def write_section(path, name, scale, paper, scores, judges, root, seconds):
  """Replace the paper's section of the results page (between its markers), or append it."""
  path = epath.Path(path)
  text = path.read_text() if path.exists() else '# Results\n'
  body = section(name, scale, paper, scores, judges, root, seconds,
                 _figures(name, paper, root, path))
  begin, end = f'<!-- reproduce:{name} -->', f'<!-- /reproduce:{name} -->'
  block = f'{begin}\n{body}{end}'
  if begin in text and end in text:
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
  else:
    text = text.rstrip('\n') + '\n\n' + block + '\n'
  path.write_text(text)
