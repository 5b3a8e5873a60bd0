"""One mesh over every device of every process; the batch is sharded on 'data', state replicated.

This is SPMD data parallelism in the form JAX recommends (jit + NamedSharding): batch-wide
statistics are global-batch statistics without hand-written collectives, and the same code runs
on one CPU, eight GPUs or a TPU pod.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gans.errors import UserError

DATA = 'data'


def initialize_distributed():
  """Join the other processes when launched as several (a TPU pod, or JAX_NUM_PROCESSES set).

  On TPU pods and SLURM/Open MPI clusters jax.distributed.initialize() finds everything itself;
  elsewhere JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID say where to meet.
  """
  n = int(os.environ.get('JAX_NUM_PROCESSES', '1'))
  if n > 1:
    # Only the CPU client reads this; asking for the backend here would start it too early.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=os.environ['JAX_COORDINATOR_ADDRESS'],
                               num_processes=n, process_id=int(os.environ['JAX_PROCESS_ID']))
  elif 'TPU_WORKER_HOSTNAMES' in os.environ or 'SLURM_NTASKS' in os.environ:
    jax.distributed.initialize()


def everyone(flag) -> bool:
  """True when `flag` holds in every process: a decision all processes act on together, so
  that none goes on alone into a collective the others never enter."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (DATA,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh, batch_axis=0) -> NamedSharding:
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA))


def shard_batch(tree):
  """Split arrays made inside a step (latents, fakes) over the 'data' axis like the real batch.

  Without this, values computed from the replicated state alone, such as z drawn from the
  step's key, are replicated: XLA then runs G, and D on the fakes, for the whole global batch
  on every device, which costs N times the FLOPs on N devices. Traced under Dispatch's mesh
  (jax.set_mesh); outside any mesh (a notebook calling a step on one device) it does nothing.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA not in mesh.axis_names:
    return tree
  return jax.lax.with_sharding_constraint(tree, P(DATA))


def data_shards():
  """How many ways the batch is split in the step being traced (1 outside a mesh)."""
  mesh = jax.sharding.get_abstract_mesh()
  return 1 if mesh.empty or DATA not in mesh.axis_names else mesh.shape[DATA]


def concat_batch(arrays):
  """Join batches along axis 0 so that every row stays on the device that holds it.

  A plain concatenate of sharded batches moves rows between devices (XLA emits all-to-alls
  and collective-permutes to re-split the result); joining device block by device block moves
  nothing. The row order differs from jnp.concatenate's, which is fine for per-example
  computations and is undone by split_batch.
  """
  n = data_shards()
  if n == 1:
    return jnp.concatenate(arrays)
  blocks = [a.reshape((n, a.shape[0] // n) + a.shape[1:]) for a in arrays]
  joined = jnp.concatenate(blocks, axis=1)
  return joined.reshape((-1,) + joined.shape[2:])


def grouped(x, groups):
  """x (the concat_batch of `groups` equal batches) viewed as (shards, groups, rows, ...).

  Reducing over axes 0 and 2 gives per-batch statistics of the joined batches without moving
  a row: each device holds one block of every batch. With groups=1 it is the whole batch.
  """
  return x.reshape((data_shards(), groups, -1) + x.shape[1:])


def split_batch(x, sizes):
  """The arrays concat_batch joined, given their batch sizes."""
  n = data_shards()
  bounds = np.cumsum(sizes)[:-1]
  if n == 1:
    return jnp.split(x, bounds)
  blocks = jnp.split(x.reshape((n, -1) + x.shape[1:]), bounds // n, axis=1)
  return [b.reshape((-1,) + b.shape[2:]) for b in blocks]


def check_batch(global_batch: int, mesh: Mesh):
  n = mesh.devices.size
  if global_batch % n:
    raise UserError(f'batch_size={global_batch} is not divisible by the {n} devices; '
                    f'use a multiple of {n} (--config.batch_size=...)')


def local_rows(sharding: NamedSharding, shape, axis):
  """[lo, hi) of `axis` that this process's devices hold: the rows it must read from disk."""
  slices = [idx[axis] for idx in sharding.addressable_devices_indices_map(shape).values()]
  lo = min(s.start or 0 for s in slices)
  hi = max(shape[axis] if s.stop is None else s.stop for s in slices)
  return lo, hi


def global_array(sharding: NamedSharding, shape, read_local, axis):
  """Assemble a global array from this process's rows along `axis`, read by read_local(lo, hi).

  Every process calls this with the same shape; each reads only its own rows, and the result
  is one array sharded over all devices of all processes.
  """
  lo, hi = local_rows(sharding, shape, axis)
  local = read_local(lo, hi)

  def callback(index):
    index = list(index)
    s = index[axis]
    index[axis] = slice((s.start or 0) - lo, (shape[axis] if s.stop is None else s.stop) - lo)
    return local[tuple(index)]

  return jax.make_array_from_callback(shape, sharding, callback)


def replicate(mesh, tree):
  """Put host arrays (a pytree of them) on every device; each process passes the same ones."""
  return jax.tree.map(lambda a: jax.make_array_from_callback(a.shape, replicated(mesh),
                                                             lambda idx: a[idx]), tree)


def to_host(tree):
  """numpy copies of fully replicated arrays; works in every process of a multi-process run."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
