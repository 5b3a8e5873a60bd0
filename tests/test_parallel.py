"""Data parallelism: 8 simulated devices match 1, and two processes train and checkpoint.

The runs use Adam eps 1e-4 instead of 1e-8: the relativistic loss is blind to a shift of every
score, so D's last bias has an analytic gradient of 0, and Adam's first step, sign(g), would
turn the rounding noise of another summation order into a +-lr update. Several devices also
take another path on purpose: D scores reals and fakes in one pass (msggan.joins_d_passes), so
these tests check it against the one-device step too.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import FAST_COMPILE, ROOT, run_cli
from gans import bench

RUN = ['train.py', '--config', 'configs/msggan_digits.py:tiny', '--config.steps_per_dispatch=1',
       '--config.log_every=1', '--config.optim.eps=1e-4', '--config.num_steps=10',
       '--config.checkpoint_every=5']


def losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return np.array([[r['d_loss'], r['g_loss'], r['real_score'], r['fake_score']] for r in rows])


@pytest.fixture(scope='module')
def one_device_losses(tmp_path_factory):
  """The reference both tests compare with: the same run on one device, in one process."""
  workdir = tmp_path_factory.mktemp('one')
  out = run_cli(RUN + ['--workdir', str(workdir)])
  assert out.returncode == 0, out.stderr
  return losses(workdir)


# One 8-device process trains every method's tiny config (a process start and the imports once):
# name -> (config module, overrides, the logged columns that must match one device's).
EIGHT_DEVICE_RUNS = {
    'msggan': ('configs.msggan_digits',
               {'steps_per_dispatch': 1, 'log_every': 1, 'optim.eps': 1e-4, 'num_steps': 10,
                'checkpoint_every': 5}, None),
    # BEGAN's D scores reals and fakes in one joined pass (parallel.concat_batch), laid out
    # differently on 8 devices; k integrates the losses, so a drift shows in it.
    'began': ('configs.began_digits',
              {'steps_per_dispatch': 1, 'log_every': 1, 'optim.eps': 1e-4, 'num_steps': 10,
               'checkpoint_every': 1000, 'sample_every': 1000},
              ('d_loss', 'loss_real', 'loss_fake', 'M', 'k')),
    # CoGAN's D has BatchNorm and dropout: the batch statistics are global-batch ones and the
    # dropout masks do not depend on the sharding (partitionable threefry), so 8 devices train
    # the same run: nothing may differ by design. Its Adam eps is fixed at 1e-8 (a gradient
    # near 0 gives a +-lr step on rounding noise), hence the looser tolerance: the 8-device
    # scores drifted by <= 1.3e-4 over these 10 steps, a per-device dropout stream by 1e-2.
    'cogan': ('configs.cogan_digits_negative',
              {'steps_per_dispatch': 1, 'log_every': 1, 'num_steps': 10,
               'checkpoint_every': 1000, 'sample_every': 1000},
              ('d_loss', 'g_loss', 'real_score', 'fake_score')),
}
EIGHT = """
import importlib, json, os, sys
from gans import cli, trainer
cli.enable_compilation_cache()
for name, (module, overrides, _) in json.loads(sys.argv[2]).items():
  config = importlib.import_module(module).get_config('tiny')
  config.update_from_flattened_dict(overrides)
  trainer.train(config, os.path.join(sys.argv[1], name))
"""


@pytest.fixture(scope='module')
def eight_device_runs(tmp_path_factory):
  """Workdirs of the EIGHT_DEVICE_RUNS trained on 8 simulated devices, in one process."""
  root = tmp_path_factory.mktemp('eight')
  out = run_cli(['-c', EIGHT, str(root), json.dumps(EIGHT_DEVICE_RUNS)],
                env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert out.returncode == 0, out.stderr[-3000:]
  return root


def logged(workdir, columns):
  """The columns of the training rows of metrics.jsonl (evaluation rows have other keys)."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return np.array([[r[c] for c in columns] for r in rows if columns[0] in r])


def test_eight_devices_match_one(eight_device_runs, one_device_losses):
  assert one_device_losses.shape == (10, 4)
  np.testing.assert_allclose(losses(eight_device_runs / 'msggan'), one_device_losses, rtol=2e-4,
                             atol=2e-5)


@pytest.mark.parametrize('name, rtol, atol', [('began', 2e-4, 2e-5), ('cogan', 1e-3, 5e-4)])
def test_eight_devices_match_one_began_and_cogan(name, rtol, atol, eight_device_runs, tmp_path):
  """The same config on one device (this process) and on 8: the same losses, step by step."""
  import importlib
  from gans import trainer
  module, overrides, columns = EIGHT_DEVICE_RUNS[name]
  config = importlib.import_module(module).get_config('tiny')
  config.update_from_flattened_dict(overrides)
  trainer.train(config, str(tmp_path))
  one, eight = logged(tmp_path, columns), logged(eight_device_runs / name, columns)
  assert one.shape == (10, len(columns))
  np.testing.assert_allclose(eight, one, rtol=rtol, atol=atol)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_and_checkpoint(tmp_path, one_device_losses):
  """jax.distributed over loopback with gloo, one CPU device per process (see DESIGN.md)."""
  workdir = str(tmp_path / 'run')
  _finish(_two_processes(workdir, []))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '5']
  assert len(losses(workdir)) == 10  # only process 0 writes metrics
  np.testing.assert_allclose(losses(workdir), one_device_losses, rtol=2e-4, atol=2e-5)


