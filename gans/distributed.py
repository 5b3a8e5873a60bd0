"""Joining the other processes of a multi-host launch (a TPU pod, SLURM, mpirun, explicit env).

Every process must join before JAX starts its backend, so this runs first thing in the CLIs.
Detection follows JAX's own order, so both pick the same environment, but asks the GCE
metadata server only where TPU chips are present: an ordinary machine never waits on it.
"""
import glob
import os
import sys
import threading
import urllib.request
from typing import NamedTuple

import jax

from gans.errors import UserError
# Every process of a launch starts within seconds of the others (srun, mpirun, gcloud
# --worker=all), but a pod's hosts may take minutes to come up: JAX's own default.
JOIN_TIMEOUT_S = 300
METADATA_TIMEOUT_S = 1.0  # the metadata server of a GCE VM answers in milliseconds
_SLURM_STEP = ('SLURM_JOB_ID', 'SLURM_STEP_NODELIST', 'SLURM_PROCID', 'SLURM_LOCALID')


class Launch(NamedTuple):
  """A multi-process launch found in the environment.

  `name` and `check` make the one line a failed join prints; `kwargs` are what
  jax.distributed.initialize cannot find itself (none, for the launchers JAX knows).
  """
  name: str
  processes: int
  check: str
  kwargs: dict


def initialize():
  """Join the other processes of a multi-process launch, if this is one.

  GANS_DISTRIBUTED=auto (default) joins when a launch of more than one process is detected:
  JAX_NUM_PROCESSES with JAX_COORDINATOR_ADDRESS and JAX_PROCESS_ID, Open MPI's mpirun, a
  SLURM srun step, a TPU slice on GKE or a Cloud TPU VM of several workers. `off` runs this
  process alone whatever is detected; `on` joins even one process, or lets JAX detect a
  launcher this function does not know. An environment variable rather than a flag, so that
  train.py, eval.py and a notebook share it and launchers pass it like JAX's own variables.
  A join waits GANS_DISTRIBUTED_TIMEOUT seconds (default JOIN_TIMEOUT_S) for the others.
  """
  mode = os.environ.get('GANS_DISTRIBUTED', 'auto').strip().lower()
  if mode not in ('auto', 'on', 'off'):
    raise UserError(f'GANS_DISTRIBUTED={os.environ["GANS_DISTRIBUTED"]!r}: use auto, on or off')
  if mode == 'off' or jax.distributed.is_initialized():
    return
  launch = _detect_launch()
  if mode == 'on' and launch is None:
    launch = Launch('a launch JAX detects itself (GANS_DISTRIBUTED=on)', 0,
                    'that JAX supports this launcher, or set JAX_COORDINATOR_ADDRESS, '
                    'JAX_NUM_PROCESSES and JAX_PROCESS_ID', {})
  if launch is not None and (mode == 'on' or launch.processes > 1):
    _join(launch, _int_env('GANS_DISTRIBUTED_TIMEOUT', JOIN_TIMEOUT_S))


def _detect_launch():
  """The first launch found, in JAX's order of detection, so that both agree on which it is."""
  for detect in (_explicit, _open_mpi, _slurm, _gke_tpu, _gce_tpu):
    launch = detect()
    if launch is not None:
      return launch
  return None


def _explicit():
  """A launch by hand: the variables name the coordinator, the count and this process."""
  if 'JAX_NUM_PROCESSES' not in os.environ:
    return None
  n = _int_env('JAX_NUM_PROCESSES')
  meaning = {'JAX_COORDINATOR_ADDRESS': 'the host:port of process 0',
             'JAX_PROCESS_ID': f'this process\'s number, 0 to {n - 1}'}
  missing = [f'{k} ({v})' for k, v in meaning.items() if k not in os.environ]
  if n > 1 and missing:
    raise UserError(f'JAX_NUM_PROCESSES={n} needs {" and ".join(missing)} too')
  kwargs = {'coordinator_address': os.environ.get('JAX_COORDINATOR_ADDRESS'),
            'num_processes': n, 'process_id': _int_env('JAX_PROCESS_ID', 0)}
  return Launch(f'the {n} processes named by JAX_NUM_PROCESSES', n,
                'that every process has the same JAX_COORDINATOR_ADDRESS (process 0\'s host:port, '
                'reachable from all) and its own JAX_PROCESS_ID', kwargs)


def _open_mpi():
  """mpirun of Open MPI; JAX finds the coordinator from the launcher's address."""
  n = _int_env('OMPI_COMM_WORLD_SIZE', 0)
  if not n:
    return None
  return Launch(f'the {n} ranks of an Open MPI launch (mpirun)', n,
                'that every rank can reach the host mpirun ran on; where this JAX does not '
                'detect this Open MPI, set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and '
                'JAX_PROCESS_ID', {})


