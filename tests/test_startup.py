"""Pod-ready start-up: joining a multi-process launch, each host reading only its own rows, and
a mesh in the order of the physical topology.

Launch environments are simulated: their variables are set, the probes of the machine
(distributed._tpu_chips, distributed._gce_metadata) replaced, and jax.distributed.initialize records
its arguments instead of joining. Device placements use 8 simulated CPU devices in a subprocess.
"""
import inspect
import os
import socket
import time
import types

import jax
import pytest

from conftest import run_cli
from gans import distributed
from gans.errors import UserError

EIGHT = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
LAUNCH_VARIABLES = ('JAX_NUM_PROCESSES', 'JAX_COORDINATOR_ADDRESS', 'JAX_PROCESS_ID', 'SLURM_',
                    'OMPI_', 'PMIX_', 'PRTE_', 'TPU_', 'MEGASCALE_', 'GANS_DISTRIBUTED')
SLURM_STEP = {'SLURM_JOB_ID': '4242', 'SLURM_STEP_NODELIST': 'node[001-004]', 'SLURM_PROCID': '0',
              'SLURM_LOCALID': '0'}
GCE_WORKERS = 'w0:0:10.0.0.2,w1:1:10.0.0.3,w2:2:10.0.0.4,w3:3:10.0.0.5'


@pytest.fixture
def launch(monkeypatch):
  """No launcher, no TPU, and jax.distributed.initialize recording its calls (`.joins`) and
  jax.config.update its settings (`.settings`); `.env(**vars)` simulates a launcher."""
  for key in list(os.environ):
    if key.startswith(LAUNCH_VARIABLES):
      monkeypatch.delenv(key)
  joins, settings = [], []
  monkeypatch.setattr(jax.distributed, 'initialize', lambda **kwargs: joins.append(kwargs))
  monkeypatch.setattr(jax.config, 'update', lambda name, value: settings.append((name, value)))
  monkeypatch.setattr(distributed, '_tpu_chips', lambda: False)
  monkeypatch.setattr(distributed, '_gce_metadata', _no_metadata_server)

  def env(**variables):
    for key, value in variables.items():
      monkeypatch.setenv(key, value)
  return types.SimpleNamespace(joins=joins, settings=settings, env=env)


def _no_metadata_server(key):
  raise AssertionError(f'the metadata server was asked for {key} on a machine without TPUs')


def _on_gce_tpu(monkeypatch, **attributes):
  monkeypatch.setattr(distributed, '_tpu_chips', lambda: True)
  monkeypatch.setattr(distributed, '_gce_metadata', attributes.get)


def test_nothing_detected_does_not_join_or_wait(launch):
  t0 = time.perf_counter()
  distributed.initialize()
  assert launch.joins == [] and time.perf_counter() - t0 < 1


def test_explicit_variables_join_with_their_arguments_and_gloo(launch):
  launch.env(JAX_NUM_PROCESSES='2', JAX_PROCESS_ID='1', JAX_COORDINATOR_ADDRESS='10.0.0.1:1234')
  distributed.initialize()
  [join] = launch.joins
  assert join == {'coordinator_address': '10.0.0.1:1234', 'num_processes': 2, 'process_id': 1,
                  'initialization_timeout': join.get('initialization_timeout')}
  assert 0 < join['initialization_timeout'] <= 600  # bounded, whatever JAX's default
  assert ('jax_cpu_collectives_implementation', 'gloo') in launch.settings


def test_explicit_variables_missing_one_is_a_one_line_error(launch):
  launch.env(JAX_NUM_PROCESSES='2', JAX_COORDINATOR_ADDRESS='10.0.0.1:1234')
  with pytest.raises(UserError, match='JAX_PROCESS_ID') as e:
    distributed.initialize()
  assert '\n' not in str(e.value) and launch.joins == []


@pytest.mark.parametrize('tasks, joins', [('1', 0), ('4', 1)])
def test_slurm_joins_only_a_step_of_several_tasks(launch, tasks, joins):
  launch.env(SLURM_NTASKS=tasks, **SLURM_STEP)
  distributed.initialize()
  assert [set(join) for join in launch.joins] == [{'initialization_timeout'}] * joins


