"""Where a run's numbers go: metrics.jsonl, TensorBoard events (scalars, sample sheets, the
config as hparams), Weights & Biases when asked, and a progress line."""
import io
import json
import logging
import os
import sys
import uuid

import ml_collections
import numpy as np
from etils import epath

from gans import config as config_lib
from gans import workdir as workdir_lib
from gans.errors import UserError


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


_EVENT_FILES = 'events.out.tfevents.*'
_HPARAMS = '_hparams_/'  # the tag prefix of TensorBoard's hparams plugin


def _records(data: bytes):
  """(raw record, Event) for each record of a TFRecord event file, in order. A record cut short
  (the last one of a run killed mid-write) or damaged ends the file there."""
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.record_writer import masked_crc32c  # pylint: disable=g-import-not-at-top
  at = 0
  while at + 12 <= len(data):
    header = data[at:at + 8]
    length, = struct.unpack('<Q', header)
    end = at + 12 + length + 4
    if struct.unpack('<I', data[at + 8:at + 12])[0] != masked_crc32c(header) or end > len(data):
      return
    event = event_pb2.Event()
    try:
      event.ParseFromString(data[at + 12:end - 4])
    except Exception:  # pylint: disable=broad-except  # protobuf's DecodeError
      return
    yield data[at:end], event
    at = end


def read_events(directory) -> list:
  """Every Event of the event files in directory, file by file in name (= start) order."""
  return [event for path in sorted(epath.Path(directory).glob(_EVENT_FILES))
          if not path.name.endswith('.tmp') for _, event in _records(path.read_bytes())]


def _truncate_events(directory, resume_step):
  """Drop, from the event files a stopped run left, the events after resume_step and the
  hparams of earlier starts, so that TensorBoard shows every step once and the config in use.

  TensorBoard keeps whatever an event file holds: two events of one tag at one step draw a
  doubled curve. A purge event (SessionLog START) is not acted upon by every reader of event
  files, so the files are rewritten instead (through a temporary file and a rename); a file left
  with nothing but its header is removed, and so is the temporary of a rewrite cut short (a
  reader would take it for one more event file).
  """
  for path in epath.Path(directory).glob(_EVENT_FILES):
    if path.name.endswith('.tmp'):
      path.unlink()
      continue
    data = path.read_bytes()
    records = list(_records(data))
    kept = [(raw, e) for raw, e in records
            if e.step <= resume_step and not any(v.tag.startswith(_HPARAMS)
                                                  for v in e.summary.value)]
    if len(kept) == len(records) and sum(len(raw) for raw, _ in kept) == len(data):
      continue
    if any(e.HasField('summary') for _, e in kept):
      workdir_lib.write_atomically(path, b''.join(raw for raw, _ in kept))
    else:  # nothing but the file's header is left
      path.unlink()


def flatten(config) -> dict:
  """{dotted.name: value} of a config, values as TensorBoard's hparams take them (numbers,
  strings, booleans; anything else as its text, None left out)."""
  tree = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  return {k: v if isinstance(v, (bool, int, float, str)) else str(v)
          for k, v in config_lib.flatten(tree).items() if v is not None}


class MetricWriter:
  """Where a run's numbers and sheets go: DIR/metrics.jsonl (one JSON object per line),
  TensorBoard events in DIR/tensorboard/, and Weights & Biases when config.log.wandb names a
  project.

  Only process 0 writes. tensorboardX writes event files without TensorFlow. A resumed run
  first drops what a stopped run logged after its last checkpoint, from metrics.jsonl and the
  event files alike, so that every step appears once, with the values of the run that
  continues. Those rewrites go through a temporary file and a rename, so a crash during one
  cannot lose the history. W&B keeps its own history, which cannot be rewritten: a resumed run
  continues the same W&B run (its id is in DIR/wandb_run.json) from the first step W&B has not
  seen.

  The config is given once, at construction: W&B records it there and `hparams` writes it.

  An object store (gs://) has no append: there every write uploads the whole file again, which
  replaces the object at once, so a reader never sees half of it; the event files too (see
  _UploadedFile).
  """

  def __init__(self, workdir, enabled=True, resume_step=0,
               config: ml_collections.ConfigDict | None = None):
    self.enabled = enabled
    self._config = config
    self._wandb = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      workdir = epath.Path(workdir)
      self._path = workdir / 'metrics.jsonl'
      self._lines = [json.dumps(r) + '\n' for r in read_metrics(workdir)
                     if r['step'] <= resume_step]
      workdir_lib.write_atomically(self._path, ''.join(self._lines).encode())
      on_store = workdir_lib.is_url(workdir)
      self._jsonl = None if on_store else self._path.open('a')
      if on_store:
        from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
        record_writer.register_writer_factory(str(workdir).split(':')[0], _UploadedFile)
      self._on_store = on_store
      self._tb_dir = tb_dir = workdir / 'tensorboard'
      if tb_dir.exists():
        _truncate_events(tb_dir, resume_step)
      # tensorboardX names a file by the second and the host: a suffix keeps a restart within
      # the same second from overwriting the file of the run before.
      self._tb = SummaryWriter(str(tb_dir), filename_suffix=f'.{uuid.uuid4().hex[:8]}')
      log = config.get('log') if config is not None else None
      if log and log.get('wandb'):
        try:
          self._wandb = _WandbRun(workdir, config, resume_step)
        except BaseException:
          self.close()
          raise

  def hparams(self, metrics=(), step=0):
    """The run's config (the one given at construction) in TensorBoard's hparams plugin, in the
    run's own event file (so the HPARAMS tab lists this run, not a sub-folder); `metrics` are
    the scalar tags shown beside it. Written once per start: a resume drops the previous
    start's."""
    if not self.enabled:
      return
    if self._config is None:
      raise ValueError('MetricWriter.hparams needs the config: pass config= at construction')
    from tensorboardX.summary import hparams  # pylint: disable=g-import-not-at-top
    experiment, start, _ = hparams(flatten(self._config), {m: None for m in metrics})
    for summary in (experiment, start):
      self._tb.file_writer.add_summary(summary, int(step))
    self._tb.flush()

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
    if self._wandb:
      self._wandb.log(step, {k: float(v) for k, v in scalars.items()})

  def images(self, step, sheets):
    """{name: PNG bytes} as images tagged samples/<name>: the sheets as figures.write_samples
    encoded and wrote them (handed over, not read back: on an object store that would be one
    download per sheet), into the event file unchanged."""
    if not self.enabled or not sheets:
      return
    from PIL import Image  # pylint: disable=g-import-not-at-top
    from tensorboardX.proto.summary_pb2 import Summary  # pylint: disable=g-import-not-at-top
    pictures, summaries = {}, []
    for name, png in sheets.items():
      picture = Image.open(io.BytesIO(png))
      pictures[f'samples/{name}'] = picture
      image = Summary.Image(height=picture.height, width=picture.width,
                            colorspace=len(picture.getbands()), encoded_image_string=png)
      summaries.append(Summary(value=[Summary.Value(tag=f'samples/{name}', image=image)]))
    if self._on_store:
      # The run's event file is uploaded whole at every flush; with the sheets in it, a long run
      # would upload them again at every log line. Each interval's sheets get a file of their
      # own, uploaded once (TensorBoard reads every event file of the folder as one run).
      from tensorboardX import FileWriter  # pylint: disable=g-import-not-at-top
      writer = FileWriter(str(self._tb_dir), filename_suffix=f'.{uuid.uuid4().hex[:8]}.samples')
    else:
      writer = self._tb.file_writer
    for summary in summaries:
      writer.add_summary(summary, int(step))
    if self._on_store:
      writer.close()
    else:
      writer.flush()
    if self._wandb:
      self._wandb.log(step, pictures, images=True)

  def close(self):
    if self.enabled:
      if self._jsonl:
        self._jsonl.close()
      self._tb.close()
      if self._wandb:
        self._wandb.finish()