def _two_processes(workdir, args):
  """Start train.py as two jax.distributed processes (one CPU device each, see DESIGN.md)."""
  port, procs = _free_port(), []
  for pid in range(2):
    env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'JAX_NUM_PROCESSES': '2',
           'JAX_PROCESS_ID': str(pid), 'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}',
           'XLA_FLAGS': FAST_COMPILE}
    cmd = ['timeout', '-s', 'KILL', '240', sys.executable, *RUN, *args, '--workdir', workdir]
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  return procs


def _finish(procs):
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  return [err for _, err in outputs]


def test_a_signal_to_one_process_stops_both_at_the_same_step(tmp_path):
  """A preemption notice reaching one host: both save the same step and exit 0 (one stopping
  alone would leave the other hung in a collective), and the resume equals an unbroken run."""
  workdir = str(tmp_path / 'signalled')
  procs = _two_processes(workdir, ['--config.num_steps=100000'])
  metrics, deadline = os.path.join(workdir, 'metrics.jsonl'), time.time() + 180
  while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics)):
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGTERM)
  errors = _finish(procs)
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit())
  stopped = [f'stopped by a signal at step {steps[-1]}' in err for err in errors]
  assert stopped == [True, False], errors  # process 0 reports; both stopped there (exit 0)
  total = steps[-1] + 3
  _finish(_two_processes(workdir, [f'--config.num_steps={total}']))
  whole = str(tmp_path / 'whole')
  _finish(_two_processes(whole, [f'--config.num_steps={total}']))
  np.testing.assert_array_equal(losses(workdir), losses(whole))


# All-reduced bytes over the trained parameters' bytes: each gradient once, plus statistics.
# CoGAN's D sees reals and fakes in separate passes (their own BatchNorm batches and dropout
# masks, spec coupled.md §4 #8), so D's gradients are all-reduced twice. MSG-GAN's minibatch
# stddev gathers every device's (shift, offset) per statistic element to stay precise on
# collapsed batches (layers._every_shard), which at this tiny width is most of a gradient's
# size again (docs/performance.md has the figures).
MAX_ALL_REDUCED = {'configs/msggan_digits.py:tiny': 1.9, 'configs/began_digits.py:tiny': 1.25,
                   'configs/cogan_digits_negative.py:tiny': 1.6}
BENCH = """
import json, sys
from gans import bench
for path in sys.argv[1:]:
  config = bench.load_config(path, {'batch_size': 16, 'model.dtype': 'float32'})
  print(json.dumps({'config': path, **bench.benchmark(config, repeats=1)}))
"""


@pytest.fixture(scope='module')
def bench_on_eight_devices():
  out = run_cli(['-c', BENCH, *MAX_ALL_REDUCED],
                env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert out.returncode == 0, out.stderr
  return {r['config']: r for r in map(json.loads, out.stdout.strip().splitlines())}


@pytest.mark.parametrize('config', MAX_ALL_REDUCED)
def test_eight_devices_split_the_work_without_host_round_trips(config, bench_on_eight_devices):
  """Weak scaling by construction: the compiled step on 8 devices does 1/8 of the FLOPs on each
  (G and D(fake) included, not only the real batch), talks by all-reduces only, and never
  stops for the host. Before parallel.shard_batch, z was replicated and every device ran G on
  the whole batch (5.8x the FLOPs, 96.6 vs 333+ img/s on 8 simulated devices); before
  parallel.concat_batch, BEGAN's joined D pass and CoGAN's shared D layers moved rows between
  devices. All-reduced bytes are bounded by the trained parameters' (the gradients)."""
  one = bench.benchmark(bench.load_config(config, {'batch_size': 16, 'model.dtype': 'float32'}),
                        repeats=1)
  eight = bench_on_eight_devices[config]
  assert (one['devices'], eight['devices']) == (1, 8)
  assert eight['xla_gflop_per_image'] == pytest.approx(one['xla_gflop_per_image'], rel=0.1)
  assert eight['all_reduces'] > 0 and eight['other_collectives'] == 0
  # Before msggan.joins_d_passes, MSG-GAN's D gradients went twice (1.6x).
  assert eight['all_reduce_kb'] < MAX_ALL_REDUCED[config] * eight['trained_parameters_kb']
  assert one['host_transfers'] == eight['host_transfers'] == 0


def test_concat_batch_keeps_rows_in_place_and_splits_back():
  code = """
import jax, jax.numpy as jnp, numpy as np
from gans import parallel
mesh = parallel.make_mesh()
a, b = jnp.arange(16.).reshape(16, 1), 100 + jnp.arange(8.).reshape(8, 1)
with jax.set_mesh(mesh):
  f = jax.jit(lambda a, b: parallel.split_batch(parallel.concat_batch([a, b]) * 2, [16, 8]))
  x, y = f(jax.device_put(a, parallel.batch_sharding(mesh)),
           jax.device_put(b, parallel.batch_sharding(mesh)))
np.testing.assert_array_equal(x, 2 * a); np.testing.assert_array_equal(y, 2 * b)
print('ok')
"""
  out = run_cli(['-c', code], env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr
