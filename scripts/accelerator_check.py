"""Everything this project has never measured on an accelerator, in one call and one JSON report.

  bash scripts/accelerator_check.sh [--out accelerator_check.json] [--tiny] [--sections a,b]

A person with one GPU or TPU host runs this once, with the JAX installed there and no
internet. It is one process on purpose: every extra process would import JAX and compile again.

  environment      devices, versions, XLA flags, jax.print_environment_info()
  sweep            the three MSG-GAN rows of `python -m gans.bench --sweep` (depth 4/6/7 at batch
                   64/32/16, bf16) against their targets: twice the best-effort PyTorch figure on
                   one H100 (shared/bench/reference.md)
  fused_vs_single  the depth-4 row as one lax.scan per dispatch and as single-step dispatches
  bf16_vs_f32      the depth-4 row in float32 beside its bf16 figure
  digits_run       the default job (configs/msggan_digits.py) for 500 steps, uninterrupted
  digits_resume    the same 500 steps as 250, then a resume to 500 in another workdir, compared
                   with the uninterrupted run; both runs' step-250 checkpoints are compared too,
                   which tells a resume fault from ops that are not deterministic run to run
  digits_eval      the final checkpoint: the method's own numbers, and FID/KID in the features of
                   a digit classifier trained here (configs/classifier_digits.py), since the
                   Inception weights cannot be fetched offline

Each part records its wall time, or instead of its numbers its exception as a string, and the
report is rewritten after every part: one failing part loses nothing else, and a kill keeps what
was measured. Compilation starts cold (the persistent cache is a new folder in the workdir) so
compile times are first-start times; the resume's second start reads that cache, as a restart
does. --tiny runs every part at the configs' `tiny` sizes: the CPU test of this script.
"""
import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# What gans imports at start-up (tensorflow_datasets and h5py only for data this script never
# reads). Importing them, not just finding them, also catches a missing dependency of theirs.
MODULES = ('numpy', 'jax', 'flax', 'optax', 'orbax.checkpoint', 'ml_collections', 'tensorboardX',
           'etils.epath', 'absl', 'PIL', 'sklearn')
PIP_NAMES = {'PIL': 'pillow', 'sklearn': 'scikit-learn', 'absl': 'absl-py',
             'orbax': 'orbax-checkpoint', 'ml_collections': 'ml-collections'}
VERSIONS = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'ml-collections', 'numpy',
            'tensorboardX', 'etils')
PICK = ('images_per_s', 's_per_kimg', 'step_ms', 'compile_s', 'mfu_necessary', 'peak_memory_mb')
TARGETS = ('images/s to beat: twice the best-effort PyTorch column (bf16 autocast + '
           'torch.compile) on one H100, shared/bench/reference.md; the H200 has the H100\'s '
           'compute rates. In --tiny mode the rows are tiny models and the targets do not apply.')
PEAK_MEMORY = ('peak_memory_mb is the process\'s peak so far (JAX has no reset): each row after '
               'a larger one reports at least that one\'s peak')


@dataclasses.dataclass(frozen=True)
class Scale:
  variant: str  # the configs' variant: '' (as given) or 'tiny'
  repeats: int  # timed dispatches per benchmark; bench reports their median
  digits_steps: int  # the digits run's length; the resume splits it in half
  eval_samples: int  # generated images scored by the classifier features
  bench_overrides: tuple = ()  # (key, value) pairs over every benchmark's config


# Tiny benchmarks run short dispatches: the fused scan is ~30x slower per step on XLA:CPU.
SCALES = {'full': Scale('', 10, 500, 5000),
          'tiny': Scale('tiny', 2, 20, 100, (('batch_size', 8), ('steps_per_dispatch', 2)))}


def missing_packages(modules=MODULES):
  """Pip names of what cannot be imported: found in one line before any work, rather than as a
  traceback minutes into the run."""
  missing = []
  for module in modules:
    try:
      importlib.import_module(module)
    except ImportError as e:
      top = (e.name or module).split('.')[0]
      name = PIP_NAMES.get(top, top.replace('_', '-'))
      if name not in missing:
        missing.append(name)
  return missing


def pinned(names):
  """NAME==VERSION as requirements.txt pins it (the version the tests ran), else NAME."""
  with open(os.path.join(ROOT, 'requirements.txt')) as f:
    pins = re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)', f.read(), re.M)
  key = lambda name: re.sub(r'[-_.]+', '-', name).lower()
  pins = {key(name): version for name, version in pins}
  return [f'{n}=={pins[key(n)]}' if key(n) in pins else n for n in names]