def test_slurm_allocation_shell_without_srun_is_one_process(launch):
  """python run from an salloc/sbatch shell: SLURM_NTASKS=4, but srun started no tasks."""
  launch.env(SLURM_NTASKS='4', SLURM_JOB_ID='4242', SLURM_NODELIST='node[001-004]')
  distributed.initialize()
  assert launch.joins == []


@pytest.mark.parametrize('ranks, joins', [('1', 0), ('2', 1)])
def test_open_mpi_joins_several_ranks(launch, ranks, joins):
  launch.env(OMPI_COMM_WORLD_SIZE=ranks, OMPI_COMM_WORLD_RANK='0',
             OMPI_MCA_orte_hnp_uri='1531576320.0;tcp://10.96.0.1:34911')
  distributed.initialize()
  assert len(launch.joins) == joins


@pytest.mark.parametrize('hosts, joins', [('h0,h1,h2,h3', 1), ('h0', 0)])
def test_gke_tpu_slice_joins_when_it_has_several_hosts(launch, monkeypatch, hosts, joins):
  monkeypatch.setattr(distributed, '_tpu_chips', lambda: True)
  launch.env(TPU_WORKER_HOSTNAMES=hosts, TPU_WORKER_ID='0')
  distributed.initialize()
  assert [set(join) for join in launch.joins] == [{'initialization_timeout'}] * joins


def test_tpu_variables_without_tpu_chips_do_not_join(launch):
  launch.env(TPU_WORKER_HOSTNAMES='h0,h1', TPU_WORKER_ID='0')
  distributed.initialize()
  assert launch.joins == []


def test_gce_tpu_vm_of_several_workers_joins_by_the_metadata_server(launch, monkeypatch):
  _on_gce_tpu(monkeypatch, **{'worker-network-endpoints': GCE_WORKERS,
                              'agent-worker-number': '2'})
  distributed.initialize()
  [join] = launch.joins
  assert set(join) == {'initialization_timeout'}  # JAX reads the rest from the metadata too


@pytest.mark.parametrize('tpu_env, joins', [('', 0), ("MEGASCALE_NUM_SLICES: '2'\n", 1)])
def test_single_host_tpu_vm_runs_alone_unless_it_is_one_of_several_slices(launch, monkeypatch,
                                                                         tpu_env, joins):
  """One worker with all its chips is one process: nothing to join, and nothing that could fail
  to. Two single-host slices of a multislice launch are two processes."""
  _on_gce_tpu(monkeypatch, **{'worker-network-endpoints': 'w0:0:10.0.0.2',
                              'agent-worker-number': '0', 'tpu-env': tpu_env})
  distributed.initialize()
  assert len(launch.joins) == joins


def test_override_off_never_joins(launch, monkeypatch):
  _on_gce_tpu(monkeypatch, **{'worker-network-endpoints': GCE_WORKERS})
  launch.env(GANS_DISTRIBUTED='off', SLURM_NTASKS='4', **SLURM_STEP)
  distributed.initialize()
  assert launch.joins == []


def test_override_on_joins_what_jax_detects_itself(launch):
  launch.env(GANS_DISTRIBUTED='on')
  distributed.initialize()
  assert [set(join) for join in launch.joins] == [{'initialization_timeout'}]


def test_override_on_joins_a_single_host_tpu_vm(launch, monkeypatch):
  _on_gce_tpu(monkeypatch, **{'worker-network-endpoints': 'w0:0:10.0.0.2'})
  launch.env(GANS_DISTRIBUTED='on')
  distributed.initialize()
  assert len(launch.joins) == 1


def test_override_with_another_value_is_a_one_line_error(launch):
  launch.env(GANS_DISTRIBUTED='yes')
  with pytest.raises(UserError, match='GANS_DISTRIBUTED.*auto, on or off'):
    distributed.initialize()


def test_a_join_that_raises_is_a_one_line_error_naming_the_launch(launch, monkeypatch):
  def fail(**kwargs):
    raise RuntimeError('Failed to recognize coordinator address node001\nsecond line')
  monkeypatch.setattr(jax.distributed, 'initialize', fail)
  launch.env(SLURM_NTASKS='4', **SLURM_STEP)
  with pytest.raises(UserError) as e:
    distributed.initialize()
  message = str(e.value)
  assert '\n' not in message
  assert 'SLURM' in message and 'Failed to recognize coordinator address node001' in message
  assert 'GANS_DISTRIBUTED=off' in message


