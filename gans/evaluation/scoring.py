"""Scores of one checkpoint: the metrics of two FeatureSets, and the per-workdir driver that
writes them, with the sample count, reference set, extractor and FID convention of every
number, to DIR/eval/<step>.json (merged with what an earlier evaluation of that step wrote)."""
import os
import time

import jax

from gans import checkpoint, methods, parallel, sampling
from gans.evaluation import features, report
from gans.metrics import fid, inception_score, kid, parse_metrics, precision_recall


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


def score_checkpoint(workdir, extractor, options, step=None, loaded=None, write=True):
  """Score one checkpoint of a workdir; returns the record written to DIR/eval/<step>.json.

  `loaded` = (config, state) of that checkpoint skips the restore (training passes its state).
  Every metric entry names its extractor and FID convention; the record names the generator
  the samples came from ('EMA' where the state has one, else 'trained G') and the seed and
  (rounded) batch size of gans.sampling that made them.
  """
  config, state = loaded or checkpoint.load(workdir, step)
  method = methods.get(config.method)
  mesh = parallel.make_mesh()
  metrics = parse_metrics(options.metrics)
  if jax.process_count() > 1:
    options = features.shared_stats(options, workdir)
  t0 = time.time()
  results, caches = {}, []
  for domain in features.domains(method, config):  # coupled: every metric per domain, _a, _b
    real, reference, cache = features.reference_features(method, config, extractor, mesh,
                                                         options, domain)
    fake = features.generated_features(method, config, state, extractor, mesh, options, domain)
    out = scores(metrics, real, fake, extractor.suffix, options, reference)
    results.update(out if domain is None else {f'{k}_{domain}': v for k, v in out.items()})
    caches.append(cache)
  for entry in results.values():
    entry['extractor'] = extractor.name
    entry['convention'] = extractor.info.get('convention')
  rule = 'latest' if step is None else 'asked for'
  step = int(parallel.to_host(state.step))
  record = {'step': step, 'checkpoint': rule,
            'generator': sampling.generator_label(state), 'seed': options.seed,
            'sample_batch': sampling.round_batch(options.batch_size, mesh),  # seed + batch: the
            # samples, which gans.sampling makes again bit for bit
            'metrics': results, 'extractors': {extractor.name: extractor.info},
            'reference_cache': caches[0] if len(caches) == 1 else caches,
            'seconds': round(time.time() - t0, 1)}
  if write and jax.process_index() == 0:
    record = report.merge(os.path.join(workdir, 'eval', f'{step}.json'), record)
  return record