def missing_message(names):
  return (f'error: this Python cannot import {", ".join(names)}, which the trainer needs. The '
          'machine has no internet: where pip reaches PyPI, run `python3 -m pip download '
          f'--no-deps --only-binary=:all: -d .whl {" ".join(pinned(names))}` in the checkout '
          '(add --python-version and --platform of that machine for compiled packages), bring '
          '.whl/ along, and run scripts/accelerator_check.sh, which installs .whl/*.whl first')


class Report:
  """The JSON report, rewritten whole through a temporary file after every part: a kill keeps
  what was measured and never leaves half a file."""

  def __init__(self, path, mode, workdir):
    self.path, self.t0 = path, time.perf_counter()
    self.data = {'report': 'accelerator check (issue 12)', 'mode': mode,
                 'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                 'workdir': workdir, 'complete': False, 'errors': 0, 'wall_s': 0.0,
                 'sections': {}}

  def save(self):
    self.data['wall_s'] = round(time.perf_counter() - self.t0, 2)
    self.data['errors'] = len(list(errors(self.data['sections'])))
    with open(f'{self.path}.tmp', 'w') as f:
      json.dump(self.data, f, indent=2, default=str)
    os.replace(f'{self.path}.tmp', self.path)

  def run(self, name, fn, check):
    entry = measured(fn, check)
    self.data['sections'][name] = entry
    self.save()
    print(f'{name}: {entry["error"] or "ok"} ({entry["wall_s"]} s)', flush=True)


def measured(fn, *args):
  """fn(*args)'s dict with its wall time, or the exception as a string in place of the numbers,
  so that one failing part neither loses nor stops the others."""
  t0 = time.perf_counter()
  try:
    entry = {**fn(*args), 'error': None}
  except Exception as e:  # pylint: disable=broad-except
    entry = {'error': f'{type(e).__name__}: {e}', 'traceback': traceback.format_exc()[-4000:]}
  return {**entry, 'wall_s': round(time.perf_counter() - t0, 2)}


def errors(tree):
  """Every error string in a report's sections, nested ones (sweep rows) included."""
  if isinstance(tree, dict):
    if tree.get('error'):
      yield tree['error']
    for value in tree.values():
      yield from errors(value)
  elif isinstance(tree, list):
    for value in tree:
      yield from errors(value)


@dataclasses.dataclass
class Check:
  """What the parts share: the scale, the workdir, the report, and the benchmarks measured so
  far (the comparisons reuse the sweep's depth-4 row instead of compiling it again)."""
  scale: Scale
  workdir: str
  report: Report
  benchmarks: dict = dataclasses.field(default_factory=dict)

  def path(self, name):
    return os.path.join(self.workdir, name)

  def label(self, path):
    return f'{path}:{self.scale.variant}' if self.scale.variant else path


def environment(check):
  import jax
  devices = jax.devices()
  memory = devices[0].memory_stats() or {}
  return {'backend': jax.default_backend(), 'device_kind': devices[0].device_kind,
          'device_count': jax.device_count(), 'process_count': jax.process_count(),
          'device_memory_gb': round(memory['bytes_limit'] / 2 ** 30, 2)
                              if 'bytes_limit' in memory else None,
          'python': platform.python_version(), 'versions': versions(),
          'xla_flags': os.environ.get('XLA_FLAGS', ''),
          'compilation_cache': check.path('jax_cache'),
          'jax_environment_info': jax.print_environment_info(return_string=True)}


def versions():
  """The packages that decide what runs: the stack, and every jax plugin (CUDA, TPU) there."""
  from importlib import metadata
  plugins = {d.metadata['Name'] for d in metadata.distributions()
             if (d.metadata['Name'] or '').lower().startswith(('jax-', 'jax_', 'libtpu'))}
  found = {}
  for name in (*VERSIONS, *sorted(plugins)):
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      found[name] = None
  return found


def target_rows():
  """bench.SWEEP's rows that have a PyTorch target: MSG-GAN at depth 4, 6 and 7."""
  from gans import bench
  return [row for row in bench.SWEEP if row[2] is not None]


def benchmark(check, path, overrides, fused=None):
  """bench.benchmark of a SWEEP row (with extra overrides) as one lax.scan per dispatch or as
  single-step dispatches (None: trainer.Dispatch's default, fused on accelerators); measured
  once per process."""
  import jax
  from gans import bench
  fused = jax.default_backend() != 'cpu' if fused is None else fused
  overrides = {**overrides, **dict(check.scale.bench_overrides)}
  key = (path, json.dumps(overrides, sort_keys=True), fused)
  if key not in check.benchmarks:
    file = os.path.join(ROOT, path) + (f':{check.scale.variant}' if check.scale.variant else '')
    check.benchmarks[key] = bench.benchmark(bench.load_config(file, overrides),
                                            check.scale.repeats, fused=fused)
  return check.benchmarks[key]


