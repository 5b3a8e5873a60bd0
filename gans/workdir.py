"""A workdir holds one run: checks that it can, and a lock so that only one run writes it.

Two trainers in one workdir would interleave checkpoints and metrics, so the second is refused
with the first one's host and pid. A lock left by a killed run is taken over once its process
is gone; a lock held on another host cannot be checked from here, so it stands until removed.
Workdirs may be URLs (gs://...), so every path is an etils.epath.Path.
"""
import json
import logging
import os
import socket
import time

from etils import epath

from gans.errors import UserError

LOCK = 'lock.json'


def is_url(path) -> bool:
  """An object store (gs://...): no append, no exclusive create, no disk to fill."""
  return '://' in str(path)


def absolute(path) -> epath.Path:
  """path as an epath.Path that no longer depends on the current folder (URLs as they are)."""
  return epath.Path(path if is_url(path) else os.path.abspath(path))


def write_atomically(path, data: bytes):
  """Write through a temporary file and a rename, so a reader (or a crash) never leaves half a
  file: a resume's rewrite of metrics.jsonl, eval JSON, the feature cache."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f'{path.name}.{os.getpid()}.tmp'
  tmp.write_bytes(data)
  tmp.replace(path)


def prepare(workdir) -> epath.Path:
  """The workdir as a Path, created if missing; a file or an unwritable place is a UserError."""
  path = epath.Path(workdir)
  if path.exists() and not path.is_dir():
    raise UserError(f'--workdir {workdir} is a file; pass a directory (one is created if missing)')
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create --workdir {workdir}: {e.strerror or e}; '
                    'pass a directory you can write to') from e
  return path


def _start_time(pid):
  """The kernel's start time of `pid` (so a recycled pid is not mistaken for it), or None."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(holder) -> bool:
  if holder.get('host') != socket.gethostname():
    return True  # another host's process cannot be seen from here
  pid = holder.get('pid')
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError):
    return isinstance(pid, int)
  return holder.get('start') is None or holder.get('start') == _start_time(pid)


class Lock:
  """workdir/lock.json naming the host and pid of the run that holds the workdir."""

  def __init__(self, workdir: epath.Path):
    self.path = epath.Path(workdir) / LOCK
    pid = os.getpid()
    self.owner = {'host': socket.gethostname(), 'pid': pid, 'start': _start_time(pid),
                  'since': time.strftime('%Y-%m-%d %H:%M:%S')}

  def _create(self):
    """Write the lock unless one exists: atomically on a local disk (O_EXCL); on an object
    store, which has no exclusive create, by looking first."""
    text = json.dumps(self.owner)
    if is_url(self.path):
      if self.path.exists():
        raise FileExistsError(str(self.path))
      self.path.write_text(text)
      return
    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, 'w') as f:
      f.write(text)

  def _holder(self):
    try:
      return json.loads(self.path.read_text())
    except (OSError, ValueError):
      return {}  # vanished, or torn by a kill while it was written: nobody holds it

  def acquire(self):
    for _ in range(3):
      try:
        self._create()
        return self
      except FileExistsError:
        holder = self._holder()
        if holder and _alive(holder):
          raise UserError(
              f'{self.path.parent} is in use by pid {holder.get("pid")} on '
              f'{holder.get("host")} (since {holder.get("since")}); wait for that run to end or '
              f'use another --workdir (if that process is gone, delete {self.path})') from None
        logging.warning('taking over %s from pid %s on %s, which is gone', self.path,
                        holder.get('pid'), holder.get('host'))
        self.path.unlink(missing_ok=True)
      except OSError as e:
        raise UserError(f'cannot write to --workdir {self.path.parent}: {e.strerror or e}; '
                        'pass a directory you can write to') from e
    raise UserError(f'could not take {self.path}: other runs keep starting in '
                    f'{self.path.parent}; use one --workdir per run')

  def release(self):
    if self._holder() == self.owner:
      self.path.unlink(missing_ok=True)

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