def _slurm():
  """An srun job step. Its variables, the ones JAX reads, exist only where srun started the
  tasks: python run from an salloc or sbatch shell is one process whatever SLURM_NTASKS says."""
  if not all(k in os.environ for k in _SLURM_STEP):
    return None
  n = _int_env('SLURM_NTASKS', 1)
  return Launch(f'the {n} tasks of a SLURM job step (srun)', n,
                'that srun started every task and that they can reach the first node of '
                'SLURM_STEP_NODELIST', {})


def _gke_tpu():
  """A TPU slice on GKE, whose webhook lists the slice's hosts in the environment."""
  hosts = os.environ.get('TPU_PROCESS_ADDRESSES') or os.environ.get('TPU_WORKER_HOSTNAMES')
  if not hosts or not _tpu_chips():
    return None
  n = len(hosts.split(',')) * int(os.environ.get('MEGASCALE_NUM_SLICES') or 1)
  return Launch(f'the {n} hosts of a GKE TPU slice', n,
                'that every pod of the slice runs this command and resolves TPU_WORKER_HOSTNAMES',
                {})


def _gce_tpu():
  """A Cloud TPU VM (gcloud compute tpus), whose workers only the metadata server lists.

  The server is asked only where TPU chips are attached and JAX did not rule them out (it sets
  TPU_SKIP_MDS_QUERY when it finds none), so that an ordinary machine never waits for it.
  """
  if 'TPU_SKIP_MDS_QUERY' in os.environ or not _tpu_chips():
    return None
  workers = _gce_metadata('worker-network-endpoints')
  if not workers:
    return None
  slices = os.environ.get('MEGASCALE_NUM_SLICES') or _tpu_env('MEGASCALE_NUM_SLICES') or 1
  n = len(workers.split(',')) * int(slices)
  return Launch(f'the {n} workers of a Cloud TPU VM', n,
                'that the command runs on every worker (gcloud ... ssh NAME --worker=all) and that '
                'they reach worker 0 on port 8482', {})


def _tpu_chips() -> bool:
  """TPU chips are attached: /dev/accel* (TPU v2 to v4) or VFIO groups (v5e and later)."""
  return bool(glob.glob('/dev/accel*') or glob.glob('/dev/vfio/[0-9]*'))


def _gce_metadata(key):
  """An attribute of this VM from the GCE metadata server, or None where none answers.

  By IP rather than metadata.google.internal, since a name lookup ignores the timeout, and
  past any HTTP proxy, which would not reach a link-local address.
  """
  host = os.environ.get('GCE_METADATA_IP', '169.254.169.254')
  request = urllib.request.Request(f'http://{host}/computeMetadata/v1/instance/attributes/{key}',
                                   headers={'Metadata-Flavor': 'Google'})
  opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
  try:
    with opener.open(request, timeout=METADATA_TIMEOUT_S) as response:
      return response.read().decode()
  except OSError:
    return None


def _tpu_env(key):
  """A value of the tpu-env metadata, where a multislice launch on GCE puts its slice count."""
  for line in (_gce_metadata('tpu-env') or '').splitlines():
    name, _, value = line.partition(':')
    if name.strip() == key:
      return value.strip().strip("'")
  return None


def _int_env(name, default=None):
  value = os.environ.get(name)
  if value is None:
    return default
  try:
    return int(value)
  except ValueError:
    raise UserError(f'{name}={value!r} is not a whole number') from None


def _join(launch, timeout_s):
  """jax.distributed.initialize, with any failure to join said in one line.

  When no peer answers, JAX aborts the whole process with a fatal log rather than raising; a
  watchdog says which launch it waited for and exits first (JAX releases the GIL meanwhile).
  """
  message = (f'could not join {launch.name}: {{}}; check {launch.check}, '
             'or set GANS_DISTRIBUTED=off to run this process alone')
  print(f'joining {launch.name} (up to {timeout_s} s)', file=sys.stderr)
  if 'JAX_CPU_COLLECTIVES_IMPLEMENTATION' not in os.environ:
    # Only the CPU client reads this; asking for the backend here would start it too early.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  silence = message.format(f'no answer within {timeout_s} s')
  watchdog = threading.Timer(timeout_s, _give_up, [silence])
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(**launch.kwargs, initialization_timeout=timeout_s + 30)
  except Exception as e:  # pylint: disable=broad-except  # JAX raises several kinds here
    lines = str(e).strip().splitlines() or [type(e).__name__]
    raise UserError(message.format(lines[0])) from e
  finally:
    watchdog.cancel()


def _give_up(message):
  print(f'error: {message}', file=sys.stderr, flush=True)
  os._exit(2)  # pylint: disable=protected-access  # the main thread is inside JAX's connect
