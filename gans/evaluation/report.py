"""The eval record: merging into DIR/eval/<step>.json, the printed table, and the method's own
numbers (its evaluate hook and the scalars it logged)."""
import json
import os

import jax
from etils import epath

from gans import checkpoint, logs, methods, parallel
from gans import workdir as workdir_lib


def scoreable(method):
  """Whether eval.py runs FID & co. by default: the method names its image sets (eval_sets).
  The classifier is judged by its accuracy alone."""
  return method.eval_sets is not None


def method_scores(workdir, step=None, loaded=None, write=True):
  """The method's own numbers for one checkpoint, written like the metrics: its checkpoint_scores
  (coupled pair agreement, the classifier's held-out accuracy) and the progress-line scalars
  it logged (BEGAN's M and k, the GAN losses) at that step and at the first log line."""
  config, state = loaded or checkpoint.load(workdir, step)
  method = methods.get(config.method)
  step = int(parallel.to_host(state.step))
  results = {}
  if method.checkpoint_scores:
    for name, value in method.checkpoint_scores(config, state).items():
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
    record = merge(os.path.join(workdir, 'eval', f'{step}.json'), record)
  return record


def merge(path, record):
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