def sweep(check):
  rows = []
  check.report.data['sections']['sweep'] = {'rows': rows}  # saved row by row as they finish
  for path, overrides, target in target_rows():
    rows.append(measured(sweep_row, check, path, overrides, target))
    check.report.save()
    print(f'  {rows[-1].get("config", path)}: {rows[-1].get("images_per_s")} img/s '
          f'(target {target:,}) {rows[-1]["error"] or ""}', flush=True)
  return {'rows': rows, 'targets': TARGETS, 'peak_memory': PEAK_MEMORY,
          'all_met': all(r.get('met_target') for r in rows)}


def sweep_row(check, path, overrides, target):
  r = benchmark(check, path, overrides)
  return {'config': check.label(path), 'target_images_per_s': target,
          'met_target': r['images_per_s'] >= target, **r}


def compared(check, a, b, names):
  """Two benchmark results side by side, and the ratio of their images/s."""
  return {'config': check.label(target_rows()[0][0]), 'batch': a['batch'],
          'steps_per_dispatch': a['steps_per_dispatch'],
          names[0]: {k: a[k] for k in PICK}, names[1]: {k: b[k] for k in PICK},
          f'{names[0]}_over_{names[1]}': float(f"{a['images_per_s'] / b['images_per_s']:.4g}")}


def fused_vs_single(check):
  path, overrides, _ = target_rows()[0]
  fused, single = (benchmark(check, path, overrides, f) for f in (True, False))
  return {**compared(check, fused, single, ('fused', 'single')), 'dtype': fused['dtype']}


def bf16_vs_f32(check):
  path, overrides, _ = target_rows()[0]
  bf16 = benchmark(check, path, overrides)
  f32 = benchmark(check, path, {**overrides, 'model.dtype': 'float32'})
  return {**compared(check, bf16, f32, ('bf16', 'f32')), 'fused_scan': bf16['fused_scan']}


def train_config(check, name, **overrides):
  """configs/<name>.py at this scale's variant, with dotted overrides."""
  config = importlib.import_module(f'configs.{name}').get_config(check.scale.variant)
  config.update_from_flattened_dict(overrides)
  return config


def digits_config(check, steps):
  """The default job for `steps` steps, with a checkpoint halfway for the resume to compare."""
  return train_config(check, 'msggan_digits', num_steps=steps,
                      checkpoint_every=check.scale.digits_steps // 2)


def digits_run(check):
  from gans import logs, trainer
  total = check.scale.digits_steps
  config = digits_config(check, total)
  t0 = time.perf_counter()
  trainer.train(config, check.path('digits'))
  train_s = time.perf_counter() - t0
  timed = [r for r in logs.read_metrics(check.path('digits')) if 'images_per_s' in r]
  return {'config': check.label('configs/msggan_digits.py'), 'steps': total,
          'batch': config.batch_size, 'steps_per_dispatch': config.steps_per_dispatch,
          'train_s': round(train_s, 2),
          'images_per_s_logged_median': round(statistics.median(
              r['images_per_s'] for r in timed), 1),
          'images_per_s_end_to_end': round(total * config.batch_size / train_s, 1),
          'compile_s': round(timed[-1]['compile_s'], 2),
          'd_loss': timed[-1]['d_loss'], 'g_loss': timed[-1]['g_loss'],
          'workdir': check.path('digits')}


def digits_resume(check):
  from gans import trainer
  total, split = check.scale.digits_steps, check.scale.digits_steps // 2
  resumed = check.path('digits_resumed')
  trainer.train(digits_config(check, split), resumed)
  trainer.train(digits_config(check, total), resumed)  # resumes from step `split`
  at_split = compare(check.path('digits'), resumed, split)
  at_end = compare(check.path('digits'), resumed, total)
  return {'how': f'split: {split} steps, then the same job with num_steps={total} in that '
                 'workdir (a resume from its checkpoint), against the uninterrupted run',
          'split_at': split, 'steps': total, 'resume_bitwise': at_end['bitwise_equal'],
          'deterministic_to_split': at_split['bitwise_equal'],
          'max_abs_diff': at_end['max_abs_diff'], 'verdict': verdict(at_split, at_end),
          'resumed_vs_uninterrupted': at_end, 'two_runs_at_split': at_split}


def compare(workdir_a, workdir_b, step):
  """How far the two workdirs' checkpoints of `step` are apart, array by array."""
  import numpy as np
  a, b = state_arrays(workdir_a, step), state_arrays(workdir_b, step)
  differing = [k for k in a if not np.array_equal(a[k], b[k])]
  diff = max((float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in differing),
             default=0.0)
  return {'step': step, 'bitwise_equal': not differing, 'max_abs_diff': diff,
          'arrays': len(a), 'arrays_differing': len(differing), 'first_differing': differing[:5]}


def state_arrays(workdir, step):
  import jax
  import numpy as np
  from gans import checkpoint
  _, state = checkpoint.load(workdir, step)
  host = lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
      x.dtype, jax.dtypes.prng_key) else x)
  return {jax.tree_util.keystr(p): host(x)
          for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}


