"""Where a run's numbers go: metrics.jsonl, TensorBoard events, and a progress line."""
import io
import json
import logging
import sys

import numpy as np
from etils import epath

from gans import workdir as workdir_lib


def read_metrics(workdir) -> list:
  """The records of workdir/metrics.jsonl ([] when there is none).

  A line that does not parse, such as the half-written last line of a run killed mid-write,
  is skipped with a warning rather than making the whole history unreadable.
  """
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return []
  records, torn = [], 0
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      torn += bool(line.strip())
  if torn:
    logging.warning('%s: skipped %d line(s) that do not parse (a write cut short)', path, torn)
  return records


class _UploadedFile:
  """An event file on an object store, through epath: kept in memory, uploaded whole at each
  flush. It replaces tensorboardX's own gs:// writer, which takes its own credentials and
  uploads again when garbage-collected: at exit, after a test's emulator is gone, it retried
  for two minutes."""

  def __init__(self, path):
    self._path, self._buffer = epath.Path(path), io.BytesIO()

  @classmethod
  def open(cls, path):  # tensorboardX's writer-factory interface
    return cls(path)

  @staticmethod
  def directory_check(path):
    del path  # object stores have no folders to create

  def write(self, data):
    self._buffer.write(data)

  def flush(self):
    self._path.write_bytes(self._buffer.getvalue())

  def close(self):
    self.flush()


class MetricWriter:
  """One JSON object per line in DIR/metrics.jsonl, and the same scalars as TensorBoard events.

  Only process 0 writes. tensorboardX writes event files without TensorFlow. A resumed run
  first drops the lines a stopped run logged after its last checkpoint, so that every step
  appears once, with the values of the run that continues. That rewrite goes through a
  temporary file and a rename, so a crash during it cannot lose the history.

  An object store (gs://) has no append: there every write uploads the whole file again, which
  replaces the object at once, so a reader never sees half of it; the event files too (see
  _UploadedFile).
  """

  def __init__(self, workdir, enabled=True, resume_step=0):
    self.enabled = enabled
    if enabled:
      from tensorboardX import SummaryWriter
      workdir = epath.Path(workdir)
      self._path = workdir / 'metrics.jsonl'
      self._lines = [json.dumps(r) + '\n' for r in read_metrics(workdir)
                     if r['step'] <= resume_step]
      workdir_lib.write_atomically(self._path, ''.join(self._lines).encode())
      on_store = workdir_lib.is_url(workdir)
      self._jsonl = None if on_store else self._path.open('a')
      if on_store:
        from tensorboardX import record_writer
        record_writer.register_writer_factory(str(workdir).split(':')[0], _UploadedFile)
      self._tb = SummaryWriter(str(workdir / 'tensorboard'))

  def write(self, step, scalars):
    if not self.enabled:
      return
    record = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    line = json.dumps(record) + '\n'
    if self._jsonl:
      self._jsonl.write(line)
      self._jsonl.flush()
    else:
      self._lines.append(line)
      self._path.write_text(''.join(self._lines))
    for key, value in scalars.items():
      self._tb.add_scalar(key, float(value), int(step))
    self._tb.flush()

  def close(self):
    if self.enabled:
      if self._jsonl:
        self._jsonl.close()
      self._tb.close()


def _duration(seconds):
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  return f'{h}:{rem // 60:02d}:{rem % 60:02d}' if h else f'{rem // 60:02d}:{rem % 60:02d}'


class Progress:
  """A tqdm-style line: step/total, percent, images/s, s/kimg, ETA and the latest losses.

  On a terminal the line is redrawn in place; in a log file each update is its own line.
  """

  def __init__(self, total, batch_images, stream=sys.stderr, enabled=True, label=''):
    self.total, self.batch_images, self.stream, self.enabled = total, batch_images, stream, enabled
    self.tty = enabled and stream.isatty()
    self.label = f'{label}: ' if label else ''

  def update(self, step, images_per_s, extras):
    if not self.enabled:
      return
    eta = (self.total - step) * (self.batch_images / images_per_s) if images_per_s else 0
    losses = ' '.join(f'{k}={v:.4f}' for k, v in extras.items())
    line = (f'{self.label}{step}/{self.total} {100 * step / self.total:5.1f}% | '
            f'{images_per_s:8.1f} img/s | '
            f'{1000 / images_per_s if images_per_s else float("nan"):.2f} s/kimg | '
            f'ETA {_duration(eta)}' + (f' | {losses}' if losses else ''))
    self.stream.write(('\r' + line + '\x1b[K') if self.tty else line + '\n')
    self.stream.flush()

  def close(self):
    if self.tty:
      self.stream.write('\n')


def summarize(metrics_list):
  """Mean of each metric over a list of {name: k values} dispatch results."""
  keys = metrics_list[0].keys()
  return {k: float(np.mean(np.concatenate([np.ravel(np.asarray(m[k])) for m in metrics_list])))
          for k in keys}


def first_nonfinite(metrics_list, first_step):
  """(step, [names]) of the first step with a NaN/Inf metric and the metrics bad at it, or None."""
  step = first_step
  for m in metrics_list:
    names = list(m)
    values = np.stack([np.ravel(np.asarray(m[k])) for k in names])  # [metrics, k]
    bad = ~np.isfinite(values)
    if bad.any():
      t = int(np.argmax(bad.any(axis=0)))
      return step + t, [k for k, row in zip(names, bad[:, t]) if row]
    step += values.shape[1]
  return None
