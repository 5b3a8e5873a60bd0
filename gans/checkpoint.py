"""Orbax checkpoints of the whole training state, with the config that made them, and the
(config, state) of a workdir for everything that reads a run (evaluation, figures, notebooks).

Saves are asynchronous (the device-to-host copy happens before save() returns, so the next
step may donate the buffers) and atomic: orbax writes into a temporary directory and renames it
when complete, so a kill mid-save leaves the previous checkpoint as the latest one. A
checkpoint that is damaged anyway (a truncated file, a disk error) costs only itself: restore
moves it aside with a warning and takes the newest one that restores.
"""
import json
import logging
import functools
import shutil
import sys

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from gans import config as config_lib
from gans import methods, parallel
from gans import workdir as workdir_lib
from gans.errors import UserError

# Fields that change what the numbers in the state mean without changing its structure; a
# resume with any of them changed is refused. A change of structure is found from the state
# itself (see _structure). Schedules, logging and data paths may change between runs.
COMPATIBILITY_KEYS = ('method', 'model', 'loss.name')

# State fields that older checkpoints hold and the state no longer has: left on disk at restore
# (orbax's partial restore), never read. 'frozen': SCoGAN's frozen networks (SL's classifier,
# PL's VGG19), since passed to the step as an argument and identified by a digest in the config
# (gans.models.frozen); a checkpoint from before holds them and restores without them.
RETIRED_FIELDS = ('frozen',)


class SaveFailed(UserError):
  """A checkpoint could not be written (disk full, permissions): the run stops there."""


def _lookup(tree, dotted):
  for part in dotted.split('.'):
    tree = tree.get(part, None) if isinstance(tree, dict) else None
  return tree


def config_changes(saved: dict, current: dict, keys=('',)):
  """['model.depth: 4 -> 5', ...] for every field under `keys` ('' = all) that differs."""
  diffs = []
  for key in keys:
    old = config_lib.flatten(_lookup(saved, key) if key else saved, key)
    new = config_lib.flatten(_lookup(current, key) if key else current, key)
    diffs += [f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in sorted(set(old) | set(new))
              if old.get(k) != new.get(k)]
  return diffs


def _structure(tree):
  """{'g_params/b0_conv/kernel': (shape, dtype), ...} of a state or of a checkpoint's metadata."""
  def name(key):
    for field in ('name', 'key', 'idx'):
      if hasattr(key, field):
        return str(getattr(key, field))
    return str(key)
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {'/'.join(map(name, path)): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in leaves}


# What a checkpoint writes beside its arrays (tree metadata, sharding, config): measured at
# 90 KB for the tiny models, growing with the number of arrays.
_METADATA_BYTES = 1 << 19


def _short(error):
  """The part of a storage error a person needs: the innermost cause's first line (orbax wraps
  it in exceptions that print pages of TensorStore specs)."""
  while error.__cause__ is not None or error.__context__ is not None:
    error = error.__cause__ or error.__context__
  text = str(error)
  if 'No space left on device' in text:
    return 'no space left on device' + text[text.index('No space left on device') + 23:][:80]
  return (text.strip().splitlines() or [type(error).__name__])[0][:300]


def _quiet_abandoned_io():
  """Drop the tracebacks of the reads and writes orbax abandons when one of them fails.

  They arrive later, from TensorStore's threads (an event loop already closed) and from the
  garbage collector (coroutines whose error nobody awaited): pages of them for one damaged
  file or one full disk, after the failure was already reported in one line. Everything else
  still reaches the hooks that were there before.
  """
  unraisable, excepthook = sys.unraisablehook, sys.excepthook

  def quiet_unraisable(info):
    code = getattr(info.object, 'cr_code', None)
    if '/orbax/' not in getattr(code, 'co_filename', ''):
      unraisable(info)

  def quiet_excepthook(kind, value, traceback):
    if not (kind is RuntimeError and str(value) == 'Event loop is closed'):
      excepthook(kind, value, traceback)

  if getattr(sys.unraisablehook, '__name__', '') != 'quiet_unraisable':
    sys.unraisablehook, sys.excepthook = quiet_unraisable, quiet_excepthook


