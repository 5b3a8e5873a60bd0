"""One mesh over every device of every process; the batch is sharded on 'data', state replicated.

This is SPMD data parallelism in the form JAX recommends (jit + NamedSharding): batch-wide
statistics are global-batch statistics without hand-written collectives, and the same code runs
on one CPU, eight GPUs or a TPU pod.
"""
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gans.errors import UserError

DATA = 'data'


def everyone(flag) -> bool:
  """True when `flag` holds in every process: a decision all processes act on together, so
  that none goes on alone into a collective the others never enter."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def make_mesh() -> Mesh:
  """One 'data' axis over every device, in the order jax.make_mesh picks for the physical
  topology: on a TPU slice a ring through the torus, so the gradient all-reduce runs over
  neighbouring links. Devices it cannot place (several slices, a shape it has no table for)
  keep jax.devices() order, which is as correct, only slower. Auto axes, not make_mesh's
  default Explicit: sharding inside the step is left to XLA (see shard_batch)."""
  devices = jax.devices()
  try:
    return jax.make_mesh((len(devices),), (DATA,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices)
  except (ValueError, NotImplementedError, AssertionError) as e:
    logging.warning('mesh in jax.devices() order: %s', e)
    return Mesh(np.asarray(devices), (DATA,))


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


def local_rows(sharding: NamedSharding, shape, axis, devices=None) -> np.ndarray:
  """The sorted indices along `axis` of the rows that `devices` (default: this process's) hold:
  the rows this process reads from disk. A host's devices need not sit side by side in the
  mesh, so this is the union of their blocks, not the span from the first to the last."""
  devices = sharding.addressable_devices if devices is None else devices
  index_map = sharding.devices_indices_map(tuple(shape))
  everything = np.arange(shape[axis])
  return np.unique(np.concatenate([everything[index_map[d][axis]] for d in devices]))


def host_blocks(sharding: NamedSharding, shape, read_local, axis, devices=None):
  """{device: its block of the global array} for `devices` (default: this process's).

  read_local(rows) is called once, with local_rows, and returns those rows along `axis` in
  that order; each device's block is then a slice of what it returned.
  """
  devices = sharding.addressable_devices if devices is None else devices
  rows = local_rows(sharding, shape, axis, devices)
  local = read_local(rows)
  index_map = sharding.devices_indices_map(tuple(shape))
  return {d: local[_local_index(index_map[d], rows, shape[axis], axis)] for d in devices}


def _local_index(index, rows, size, axis):
  """`index` (of the global array) with its `axis` slice moved to where `rows` put it."""
  span = range(size)[index[axis]]
  start = int(np.searchsorted(rows, span.start))
  return index[:axis] + (slice(start, start + len(span)),) + index[axis + 1:]


def global_array(sharding: NamedSharding, shape, read_local, axis):
  """Assemble a global array from this process's rows along `axis`, read by read_local(rows).

  Every process calls this with the same shape; each reads only its own rows, and the result
  is one array sharded over all devices of all processes.
  """
  blocks = host_blocks(sharding, shape, read_local, axis)
  arrays = jax.device_put(list(blocks.values()), list(blocks))
  return jax.make_array_from_single_device_arrays(tuple(shape), sharding, arrays)


def replicate(mesh, tree):
  """Put host arrays (a pytree of them) on every device; each process passes the same ones."""
  return jax.tree.map(lambda a: jax.make_array_from_callback(a.shape, replicated(mesh),
                                                             lambda idx: a[idx]), tree)


def to_host(tree):
  """numpy copies of fully replicated arrays; works in every process of a multi-process run."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)
