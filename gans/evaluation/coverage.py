"""Which classes a generator's samples fall in, as judged by a classifier the project trained:
the class histogram of gans.sampling's samples (the uint8 images eval.py scores for that seed),
its entropy in nats (ln C for an even cover of C classes) and the rarest class's share.
scripts/class_coverage.py prints it; gans.papers tabulates it."""
import math
import os

import numpy as np


def histogram(labels, num_classes):
  """{'counts', 'fractions', 'entropy' (nats), 'max_entropy' (ln C), 'min_fraction',
  'classes_covered'} of integer class labels."""
  counts = np.bincount(np.asarray(labels).ravel(), minlength=num_classes)
  p = counts / max(int(counts.sum()), 1)
  nonzero = p[p > 0]
  entropy = max(0.0, float(-np.sum(nonzero * np.log(nonzero))))  # 0.0, not -0.0, for one class
  return {'counts': counts.tolist(), 'fractions': [float(f) for f in p], 'entropy': entropy,
          'max_entropy': math.log(num_classes), 'min_fraction': float(p.min()),
          'classes_covered': int(np.sum(counts > 0))}


def class_coverage(workdir, classifier, num_samples=2000, step=None, seed=0, batch_size=500):
  """The class histogram (see `histogram`) of `num_samples` samples of seed `seed` of the run in
  `workdir` (its checkpoint at `step`, default the latest), labelled by `classifier`: a
  gans.methods.classifier.Frozen or the workdir of a classifier run. Adds 'workdir', 'step',
  'num_samples' and 'seed'. The samples are gans.sampling's, `batch_size` at a time."""
  from gans import checkpoint, methods, parallel, sampling  # pylint: disable=g-import-not-at-top
  from gans.errors import UserError  # pylint: disable=g-import-not-at-top
  from gans.methods import classifier as classifier_lib  # pylint: disable=g-import-not-at-top

  if isinstance(classifier, (str, os.PathLike)):
    classifier = classifier_lib.load_frozen(str(classifier))
  config, state = checkpoint.load(str(workdir), step)
  method = methods.get(config.method)
  if not method.makes_samples or method.eval_domains:
    raise UserError(f'{workdir} holds a {config.method} run; class coverage needs a generator '
                    'of one image domain')
  labels = [classifier.predict_all(images[''])
            for _, _, images in sampling.batches(method, config, state, parallel.make_mesh(),
                                                 num_samples, seed, batch_size, sets=('',),
                                                 host=True)]
  result = histogram(np.concatenate(labels), classifier.config.model.num_classes)
  return {'workdir': str(workdir), 'step': int(parallel.to_host(state.step)),
          'num_samples': int(num_samples), 'seed': int(seed), **result}


def table(results) -> str:
  """One block per run: entropy, rarest share, classes covered, counts and shares."""
  lines = []
  for r in results:
    shares = ' '.join(f'{c}:{100 * f:.1f}%' for c, f in enumerate(r['fractions']))
    lines += [f'{r["workdir"]} step {r["step"]}, {r["num_samples"]} samples: entropy '
              f'{r["entropy"]:.3f} of {r["max_entropy"]:.3f}, rarest class '
              f'{100 * r["min_fraction"]:.1f}%, {r["classes_covered"]} classes covered',
              f'  counts {r["counts"]}', f'  {shares}']
  return '\n'.join(lines)
