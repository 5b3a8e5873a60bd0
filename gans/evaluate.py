"""Metrics of a trained generator against its dataset: FID, KID, IS, precision/recall.

The generated side: `num_samples` latents from a fixed seed, the EMA generator, the method's
eval sets (`eval_sets` hook; MSG-GAN adds one set per lower scale; coupled models are scored
once per domain, `eval_domains`, against that domain's stream), quantised to uint8, through
the extractor: one jitted computation per batch, the batch sharded over every device of every
process. The batch count is rounded up and the surplus rows dropped, so exactly num_samples
images are scored. The real side goes through the same quantise -> extractor path, read from
the run's own data config (the full split unless --num_real), its last batch padded and the
padding dropped; its features are computed once and cached in a file named by dataset, split,
resolution and extractor (with a hash of everything else that changes them).

Every number is stored with the sample count, the reference set and the extractor that made
it, in DIR/eval/<step>.json (merged with what an earlier evaluation of that step wrote).
"""
import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import time

import jax
import numpy as np
from etils import epath

from gans import checkpoint, figures, logs, methods, parallel
from gans import workdir as workdir_lib
from gans.errors import UserError
from gans.metrics import extractors, fid, inception_score, kid, parse_metrics, precision_recall

@dataclasses.dataclass(frozen=True)
class Options:
  metrics: tuple = ('fid', 'kid')
  num_samples: int = 50_000
  num_real: int = 0  # 0: the whole split (fid50k_full)
  batch_size: int = 200  # rounded up to a multiple of the device count
  seed: int = 0
  stats_dir: str = ''  # '' -> $GANS_STATS_DIR, else ~/.cache/gans/stats (one process) or
                      # the run's eval/reference (several: every host must find the cache)
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  is_splits: int = 10
  pr_k: int = 3
  per_scale: bool = True  # FID of the method's extra eval sets (each costs a headline's extraction)


def stats_dir(options):
  return options.stats_dir or os.environ.get('GANS_STATS_DIR') or os.path.join(
      os.path.expanduser('~'), '.cache', 'gans', 'stats')


def shared_stats(options, workdir):
  """Options whose feature cache every process can read: each host has its own ~/.cache, so
  with several processes (or in training) the default is the run's own eval/reference."""
  if options.stats_dir or os.environ.get('GANS_STATS_DIR'):
    return options
  return dataclasses.replace(options, stats_dir=str(epath.Path(workdir) / 'eval' / 'reference'))


def _sets(method, config, images, real, domain=None):
  hook = method.real_eval_sets if real else method.eval_sets
  if hook:
    return hook(config, images) if domain is None else hook(config, images, domain)
  if not hasattr(images, 'shape'):
    raise UserError(f'{config.method} generates {type(images).__name__}s, not images: it needs '
                    'an eval_sets hook (see gans/methods/__init__.py) to be evaluated')
  return {'': images}


