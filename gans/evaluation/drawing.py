"""Figures of a workdir: sample sheets, loss / scalar / metric curves, interpolations."""
import json
import os

import jax
import ml_collections
import numpy as np
from etils import epath

from gans import checkpoint, figures, logs, methods, parallel, sampling


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


def interpolation_figure(method, config: ml_collections.ConfigDict, state, path, seed=0, rows=6,
                         steps=10):
  """Slerp walks between `rows` pairs of latents, `steps` images each, from the generator
  (the method's headline eval set, e.g. MSG-GAN's full resolution)."""
  mesh = parallel.make_mesh()
  ka, kb = jax.random.split(jax.random.PRNGKey(seed))
  a = parallel.to_host(method.sample_latents(config, ka, rows))
  b = parallel.to_host(method.sample_latents(config, kb, rows))
  z = figures.slerp_walk(a, b, steps).reshape(rows * steps, -1)
  generate = jax.jit(lambda s, z: sampling.image_sets(method, config,
                                                   method.generate(config, s, z))[''],
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
