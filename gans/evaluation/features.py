"""Features of both sides of a metric: the run's reals (cached) and a seed's samples.

The generated side is `gans.sampling`'s uint8 images (the one way samples are made: latents of
fold_in(PRNGKey(seed), j) for batch j, the method's eval sets, quantised), each batch then
through the extractor in a second jit, the batch sharded over every device of every process.
The batch is rounded up to a multiple of the device count and the surplus rows dropped, so
exactly num_samples images are scored. The real side goes through the same quantise ->
extractor path, read from the run's own data config (the full split unless --num_real), its
last batch padded and the padding dropped; its features are computed once and cached in a file
keyed on everything they depend on (see reference_key).
"""
import dataclasses
import io
import json
import os
import re
import sys
import time

import jax
import ml_collections
import numpy as np
from etils import epath

from gans import logs, parallel, sampling
from gans import workdir as workdir_lib
from gans.data import sources as sources_lib
from gans.errors import UserError
from gans.metrics import extractors, fid
from gans.models import frozen as frozen_models

# Part of every reference cache key: bump it when the features of the same images can change
# (the resize, the quantisation, the extractors' network code, the real side's image path).
CACHE_VERSION = 2


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


def make_extractors(names, inception_path=None, classifier_dir=None, convention=None):
  """Extractors by name ('inception', 'classifier'), with one-line errors for what is missing.
  `convention` is the Inception extractor's FID convention (None: its default)."""
  out = []
  for name in names:
    if name == 'inception':
      kw = {'convention': convention} if convention else {}
      out.append(extractors.inception(inception_path, **kw))
    elif name == 'classifier':
      if not classifier_dir:
        raise UserError('--extractor classifier needs --classifier=DIR, the workdir of a '
                        'classifier trained with the project (configs/classifier_*.py)')
      out.append(extractors.classifier(classifier_dir))
    else:
      raise UserError(f'unknown extractor {name!r}; choose inception or classifier')
  return out


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


def _save(path, fs, key):
  arrays = {'features': fs.features, 'key': np.asarray(key)}  # the key, to read back by eye
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


def _progress(what, n, batches):
  """The items of `batches` ((start, size, ...) of an n-image extraction), with a progress line
  on process 0's stderr: 50k images take minutes. A terminal redraws it every batch; a log file
  gets a line every tenth of the way or every 10 s, the last one included, not one per batch.
  The rate is timed from the end of the first batch, whose time is mostly compilation."""
  progress = logs.Progress(n, 1, stream=sys.stderr, enabled=jax.process_index() == 0,
                           label=f'features of {what}')
  t0 = time.time()
  origin, shown = None, (0, t0)  # (images, time) at the first batch's end and the last line
  for item in batches:
    yield item
    done, now = item[0] + item[1], time.time()
    since = origin or (0, t0)
    origin = origin or (done, now)
    if progress.tty or 10 * done // n > 10 * shown[0] // n or now - shown[1] >= 10:
      progress.update(done, (done - since[0]) / max(now - since[1], 1e-9), {})
      shown = (done, now)
  progress.close()


def domains(method, config: ml_collections.ConfigDict):
  """The image domains a method is scored in: (None,) for one, else its eval_domains."""
  return tuple(method.eval_domains(config)) if method.eval_domains else (None,)


def _plain(block):
  return block.to_dict() if hasattr(block, 'to_dict') else dict(block)


def data_identity(config: ml_collections.ConfigDict, domain=None):
  """The config blocks a domain's reals are read with: config.data, or for domain b of a pair
  with its own dataset config.data_b; with a domain, the pair block too (pad, transform,
  attribute, prune_classifier)."""
  data_b = config.get('data_b')
  if domain == 'b' and data_b is not None and data_b.get('name'):
    out = {'data_b': _plain(data_b)}
  else:
    out = {'data': _plain(config.data)}
  if domain is not None and config.get('pair') is not None:
    out['pair'] = _plain(config.pair)
  return out


def extractor_identity(extractor):
  """What identifies an extractor's features: its info (less the weights' path: their digest is
  there), its convention, and a digest of its parameters when no weights digest stands for
  them (a project classifier: retrained in the same workdir, it is another extractor)."""
  info = {k: v for k, v in extractor.info.items() if k != 'weights'}
  params = None if 'weights_sha256' in info else frozen_models.array_digest(extractor.params)
  return {'name': extractor.name, 'info': info, 'params_sha256': params,
          'convention': extractor.info.get('convention')}


