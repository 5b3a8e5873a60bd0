"""Orbax checkpoints of the whole training state, with the config that made them.

Saves are asynchronous (the device-to-host copy happens before save() returns, so the next
step may donate the buffers) and atomic: orbax writes into a temporary directory and renames it
when complete, so a kill mid-save leaves the previous checkpoint as the latest one.
"""
import json
import logging
import os

import orbax.checkpoint as ocp

from gans.errors import UserError

# Fields that change what the state holds or what the numbers in it mean; a resume with any of
# them changed is refused. Schedules, logging and data paths may change between runs.
COMPATIBILITY_KEYS = ('method', 'model', 'loss.name')


def _lookup(tree, dotted):
  for part in dotted.split('.'):
    tree = tree.get(part, None) if isinstance(tree, dict) else None
  return tree


def _flatten(prefix, value):
  if isinstance(value, dict):
    return {k: v for key, sub in value.items() for k, v in _flatten(f'{prefix}.{key}', sub).items()}
  return {prefix: value}


def incompatibilities(saved: dict, current: dict):
  """['model.depth: 4 -> 5', ...] for every compatibility field that differs."""
  diffs = []
  for key in COMPATIBILITY_KEYS:
    old, new = _flatten(key, _lookup(saved, key)), _flatten(key, _lookup(current, key))
    diffs += [f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in sorted(set(old) | set(new))
              if old.get(k) != new.get(k)]
  return diffs


class Checkpointer:

  def __init__(self, directory, config, keep=3, asynchronous=True):
    self.config = json.loads(config.to_json())
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=asynchronous)
    self.manager = ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                         item_names=('state', 'config'))

  def latest_step(self):
    return self.manager.latest_step()

  def restore(self, abstract_state, step=None):
    """The state at `step` (default latest); abstract_state holds ShapeDtypeStructs with shardings.

    The abstract target is what lets a run restart on a different device count.
    """
    step = self.latest_step() if step is None else step
    saved = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    diffs = incompatibilities(saved.config, self.config)
    if diffs:
      raise UserError(f'the checkpoint in {self.manager.directory} was made with another config '
                      f'({"; ".join(diffs)}); use a new --workdir or the original config')
    restored = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    logging.info('restored step %d from %s', step, self.manager.directory)
    return restored.state

  def save(self, step, state):
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self.config)), force=True)

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()
