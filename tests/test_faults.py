"""Faults and bad input at the trainer: each ends in a recovery or one clear error, and nothing
that was saved is lost (damaged checkpoints, deleted checkpoints, a second run in the workdir,
unwritable workdirs, a full disk, non-finite parameters, a changed state structure)."""
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest

from conftest import ROOT, tiny_config
from gans import checkpoint, trainer
from gans import workdir as workdir_lib
from gans.errors import UserError
from test_train import assert_same_state, read_metrics


def steps_saved(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit())


def largest_file(directory):
  files = [os.path.join(d, f) for d, _, names in os.walk(directory) for f in names]
  return max(files, key=os.path.getsize)


def test_damaged_latest_checkpoint_costs_only_itself(tmp_path, capsys):
  whole = trainer.train(tiny_config(num_steps=40), str(tmp_path / 'whole'))
  workdir = str(tmp_path / 'damaged')
  trainer.train(tiny_config(num_steps=30), workdir)
  with open(largest_file(os.path.join(workdir, 'checkpoints', '30', 'state')), 'r+b') as f:
    f.truncate(100)
  capsys.readouterr()
  resumed = trainer.train(tiny_config(num_steps=40), workdir)
  assert 'resumed from step 20' in capsys.readouterr().err
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '30.damaged'))
  assert steps_saved(workdir) == [20, 30, 40]
  assert_same_state(whole, resumed)
  assert [m['step'] for m in read_metrics(workdir)] == [10, 20, 30, 40]


def test_a_run_without_its_checkpoints_is_refused_not_restarted(tmp_path):
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=20), workdir)
  history = read_metrics(workdir)
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  with pytest.raises(UserError,
                     match=r'saved checkpoints up to step 20, but none is left.*--fresh'):
    trainer.train(tiny_config(num_steps=20), workdir)
  assert read_metrics(workdir) == history  # nothing erased
  state = trainer.train(tiny_config(num_steps=10), workdir, fresh=True)
  assert int(state.step) == 10 and [m['step'] for m in read_metrics(workdir)] == [10]
  with pytest.raises(UserError, match=r'--fresh starts over only in a workdir without checkp'):
    trainer.train(tiny_config(num_steps=10), workdir, fresh=True)


def test_a_run_killed_before_its_first_checkpoint_completed_starts_again(tmp_path):
  """Its metrics may be logged past the step of the save in flight (orbax waits for a save
  only when the next one starts): nothing was saved, so nothing is lost by starting over."""
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=20), workdir)
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  os.remove(os.path.join(workdir, 'last_checkpoint.json'))  # as if killed before save 10 ended
  assert int(trainer.train(tiny_config(num_steps=10), workdir).step) == 10
  assert [m['step'] for m in read_metrics(workdir)] == [10]


def _dead_pid():
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def test_one_run_per_workdir(tmp_path, caplog):
  lock = tmp_path / workdir_lib.LOCK
  host = socket.gethostname()
  for holder in ({'host': host, 'pid': os.getpid()}, {'host': 'other-host', 'pid': 1}):
    lock.write_text(json.dumps({**holder, 'since': 'today'}))
    with pytest.raises(UserError, match=rf'in use by pid {holder["pid"]} on {holder["host"]}'):
      trainer.train(tiny_config(num_steps=10), str(tmp_path))
    assert not (tmp_path / 'config.json').exists()  # refused before writing anything
  lock.write_text(json.dumps({'host': host, 'pid': _dead_pid(), 'since': 'today'}))
  trainer.train(tiny_config(num_steps=10), str(tmp_path))  # the killed run's lock is taken over
  assert 'taking over' in caplog.text
  assert not lock.exists()  # released at the end


def test_unusable_workdirs_are_one_line(tmp_path, monkeypatch):
  (tmp_path / 'file').write_text('')
  with pytest.raises(UserError, match=r'is a file; pass a directory'):
    trainer.train(tiny_config(), str(tmp_path / 'file'))

  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, 'Read-only file system')
  monkeypatch.setattr(workdir_lib.os, 'open', read_only)
  with pytest.raises(UserError, match=r'cannot write to --workdir .*: Read-only file system'):
    trainer.train(tiny_config(), str(tmp_path / 'run'))


def test_a_full_disk_stops_the_run_at_the_failed_save(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=10), workdir)
  free = lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000)  # pylint: disable=protected-access
  monkeypatch.setattr(checkpoint.shutil, 'disk_usage', free)
  with pytest.raises(checkpoint.SaveFailed, match=r'could not save the checkpoint of step 20 .*'
                     r'no space left on device.*last saved checkpoint is step 10'):
    trainer.train(tiny_config(num_steps=40), workdir)
  assert steps_saved(workdir) == [10]
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == ['10']  # no half-written step


def test_a_failed_asynchronous_save_stops_the_run(tmp_path, monkeypatch):
  """Errors the space check cannot foresee surface from orbax's background thread."""
  def failing(self):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "g_params": Failed to write: '
                     'No space left on device [os_error_code=28]')
  monkeypatch.setattr('orbax.checkpoint.CheckpointManager.check_for_errors', failing)
  with pytest.raises(checkpoint.SaveFailed, match=r'step 10 .*no space left on device'):
    trainer.train(tiny_config(num_steps=30), str(tmp_path))


def test_nonfinite_parameters_are_never_saved(tmp_path):
  """The losses of a step are computed before its update: the parameter norms catch it."""
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=10), workdir)
  with pytest.raises(trainer.Diverged, match=r'g_param_norm.* became NaN/Inf at step 11'):
    trainer.train(tiny_config(num_steps=11, **{'optim.g_lr': 1e39}), workdir)  # one step
  assert steps_saved(workdir) == [10]


def coupled_config(**overrides):
  from configs import cogan_digits_negative
  config = cogan_digits_negative.get_config('tiny')
  config.update_from_flattened_dict({'eval.num_pairs': 0, **overrides})
  return config


@pytest.mark.parametrize('change', [{'reg.cc': 10.0}, {'model.width': 8},
                                    {'model.d_shared': 1}])
def test_a_changed_state_structure_is_refused_with_the_config_keys(tmp_path, change):
  from gans.methods import coupled
  config = coupled_config()
  saver = checkpoint.Checkpointer(tmp_path / 'checkpoints', config)
  saver.save(5, jax.jit(lambda k: coupled.init_state(config, k))(jax.random.PRNGKey(0)))
  saver.close()
  (tmp_path / 'config.json').write_text(config.to_json())
  first = next(iter(change))
  with pytest.raises(UserError, match=rf'another (config|state).*{first}: .* -> '):
    trainer.train(coupled_config(**change), str(tmp_path))
  assert not (tmp_path / workdir_lib.LOCK).exists()


def test_config_of_every_start_is_kept(tmp_path):
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=10), workdir)
  trainer.train(tiny_config(num_steps=20, **{'optim.g_lr': 1e-4}), workdir)
  history = sorted(os.listdir(tmp_path / 'config_history'))
  assert history == ['00000000.json', '00000010.json']
  first = json.loads((tmp_path / 'config_history' / history[0]).read_text())
  assert first['optim']['g_lr'] != 1e-4
  assert json.loads((tmp_path / 'config.json').read_text())['optim']['g_lr'] == 1e-4


def test_a_failed_start_leaves_no_checkpoint_folder(tmp_path):
  with pytest.raises(UserError):
    trainer.train(tiny_config(**{'data.name': 'folder', 'data.path': str(tmp_path / 'no')}),
                  str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_the_run_says_what_it_did(tmp_path, capsys):
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=10), workdir)
  assert f'done: step 10; checkpoint {tmp_path}/checkpoints/10' in capsys.readouterr().err
  trainer.train(tiny_config(num_steps=10), workdir)
  assert 'already at step 10 of 10: nothing to do' in capsys.readouterr().err
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 15, "d_lo')  # killed mid-write
  trainer.train(tiny_config(num_steps=20), workdir)
  assert 'resumed from step 10' in capsys.readouterr().err
  assert [m['step'] for m in read_metrics(workdir)] == [10, 20]


def test_a_second_interrupt_exits_at_once_in_one_line(tmp_path):
  """The first SIGINT asks for a checkpoint at the next boundary; a second one means now."""
  args = [os.path.join(ROOT, 'train.py'), '--config', 'configs/msggan_digits.py:tiny',
          '--workdir', str(tmp_path), '--config.num_steps=100000', '--config.log_every=200',
          '--config.steps_per_dispatch=200', '--config.checkpoint_every=100000',
          '--config.sample_every=100000']  # a dispatch takes about a second: time for both
  proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  metrics, deadline = tmp_path / 'metrics.jsonl', time.time() + 120
  while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size):
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  time.sleep(0.05)  # two signals sent at once are delivered as one
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  assert 'Traceback' not in err and err.strip().splitlines()[-1].startswith(
      'error: interrupted again at step'), err


def test_health_norms_are_the_networks_norms():
  """Per network: the norm of the parameters after the step and of the step's change."""
  import numpy as np
  from gans.methods import msggan
  config = tiny_config()
  state = msggan.init_state(config, jax.random.PRNGKey(0))
  images = jax.random.randint(jax.random.PRNGKey(1), (8, 8, 8, 1), 0, 256).astype('uint8')
  new, metrics = jax.jit(lambda s, x: msggan.train_step(config, s, x))(state, images)
  norm = lambda tree: np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                                  for x in jax.tree.leaves(tree)))
  for net in ('g', 'd'):
    old, now = getattr(state, f'{net}_params'), getattr(new, f'{net}_params')
    np.testing.assert_allclose(metrics[f'{net}_param_norm'], norm(now), rtol=1e-5)
    np.testing.assert_allclose(metrics[f'{net}_update_norm'],
                               norm(jax.tree.map(np.subtract, now, old)), rtol=1e-4)
    assert metrics[f'{net}_grad_norm'] > 0
  np.testing.assert_allclose(metrics['g_ema_param_norm'], norm(new.g_ema), rtol=1e-5)


def test_a_reader_leaves_a_training_runs_checkpoints_as_they_are(tmp_path):
  """eval.py and sample.py read workdirs that may still be training: the save the trainer has
  in flight (a temporary folder) must survive them, and so must a checkpoint they cannot read
  (the trainer decides what is damaged). The reader falls back to the one before."""
  workdir = str(tmp_path)
  trainer.train(tiny_config(num_steps=20), workdir)
  ckpts = os.path.join(workdir, 'checkpoints')
  in_flight = os.path.join(ckpts, '30.orbax-checkpoint-tmp-1764000000000000')
  shutil.copytree(os.path.join(ckpts, '20'), in_flight)
  with open(largest_file(os.path.join(ckpts, '20', 'state')), 'r+b') as f:
    f.truncate(100)
  _, state = checkpoint.load(workdir)
  assert int(state.step) == 10
  assert os.path.isdir(in_flight) and steps_saved(workdir) == [10, 20]
