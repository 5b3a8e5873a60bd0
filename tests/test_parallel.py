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


def test_eight_devices_match_one(tmp_path, one_device_losses):
  eight = run_cli(RUN + ['--workdir', str(tmp_path)],
                  env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  assert eight.returncode == 0, eight.stderr
  assert one_device_losses.shape == (10, 4)
  np.testing.assert_allclose(losses(tmp_path), one_device_losses, rtol=2e-4, atol=2e-5)


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
# masks, spec coupled.md §4 #8), so D's gradients are all-reduced twice (170 of 114 KB).
# MSG-GAN's minibatch stddev gathers every device's (shift, offset) per statistic element to
# stay precise on collapsed batches (layers._every_shard): at this tiny width that is 60 KB
# beside 83 KB of gradients; at width 512 it is about 1% of them on 8 devices.
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