class _WandbRun:
  """The run on Weights & Biases (config.log.wandb = PROJECT or ENTITY/PROJECT).

  wandb is imported here only, so a run that does not ask for it never loads it. The run's id is
  kept in DIR/wandb_run.json: a resume continues the same W&B run (resume='allow'); a start at
  step 0 (a new run, or one restarted before its first checkpoint) opens a new one.
  """

  def __init__(self, workdir, config: ml_collections.ConfigDict, resume_step):
    try:
      import wandb  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError(f'--config.log.wandb={config.log.wandb} needs the wandb package: '
                      'pip install wandb') from None
    self._wandb = wandb
    entity, _, project = config.log.wandb.rpartition('/')
    record = workdir / 'wandb_run.json'
    previous = json.loads(record.read_text()) if record.exists() else {}
    run_id = previous.get('id')
    if not (resume_step and run_id and previous.get('project') == config.log.wandb):
      run_id = uuid.uuid4().hex[:8]
    workdir_lib.write_atomically(record, json.dumps(
        {'id': run_id, 'project': config.log.wandb}).encode())
    local = not workdir_lib.is_url(workdir)
    try:
      self._run = wandb.init(
          project=project, entity=entity or None, id=run_id, resume='allow',
          name=workdir.name, config=json.loads(config.to_json_best_effort()),
          mode=config.log.wandb_mode or None,
          dir=os.environ.get('WANDB_DIR') or (str(workdir) if local else None))
    except Exception as e:  # pylint: disable=broad-except  # wandb's own errors: no login...
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise UserError(f'W&B could not start a run ({first}); run `wandb login`, or pass '
                      '--config.log.wandb_mode=offline and `wandb sync` later') from e
    # W&B refuses steps below the ones it has: those a stopped run logged after its last
    # checkpoint stay as they were, and logging goes on from the first step it has not seen.
    self._first = int(getattr(self._run, 'step', 0) or 0)

  def log(self, step, values, images=False):
    if step < self._first:
      return
    if images:
      values = {k: self._wandb.Image(v) for k, v in values.items()}
    self._run.log(values, step=int(step))

  def finish(self):
    self._run.finish()


def _duration(seconds):
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  return f'{h}:{rem // 60:02d}:{rem % 60:02d}' if h else f'{rem // 60:02d}:{rem % 60:02d}'


class Progress:
  """A tqdm-style line: step/total, percent, images/s, s/kimg, ETA and the latest losses.

  On a terminal the line is redrawn in place; in a log file each update is its own line.
  """

  def __init__(self, total, batch_images, stream=None, enabled=True, label=''):
    stream = stream or sys.stderr  # the stderr of now, not of import time (a test may swap it)
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


def summarize(metrics_list, at_step=()):
  """{name: value} of a log interval from a list of {name: k values} dispatch results: the mean
  over the interval's steps, except for the names in `at_step`, logged with their value at the
  interval's last step (the logged step) and with their mean as <name>_mean."""
  summary = {}
  for k in metrics_list[0]:
    values = np.concatenate([np.ravel(np.asarray(m[k])) for m in metrics_list])
    if k in at_step:
      summary[k], summary[f'{k}_mean'] = float(values[-1]), float(np.mean(values))
    else:
      summary[k] = float(np.mean(values))
  return summary


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