def _batch(options, mesh):
  n = mesh.devices.size
  return -(-options.batch_size // n) * n


def _extract_fn(method, config, extractor, mesh, batch, real, extra_sets=True, domain=None):
  """jit(state, params, x) -> {set: (features, logits)}, replicated out; x = images or key."""
  sharding = parallel.batch_sharding(mesh)

  def fn(state, params, x):
    if real:
      images = x.astype(np.float32) * (2.0 / 255.0) - 1.0
    else:
      z = jax.lax.with_sharding_constraint(method.sample_latents(config, x, batch), sharding)
      images = method.generate(config, state, z)
    sets = _sets(method, config, images, real, domain)
    sets = {k: v for k, v in sets.items() if extra_sets or not k}
    return {name: extractor.apply(params, extractors.quantize(s)) for name, s in sets.items()}

  return jax.jit(fn, out_shardings=parallel.replicated(mesh))


def _tag(text):
  """A file-name-safe form of a dataset name or split ('train[:80%]' -> 'train-80')."""
  return re.sub(r'[^A-Za-z0-9.]+', '-', text.replace('tfds:', '')).strip('-')


@dataclasses.dataclass
class FeatureSet:
  """What the metrics need of one side: the headline set's features (and logits), and for
  every other set only its Gaussian (mean, covariance, count), so per-scale FID over 50k
  samples at many scales does not hold every scale's features in memory."""
  features: np.ndarray
  logits: np.ndarray
  gaussians: dict


class _Collector:

  def __init__(self):
    self.features, self.logits, self.moments = [], [], {}

  def add(self, out, keep):
    for name, (f, l) in out.items():
      if name:
        self.moments.setdefault(name, fid.Moments()).add(f[:keep])
      else:
        self.features.append(f[:keep])
        self.logits.append(l[:keep])

  def result(self):
    gaussians = {k: (*m.gaussian(), m.count) for k, m in self.moments.items()}
    return FeatureSet(np.concatenate(self.features), np.concatenate(self.logits), gaussians)


def _save(path, fs):
  arrays = {'features': fs.features}
  for name, (mean, cov, count) in fs.gaussians.items():
    arrays.update({f'mean_{name}': mean, f'cov_{name}': cov, f'count_{name}': count})
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  workdir_lib.write_atomically(path, buffer.getvalue())


def _load(path):
  with np.load(io.BytesIO(epath.Path(path).read_bytes())) as z:
    names = [k[len('mean_'):] for k in z.files if k.startswith('mean_')]
    return FeatureSet(z['features'], None, {n: (z[f'mean_{n}'], z[f'cov_{n}'],
                                                int(z[f'count_{n}'])) for n in names})


def _batches(what, n, batch):
  """(start, size) of each batch of an n-image extraction, with a progress line on process 0's
  stderr: 50k images take minutes. A terminal redraws it every batch; a log file gets a line
  every tenth of the way or every 10 s, the last one included, not one per batch. The rate is
  timed from the end of the first batch, whose time is mostly compilation."""
  progress = logs.Progress(n, 1, stream=sys.stderr, enabled=jax.process_index() == 0,
                           label=f'features of {what}')
  t0 = time.time()
  origin, shown = None, (0, t0)  # (images, time) at the first batch's end and the last line
  for start in range(0, n, batch):
    size = min(batch, n - start)
    yield start, size
    done, now = start + size, time.time()
    since = origin or (0, t0)
    origin = origin or (done, now)
    if progress.tty or 10 * done // n > 10 * shown[0] // n or now - shown[1] >= 10:
      progress.update(done, (done - since[0]) / max(now - since[1], 1e-9), {})
      shown = (done, now)
  progress.close()


def domains(method, config):
  """The image domains a method is scored in: (None,) for one, else its eval_domains."""
  return tuple(method.eval_domains(config)) if method.eval_domains else (None,)


def reference_features(method, config, extractor, mesh, options, domain=None):
  """(FeatureSet, description, cache path) of the run's dataset (of `domain`'s stream), cached
  per dataset, split, resolution and extractor."""
  r, _, c = method.image_shape(config)
  source = method.sources(config)
  if domain is not None:
    source = source[domain]
  if not hasattr(source, 'resolution'):
    raise UserError(f'{config.method} trains on several data streams; its evaluation needs '
                    'eval_domains (see gans/methods/__init__.py)')
  n = len(source) if options.num_real <= 0 else min(options.num_real, len(source))
  split = config.data.get('split', 'train') if config.data.name != 'folder' else 'all'
  description = (f'{source.name} split={split} {r}x{r}x{c}, first {n} of {len(source)} '
                 f'({"full split" if n == len(source) else "subset"}), no flips')
  what = f'reals {source.name} {split}'
  if domain is not None:
    description, what = f'domain {domain}: {description}', f'{what} domain {domain}'

  identity = {k: v for k, v in extractor.info.items() if k != 'weights'}  # digest, not path
  key = json.dumps([source.name, config.data.get('path', ''), config.data.get('data_dir'),
                    split, r, c, config.data.get('center_crop', 0),
                    config.data.get('percentage', 100.0), n, extractor.name, identity,
                    method.name, domain], sort_keys=True)
  name = (f'{_tag(source.name)}_{_tag(split)}_{r}px_{extractor.name}_n{n}_'
          f'{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz')
  path = epath.Path(stats_dir(options)) / name
  if parallel.everyone(path.exists()):
    return _load(path), description, str(path)
  batch = _batch(options, mesh)
  fn = _extract_fn(method, config, extractor, mesh, batch, real=True, domain=domain)
  sharding = parallel.batch_sharding(mesh)
  params = jax.tree.map(lambda a: parallel.replicate(mesh, np.asarray(a)), extractor.params)
  collector = _Collector()
  for start, size in _batches(what, n, batch):
    idx = np.arange(start, start + size)
    padded = np.concatenate([idx, np.full(batch - len(idx), idx[0])])
    x = parallel.global_array(sharding, (batch, r, r, c), lambda rows: source[padded[rows]], 0)
    collector.add(parallel.to_host(fn(None, params, x)), size)
  result = collector.result()
  if jax.process_index() == 0:
    _save(path, result)
  return result, description, str(path)


def generated_features(method, config, state, extractor, mesh, options, domain=None):
  """FeatureSet of exactly options.num_samples EMA-generator samples (surplus rows dropped),
  of `domain` for a method with several.

  The reals always get every set (the cache stays complete); the samples only when scored."""
  batch = _batch(options, mesh)
  extra = options.per_scale and 'fid' in options.metrics
  fn = _extract_fn(method, config, extractor, mesh, batch, real=False, extra_sets=extra,
                   domain=domain)
  params = jax.tree.map(lambda a: parallel.replicate(mesh, np.asarray(a)), extractor.params)
  base = jax.random.PRNGKey(options.seed)
  what = f'samples step {int(parallel.to_host(state.step))}'
  if domain is not None:
    what = f'{what} domain {domain}'
  collector = _Collector()
  for start, size in _batches(what, options.num_samples, batch):
    collector.add(parallel.to_host(fn(state, params, jax.random.fold_in(base, start // batch))),
                  size)
  return collector.result()


def scores(metrics, real, fake, suffix, options, reference=''):
  """{key: entry} for the requested metrics of two FeatureSets; the extra sets get FID only,
  as fid<suffix>_<set>."""
  out = {}
  if 'fid' in metrics:
    for name in sorted(fake.gaussians):
      (m1, c1, n1), (m2, c2, n2) = real.gaussians[name], fake.gaussians[name]
      out[f'fid{suffix}_{name}'] = {
          'value': fid.frechet_distance(m1, c1, m2, c2), 'num_fake': n2, 'num_real': n1,
          'reference': f'{reference}; set {name!r} of the method\'s real_eval_sets'}
  r, f = real.features, fake.features
  counts = {'num_fake': len(f), 'num_real': len(r), 'reference': reference}
  if 'fid' in metrics:
    out[f'fid{suffix}'] = {'value': fid.fid(r, f), **counts}
  if 'kid' in metrics:
    mean, std, m = kid.kid(r, f, options.kid_subsets, options.kid_subset_size, options.seed)
    out[f'kid{suffix}'] = {'value': mean, 'std': std, 'subsets': options.kid_subsets,
                           'subset_size': m, **counts}
  if 'is' in metrics:
    mean, std = inception_score.inception_score(fake.logits, options.is_splits)
    out[f'is{suffix}'] = {'value': mean, 'std': std, 'splits': options.is_splits,
                          'num_fake': len(fake.logits)}  # no reference set
  if 'pr' in metrics:
    # Kynkaanniemi et al. use VGG-16 features; these are the extractor's, hence the name.
    space = suffix.strip('_') or 'inception'
    p, rc = precision_recall.precision_recall(r, f, options.pr_k)
    out[f'precision_{space}'] = {'value': p, 'k': options.pr_k, **counts}
    out[f'recall_{space}'] = {'value': rc, 'k': options.pr_k, **counts}
  return out


def evaluate(workdir, extractor, options, step=None, loaded=None, write=True):
  """Score one checkpoint of a workdir; returns the record written to DIR/eval/<step>.json.

  `loaded` = (config, state) of that checkpoint skips the restore (training passes its state).
  """
  config, state = loaded or checkpoint.load(workdir, step)
  method = methods.get(config.method)
  mesh = parallel.make_mesh()
  metrics = parse_metrics(options.metrics)
  if jax.process_count() > 1:
    options = shared_stats(options, workdir)
  t0 = time.time()
  results, caches = {}, []
  for domain in domains(method, config):  # coupled models: every metric per domain, as _a, _b
    real, reference, cache = reference_features(method, config, extractor, mesh, options, domain)
    fake = generated_features(method, config, state, extractor, mesh, options, domain)
    out = scores(metrics, real, fake, extractor.suffix, options, reference)
    results.update(out if domain is None else {f'{k}_{domain}': v for k, v in out.items()})
    caches.append(cache)
  for entry in results.values():
    entry['extractor'] = extractor.name
  rule = 'latest' if step is None else 'asked for'
  step = int(parallel.to_host(state.step))
  record = {'step': step, 'checkpoint': rule,
            'generator': 'EMA', 'seed': options.seed, 'metrics': results,
            'extractors': {extractor.name: extractor.info},
            'reference_cache': caches[0] if len(caches) == 1 else caches,
            'seconds': round(time.time() - t0, 1)}
  if write and jax.process_index() == 0:
    record = _merge(os.path.join(workdir, 'eval', f'{step}.json'), record)
  return record


def scoreable(method):
  """Whether eval.py runs FID & co. by default: the method names its image sets (eval_sets).
  The classifier is judged by its accuracy alone."""
  return method.eval_sets is not None


def method_scores(workdir, step=None, loaded=None, write=True):
  """The method's own numbers for one checkpoint, written like the metrics: its evaluate hook
  (coupled pair agreement, the classifier's held-out accuracy) and the progress-line scalars
  it logged (BEGAN's M and k, the GAN losses) at that step and at the first log line."""
  config, state = loaded or checkpoint.load(workdir, step)
  method = methods.get(config.method)
  step = int(parallel.to_host(state.step))
  results = {}
  if method.evaluate:
    for name, value in method.evaluate(config, state).items():
      results[name] = {'value': float(value), 'reference': f'{config.method}.evaluate'}
  rows = [r for r in logs.read_metrics(workdir) if r['step'] <= step]
  for name in method.progress:
    logged = [r for r in rows if name in r]
    if logged:
      for label, row in (('logged', logged[-1]), ('first_logged', logged[0])):
        results[f'{name}_{label}'] = {'value': row[name],
                                      'reference': f'metrics.jsonl, step {row["step"]}'}
  record = {'step': step, 'metrics': results, 'extractors': {}}
  if write and results and jax.process_index() == 0:
    record = _merge(os.path.join(workdir, 'eval', f'{step}.json'), record)
  return record


def _merge(path, record):
  """Write record into path, keeping the metrics an earlier evaluation of that step wrote."""
  path = epath.Path(path)
  if path.exists():
    old = json.loads(path.read_text())
    record = {**old, **record, 'metrics': {**old.get('metrics', {}), **record['metrics']},
              'extractors': {**old.get('extractors', {}), **record['extractors']}}
  workdir_lib.write_atomically(path, json.dumps(record, indent=2, sort_keys=True).encode())
  return record


def table(record, workdir=''):
  """The record's metrics as aligned text, one row per number with its counts and reference."""
  rows = [('metric', 'value', '+-std', 'N fake', 'N real', 'reference')]
  for key, e in sorted(record['metrics'].items()):
    rows.append((key, f'{e["value"]:.6g}', f'{e["std"]:.3g}' if 'std' in e else '',
                 str(e.get('num_fake', '')), str(e.get('num_real', '')), e.get('reference', '')))
  widths = [max(len(r[i]) for r in rows) for i in range(5)]
  lines = [f'{workdir} step {record["step"]}'.strip()]
  lines += ['  '.join(c.ljust(w) for c, w in zip(r[:5], widths)) + '  ' + r[5] for r in rows]
  return '\n'.join(lines)


_NOT_CURVES = ('step', 'images_per_s', 's_per_kimg', 'elapsed_s', 'compile_s')
_METRIC_PREFIXES = ('fid', 'kid', 'is_', 'precision', 'recall')


def _is_metric(key):
  return key == 'is' or key.startswith(_METRIC_PREFIXES)


def curve_figures(workdir):
  """losses.png and training_scalars.png from metrics.jsonl, metrics.png from the metrics
  logged in training and the eval/<step>.json files. Returns the paths written."""
  out = os.path.join(workdir, 'figures')
  series, paths = {}, []
  for record in logs.read_metrics(workdir):
    for key, value in record.items():
      if key not in _NOT_CURVES:
        series.setdefault(key, ([], []))
        series[key][0].append(record['step'])
        series[key][1].append(value)
  evals = epath.Path(workdir) / 'eval'
  for file in sorted(evals.glob('*.json')) if evals.is_dir() else ():
    record = json.loads(file.read_text())
    for key, entry in record.get('metrics', {}).items():
      series.setdefault(key, ([], []))
      series[key][0].append(record['step'])
      series[key][1].append(entry['value'])
  groups = {'losses': lambda k: k.endswith('loss'), 'metrics': _is_metric,
            'training_scalars': lambda k: not k.endswith('loss') and not _is_metric(k)}
  for title, belongs in groups.items():
    chosen = {}
    for k, (x, y) in sorted(series.items()):
      if belongs(k):
        order = np.argsort(x, kind='stable')
        chosen[k] = (np.asarray(x)[order], np.asarray(y)[order])
    if chosen:
      paths.append(figures.line_chart(chosen, os.path.join(out, f'{title}.png'), title))
  return paths


def interpolation_figure(method, config, state, path, seed=0, rows=6, steps=10):
  """Slerp walks between `rows` pairs of latents, `steps` images each, from the EMA generator
  (the method's headline eval set, e.g. MSG-GAN's full resolution)."""
  mesh = parallel.make_mesh()
  ka, kb = jax.random.split(jax.random.PRNGKey(seed))
  a = parallel.to_host(method.sample_latents(config, ka, rows))
  b = parallel.to_host(method.sample_latents(config, kb, rows))
  z = figures.slerp_walk(a, b, steps).reshape(rows * steps, -1)
  generate = jax.jit(lambda s, z: _sets(method, config, method.generate(config, s, z), False)[''],
                     out_shardings=parallel.replicated(mesh))
  images = parallel.to_host(generate(state, parallel.replicate(mesh, z)))
  if jax.process_index() == 0:
    figures.save_grid(images, path, ncol=steps)
  return path


def draw_figures(workdir, step=None, sheet_samples=64, seed=0):
  """Every figure the workdir supports, into DIR/figures/: the method's sample sheets, loss
  and metric curves, and the method's own figures (its `figures` hook, e.g. BEGAN's M curve
  and interpolations), or else slerp interpolations. Returns the paths written."""
  config, state = checkpoint.load(workdir, step)
  method = methods.get(config.method)
  step = int(parallel.to_host(state.step))
  tag = f'step_{step:08d}'
  out = os.path.join(workdir, 'figures')
  latents = method.sample_latents(config, jax.random.PRNGKey(seed), sheet_samples)
  paths = figures.write_samples(method, config, state, latents, out, tag)
  if method.figures:
    paths += method.figures(config, state, workdir)
  else:
    paths.append(interpolation_figure(method, config, state,
                                      os.path.join(out, 'interpolation', f'{tag}.png'), seed))
  if jax.process_index() == 0:
    paths += curve_figures(workdir)
  return paths


def make_extractors(names, inception_path=None, classifier_dir=None):
  """Extractors by name ('inception', 'classifier'), with one-line errors for what is missing."""
  out = []
  for name in names:
    if name == 'inception':
      out.append(extractors.inception(inception_path))
    elif name == 'classifier':
      if not classifier_dir:
        raise UserError('--extractor classifier needs --classifier=DIR, the workdir of a '
                        'classifier trained with the project (configs/classifier_*.py)')
      out.append(extractors.classifier(classifier_dir))
    else:
      raise UserError(f'unknown extractor {name!r}; choose inception or classifier')
  return out


class DuringTraining:
  """The metrics of config.eval, every config.eval.every steps of a run; every process calls it.

  The extractor is built at start-up, so a missing weights file stops the run before training
  rather than at the first evaluation. Returns {name: value} for the metric writer.
  """

  def __init__(self, config, workdir):
    e = config.eval
    self.workdir, self.config = workdir, config
    self.options = shared_stats(Options(metrics=parse_metrics(e.metrics),
                                        num_samples=e.num_samples, batch_size=e.batch_size,
                                        seed=config.seed), workdir)
    self.extractor = make_extractors([e.extractor], e.inception or None, e.classifier or None)[0]

  def __call__(self, state):
    record = evaluate(self.workdir, self.extractor, self.options, loaded=(self.config, state))
    return {k: v['value'] for k, v in record['metrics'].items()}