def test_metadata_probe_gives_up_fast_without_a_metadata_server(monkeypatch):
  monkeypatch.setenv('GCE_METADATA_IP', '192.0.2.1')  # TEST-NET-1: nothing answers there
  t0 = time.perf_counter()
  assert distributed._gce_metadata('worker-network-endpoints') is None
  assert time.perf_counter() - t0 < 3


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_cli_reports_a_join_that_times_out_in_one_line(tmp_path):
  """JAX itself aborts the process with a fatal log when no peer answers; the CLI says which
  launch it waited for instead, with exit code 2."""
  env = {'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '1', 'GANS_DISTRIBUTED_TIMEOUT': '3',
         'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{_free_port()}'}
  out = run_cli(['train.py', '--workdir', str(tmp_path / 'run')], env=env, timeout=90)
  assert out.returncode == 2, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith('error: could not join') and 'JAX_NUM_PROCESSES' in last, out.stderr
  assert 'within 3 s' in last


def _subprocess(function):
  """Run `function` (self-contained) on 8 simulated CPU devices; it prints ok."""
  out = run_cli(['-c', f'{inspect.getsource(function)}\n{function.__name__}()'], env=EIGHT)
  assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-3000:]


def _rows_follow_the_device_assignment():
  import jax
  import numpy as np
  from gans import parallel
  devices = jax.devices()
  order = [3, 6, 0, 5, 2, 7, 1, 4]  # mesh position i holds devices[order[i]]: 2 rows each
  mesh = jax.sharding.Mesh(np.asarray(devices)[order], (parallel.DATA,))
  sharding = parallel.batch_sharding(mesh, batch_axis=1)
  batch = np.arange(2 * 16 * 3).reshape(2, 16, 3)  # [k, B, ...] as the feeder shards it
  blocks = {}
  for host in (devices[:4], devices[4:]):  # as two processes of 4 devices would own them
    mine = {d.id for d in host}
    expected = [r for i, d in enumerate(order) if devices[d].id in mine
                for r in (2 * i, 2 * i + 1)]
    np.testing.assert_array_equal(parallel.local_rows(sharding, batch.shape, 1, host), expected)
    reads = []
    blocks.update(parallel.host_blocks(sharding, batch.shape,
                                       lambda rows: reads.append(rows) or batch[:, rows], 1, host))
    assert len(reads) == 1, reads
    np.testing.assert_array_equal(reads[0], expected)  # its own rows, no more
  x = jax.make_array_from_single_device_arrays(
      batch.shape, sharding, [jax.device_put(b, d) for d, b in blocks.items()])
  np.testing.assert_array_equal(np.asarray(x), batch)
  y = parallel.global_array(sharding, batch.shape, lambda rows: batch[:, rows], 1)
  assert y.sharding == sharding
  for shard in y.addressable_shards:
    np.testing.assert_array_equal(shard.data, batch[shard.index])
  print('ok')


def test_each_host_reads_exactly_the_rows_its_devices_hold():
  """With a mesh not in device order, the span from a host's first row to its last is most of
  the batch: [0, 14) for a host holding 8 of the 16 rows here."""
  _subprocess(_rows_follow_the_device_assignment)


def _mesh_follows_the_topology():
  import jax
  from gans import parallel
  devices = jax.devices()
  mesh = parallel.make_mesh()
  assert mesh.axis_names == (parallel.DATA,) and mesh.devices.shape == (8,)
  assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in devices)
  assert mesh.axis_types == (jax.sharding.AxisType.Auto,)  # not jax.make_mesh's Explicit
  topology = [devices[i] for i in (0, 1, 3, 2, 4, 5, 7, 6)]  # what a TPU ring might look like
  make_mesh = jax.make_mesh
  jax.make_mesh = lambda shape, names, **kw: make_mesh(shape, names, **{**kw, 'devices': topology})
  assert list(parallel.make_mesh().devices.flat) == topology

  def unplaceable(*args, **kwargs):
    raise ValueError('`jax.make_mesh` does not support multi-slice topologies.')
  jax.make_mesh = unplaceable
  assert list(parallel.make_mesh().devices.flat) == devices
  print('ok')


def test_mesh_takes_the_topology_order_and_falls_back_to_device_order():
  _subprocess(_mesh_follows_the_topology)