class Checkpointer:

  def __init__(self, directory, config, keep=3, asynchronous=True, record=None, frozen=None,
               read_only=False):
    """record: a JSON file, outside `directory`, naming the newest step known to be complete:
    what tells a run whose checkpoints were deleted from one that never completed any.
    frozen: {name: gans.models.frozen.Net} the run trains with, their digests recorded in
    `config` (frozen.record_digests): a checkpoint recorded with other digests is refused.
    read_only: for readers (eval, sampling, export) of a run that may still be training: they
    neither delete its in-flight temporary checkpoint nor move aside one they cannot read."""
    _quiet_abandoned_io()
    self.config = json.loads(config.to_json())
    self.frozen = dict(frozen or {})
    self.directory = workdir_lib.absolute(directory)
    self.read_only = read_only  # (not orbax's read_only, which warns three times per open)
    # create=False: a start that fails before its first save leaves no empty folder behind.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=False,
                                           cleanup_tmp_directories=not read_only,
                                           enable_async_checkpointing=asynchronous)
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'config': ocp.JsonCheckpointHandler()})
    self._saving = None
    self.record = epath.Path(record) if record else None

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self):
    return sorted(self.manager.all_steps())

  def _check_compatible(self, step, abstract_state):
    """Refuse a checkpoint made with another config, other frozen nets or another state;
    returns whether it also holds RETIRED_FIELDS (restored around)."""
    saved = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    saved_config = config_lib.upgrade(saved.config)  # the keys renamed since it was saved
    meaning = config_changes(saved_config, self.config, COMPATIBILITY_KEYS)
    if meaning:
      raise UserError(f'the checkpoint in {self.directory} was made with another config '
                      f'({"; ".join(meaning)}); use a new --workdir or the original config')
    self._check_frozen(step, saved_config)
    have = _structure(self.manager.item_metadata(step)['state'])
    want = _structure(abstract_state)
    wanted_fields = {k.split('/')[0] for k in want}
    retired = {k for k in have if k.split('/')[0] in RETIRED_FIELDS
               and k.split('/')[0] not in wanted_fields}
    have = {k: v for k, v in have.items() if k not in retired}
    if have != want:
      differing = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
      old, new = config_lib.flatten(saved_config), config_lib.flatten(self.config)
      for net in self.frozen.values():  # a digest recorded for the first time is no change
        old[net.digest] = old.get(net.digest) or new.get(net.digest)
      changes = config_changes(old, new) or ['none: the code changed']
      raise UserError(f'the checkpoint at step {step} in {self.directory} holds another state '
                      f'({len(differing)} arrays differ, e.g. {differing[0]}); config changes: '
                      f'{"; ".join(changes)}; use a new --workdir or the original config')
    return bool(retired)

  def _check_frozen(self, step, saved_config):
    """Refuse a checkpoint whose frozen networks had other digests than this run's (a digest
    the checkpoint did not record, from before the net was used or before digests were
    recorded, is taken as this run's)."""
    for net in self.frozen.values():
      saved, now = _lookup(saved_config, net.digest), _lookup(self.config, net.digest)
      if saved and now and saved != now:
        source = _lookup(self.config, net.source)
        raise UserError(f'{net.source}={source!r} is not the frozen network the checkpoint at '
                        f'step {step} in {self.directory} was trained with ({net.digest}: '
                        f'{saved[:10]} saved, {now[:10]} now); point {net.source} back at the '
                        'file it started with, or use a new --workdir')

  def restore(self, abstract_state, step=None):
    """The state at `step` (default: the newest that restores); abstract_state holds
    ShapeDtypeStructs with shardings, which is what lets a run restart on another device count.

    A config that changes what the state means or holds is a UserError, whichever checkpoint
    it meets first. With step=None a checkpoint that cannot be read is moved aside with a
    warning and the next older one is tried; None is returned when there is none at all.
    """
    steps = [step] if step is not None else self.all_steps()[::-1]
    for s in steps:
      try:
        if self._check_compatible(s, abstract_state):
          restored = self._restore_without_retired(s, abstract_state)
        else:
          restored = self.manager.restore(
              s, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))).state
      except UserError:
        raise
      except Exception as e:  # pylint: disable=broad-except: any unreadable part damages it
        if step is not None:
          raise UserError(f'checkpoint {s} in {self.directory} cannot be read: {_short(e)}') from e
        self._set_aside(s, e)
        continue
      logging.info('restored step %d from %s', s, self.directory)
      return restored
    return None

  def _restore_without_retired(self, step, abstract_state):
    """The state of a checkpoint that also holds RETIRED_FIELDS: orbax's partial restore (its
    PyTree handler; the manager's standard one has no such option) reads only the arrays
    abstract_state has."""
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_state)
    path = self.directory / str(step) / 'state'
    with ocp.PyTreeCheckpointer() as reader:
      return reader.restore(path, args=ocp.args.PyTreeRestore(
          abstract_state, restore_args=restore_args, partial_restore=True))

  def _set_aside(self, step, error):
    """Move a damaged checkpoint to <step>.damaged (kept for inspection; not a step to orbax,
    so the run can save that step again)."""
    if self.read_only:
      logging.warning('checkpoint %d in %s cannot be read (%s); trying the one before', step,
                      self.directory, _short(error))
      return
    target = self.directory / f'{step}.damaged'
    if jax.process_index() == 0:
      target.rmtree(missing_ok=True)
      (self.directory / str(step)).rename(target)
    logging.warning('checkpoint %d in %s is damaged (%s); moved it to %s and trying the one '
                    'before', step, self.directory, _short(error), target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f'set aside checkpoint {step}')
    self.manager.reload()

  def save(self, step, state):
    self._wait()
    problem = None
    if jax.process_index() == 0:
      self.directory.mkdir(parents=True, exist_ok=True)
      problem = self._no_space(state)
    if not parallel.everyone(problem is None):  # all processes save together, or none does
      raise self._failed(step, OSError(problem or 'process 0 found no space for it'))
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self.config)), force=True)
    except Exception as e:  # pylint: disable=broad-except: storage errors come in many types
      raise self._failed(step, e) from e
    self._saving = step

  def _wait(self):
    """Wait for the save in flight (orbax would before the next one anyway); raise SaveFailed
    if it failed, else record its step as complete."""
    if self._saving is None:
      return
    self.manager.wait_until_finished()
    self.check()
    if self.record and jax.process_index() == 0:
      self.record.write_text(json.dumps({'step': self._saving}))
    self._saving = None

  def _no_space(self, state):
    """Why a save cannot fit on a local disk, or None: refused before writing any of it, orbax
    would fail half-way, in the background, with pages of errors. (Object stores do not fill.)"""
    if workdir_lib.is_url(self.directory):
      return None
    need = 1.05 * sum(x.nbytes for x in jax.tree.leaves(state)) + _METADATA_BYTES
    free = shutil.disk_usage(self.directory).free
    if free >= need:
      return None
    return (f'No space left on device: it needs {need / 2**20:.1f} MiB, '
            f'{free / 2**20:.1f} MiB are free')

  def check(self):
    """Raise SaveFailed if the last asynchronous save failed; call at dispatch boundaries."""
    if self._saving is None:
      return
    try:
      self.manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      raise self._failed(self._saving, e) from e

  def _failed(self, step, error):
    step_saved = [s for s in self.all_steps() if s != step]
    return SaveFailed(f'could not save the checkpoint of step {step} in {self.directory}: '
                      f'{_short(error)}; stopped there, the last saved checkpoint is '
                      f'{"step " + str(step_saved[-1]) if step_saved else "none"}; fix that and '
                      'rerun the same command to resume')

  def close(self, raising=True):
    """Wait for the save in flight; raises SaveFailed if it failed, unless raising=False (the
    run is already failing for another reason, which is the one to report)."""
    if self.manager is None:
      return
    try:
      self._wait()
    except SaveFailed as e:
      if raising:
        raise
      logging.warning('%s', e)
    finally:
      self._saving = None
      # orbax's close() leaves the clean-up of old temporary folders, started at construction,
      # running; a process that exits before it ends gets a traceback from its thread.
      self.manager._maybe_await_cleanup_tmp_directory()  # pylint: disable=protected-access
      self.manager.close()
      self.manager = None