def reference_key(method, config: ml_collections.ConfigDict, source, extractor, n, domain=None):
  """Everything the cached reference features depend on, as one JSON text: the cache version,
  the domain's data config blocks, the source's content fingerprint (files, sizes, times,
  dataset version), the image shape, the count, the extractor (weights or parameter digest,
  convention), the method (its real_eval_sets) and the domain."""
  r, _, c = method.image_shape(config)
  return json.dumps({'version': CACHE_VERSION, **data_identity(config, domain),
                     'source': source.name, 'fingerprint': source.fingerprint(),
                     'shape': [r, r, c], 'n': n, 'extractor': extractor_identity(extractor),
                     'method': method.name, 'domain': domain}, sort_keys=True, default=str)


def _same_everywhere(text):
  """Process 0's `text` on every process: each host may hold its own copy of a dataset, with
  its own file times, and all must agree on one cache file."""
  if jax.process_count() == 1:
    return text
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  raw = np.frombuffer(text.encode().ljust(64), np.uint8)
  return bytes(multihost_utils.broadcast_one_to_all(raw)).decode().strip()


def _real_extract_fn(method, config, extractor, mesh, domain):
  """jit(params, uint8 x) -> {set: (features, logits)}, replicated out, for real images."""

  def fn(params, x):
    images = x.astype(np.float32) * (2.0 / 255.0) - 1.0
    sets = sampling.image_sets(method, config, images, True, domain)
    return {name: extractor.apply(params, extractors.quantize(s)) for name, s in sets.items()}

  return jax.jit(fn, out_shardings=parallel.replicated(mesh))


def _params(mesh, extractor):
  return jax.tree.map(lambda a: parallel.replicate(mesh, np.asarray(a)), extractor.params)


def reference_features(method, config: ml_collections.ConfigDict, extractor, mesh, options,
                       domain=None):
  """(FeatureSet, description, cache path) of the run's dataset (of `domain`'s stream), cached
  under reference_key."""
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
  key = reference_key(method, config, source, extractor, n, domain)
  digest = _same_everywhere(sources_lib.digest(key)[:10])
  name = f'{_tag(source.name)}_{_tag(split)}_{r}px_{extractor.name}_n{n}_{digest}.npz'
  path = epath.Path(stats_dir(options)) / name
  if parallel.everyone(path.exists()):
    return _load(path), description, str(path)
  batch = sampling.round_batch(options.batch_size, mesh)
  fn = _real_extract_fn(method, config, extractor, mesh, domain)
  sharding = parallel.batch_sharding(mesh)
  params = _params(mesh, extractor)
  collector = _Collector()
  for start, size in _progress(what, n, ((s, min(batch, n - s)) for s in range(0, n, batch))):
    idx = np.arange(start, start + size)
    padded = np.concatenate([idx, np.full(batch - len(idx), idx[0])])
    x = parallel.global_array(sharding, (batch, r, r, c), lambda rows: source[padded[rows]], 0)
    collector.add(parallel.to_host(fn(params, x)), size)
  result = collector.result()
  if jax.process_index() == 0:
    _save(path, result, key)
  return result, description, str(path)


def generated_features(method, config: ml_collections.ConfigDict, state, extractor, mesh,
                       options, domain=None):
  """FeatureSet of exactly options.num_samples samples of options.seed (gans.sampling; surplus
  rows dropped), of `domain` for a method with several.

  The reals always get every set (the cache stays complete); the samples only when scored."""
  extra = options.per_scale and 'fid' in options.metrics
  extract = jax.jit(lambda params, sets: {k: extractor.apply(params, v) for k, v in sets.items()},
                    out_shardings=parallel.replicated(mesh))
  params = _params(mesh, extractor)
  what = f'samples step {int(parallel.to_host(state.step))}'
  if domain is not None:
    what = f'{what} domain {domain}'
  images = sampling.batches(method, config, state, mesh, options.num_samples, options.seed,
                            options.batch_size, sets=None if extra else ('',), domain=domain)
  collector = _Collector()
  for _, size, sets in _progress(what, options.num_samples, images):
    collector.add(parallel.to_host(extract(params, sets)), size)
  return collector.result()