def verdict(at_split, at_end):
  if at_end['bitwise_equal']:
    return 'bitwise: the resumed run ends exactly where the uninterrupted one does'
  if not at_split['bitwise_equal']:
    return ('not bitwise, but two runs already differ before any resume: this device\'s ops '
            'are not deterministic run to run; max_abs_diff is that noise plus any resume error')
  return ('not bitwise although two runs agree bitwise up to the split: the resume changes the '
          'run (a fault)')


def digits_eval(check):
  from gans import evaluation, logs, trainer
  from gans.metrics import extractors
  run, judge = check.path('digits'), check.path('classifier')
  own = evaluation.method_scores(run, write=False)
  config = train_config(check, 'classifier_digits')
  t0 = time.perf_counter()
  trainer.train(config, judge)
  train_s = time.perf_counter() - t0
  accuracy = [r['eval_accuracy'] for r in logs.read_metrics(judge) if 'eval_accuracy' in r]
  options = evaluation.Options(metrics=('fid', 'kid'), num_samples=check.scale.eval_samples,
                               stats_dir=check.path('stats'))
  record = evaluation.score_checkpoint(run, extractors.classifier(judge), options)
  return {'why': 'the Inception weights cannot be fetched offline, so the metrics are in the '
                 'features of a digit classifier trained here (fid_classifier is not FID); '
                 'it trains in seconds on an accelerator',
          'step': record['step'],
          'method_scores': {k: v['value'] for k, v in own['metrics'].items()},
          'classifier': {'config': check.label('configs/classifier_digits.py'),
                         'steps': config.num_steps, 'train_s': round(train_s, 2),
                         'eval_accuracy': accuracy[-1]},
          'metrics': record['metrics'], 'evaluate_s': record['seconds']}


SECTIONS = {'sweep': sweep, 'fused_vs_single': fused_vs_single, 'bf16_vs_f32': bf16_vs_f32,
            'digits_run': digits_run, 'digits_resume': digits_resume,
            'digits_eval': digits_eval}


def section_list(text):
  names = [n.strip() for n in text.split(',') if n.strip()]
  unknown = [n for n in names if n not in SECTIONS]
  if unknown:
    raise argparse.ArgumentTypeError(f'unknown section {unknown[0]!r}; choose from '
                                     f'{",".join(SECTIONS)}')
  return names


def parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='accelerator_check.json', help='the JSON report')
  parser.add_argument('--tiny', action='store_true', help='every part at the smallest sizes')
  parser.add_argument('--sections', type=section_list, default=list(SECTIONS),
                      help=f'a comma list of {",".join(SECTIONS)} (default: all; the digits '
                      'parts after digits_run read its workdir)')
  parser.add_argument('--workdir', help='a new or empty folder for the runs (default: a new '
                      'temporary one)')
  return parser.parse_args(argv)


def make_workdir(path):
  if path is None:
    return tempfile.mkdtemp(prefix='accelerator_check_')
  if os.path.isdir(path) and os.listdir(path):
    print(f'error: --workdir {path} is not empty; pass a new folder (a run there would resume)',
          file=sys.stderr)
    sys.exit(2)
  os.makedirs(path, exist_ok=True)
  return os.path.abspath(path)


def main(argv=None):
  args = parse(argv)
  missing = missing_packages()
  if missing:
    print(missing_message(missing), file=sys.stderr)
    return 2
  out, workdir = os.path.abspath(args.out), make_workdir(args.workdir)
  os.environ['GANS_COMPILATION_CACHE'] = os.path.join(workdir, 'jax_cache')
  from absl import logging
  from gans import cli
  logging.set_verbosity(logging.WARNING)  # orbax narrates every save at INFO
  cli.enable_compilation_cache()
  check = Check(SCALES['tiny' if args.tiny else 'full'], workdir,
                Report(out, 'tiny' if args.tiny else 'full', workdir))
  check.report.run('environment', environment, check)
  for name in args.sections:
    check.report.run(name, SECTIONS[name], check)
  check.report.data['complete'] = True
  check.report.save()
  print(f'{check.report.data["errors"]} errors in {check.report.data["wall_s"]} s; report {out}')
  return 1 if check.report.data['errors'] else 0


if __name__ == '__main__':
  sys.exit(main())