def abstract_state(method, config, mesh):
  replicated = parallel.replicated(mesh)
  shapes = jax.eval_shape(functools.partial(method.init_state, config), jax.random.PRNGKey(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)


def read_config(workdir) -> ml_collections.ConfigDict:
  """The config a workdir's run saved (config.json, its renamed keys upgraded), without
  touching its checkpoints."""
  path = epath.Path(workdir) / 'config.json'
  if not path.exists():
    raise UserError(f'{workdir} holds no training run (no config.json); pass the --workdir of one')
  return ml_collections.ConfigDict(config_lib.upgrade(json.loads(path.read_text())))


def load(workdir, step=None):
  """(config, state) of a finished or running workdir, at `step` or its latest checkpoint."""
  config = read_config(workdir)
  ckpt = Checkpointer(epath.Path(workdir) / 'checkpoints', config, read_only=True)
  try:
    available = ckpt.all_steps()
    if step is not None and step not in available:
      raise UserError(f'no checkpoint at step {step} in {workdir}/checkpoints; available: '
                      f'{available or "none"}')
    state = ckpt.restore(abstract_state(methods.get(config.method), config, parallel.make_mesh()),
                         step)
    if state is None:
      raise UserError(f'no checkpoint in {workdir}/checkpoints that can be read; available: '
                      f'{available or "none"}')
    return config, state
  finally:
    ckpt.close()
