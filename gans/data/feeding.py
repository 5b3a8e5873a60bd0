"""From an image source to global device batches, K steps at a time.

Which examples a step sees is a pure function of (seed, step): epoch e uses a permutation drawn
from (seed, e), and step s takes the slice s mod steps_per_epoch of it, dropping the remainder so
every batch has the same shape. The data position is therefore the step counter, and a resumed
run reads exactly what an uninterrupted one would. Datasets that fit in device memory are put on
the devices once and gathered there; the others are read from the source by a background thread
that keeps the next dispatch ready.
"""
import concurrent.futures
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np

from gans import parallel
from gans.errors import UserError


class Schedule:
  """Global batch indices for any step, identical on every process.

  `stream` salts the permutations so that the streams of one run (CoGAN's two domains) are
  drawn independently of each other, even from sources of the same length.
  """

  def __init__(self, num_examples: int, batch_size: int, seed: int, stream: int = 0):
    if num_examples < batch_size:
      raise UserError(f'the dataset has {num_examples} images, fewer than batch_size='
                      f'{batch_size}; lower --config.batch_size or use more data')
    self.num_examples, self.batch_size = num_examples, batch_size
    self.salt = [seed] if stream == 0 else [seed, stream]
    self.steps_per_epoch = num_examples // batch_size
    self._cache = (None, None)

  def _permutation(self, epoch):
    if self._cache[0] != epoch:
      rng = np.random.default_rng(self.salt + [epoch])
      self._cache = (epoch, rng.permutation(self.num_examples))
    return self._cache[1]

  def indices(self, start: int, k: int) -> np.ndarray:
    """int32 [k, batch_size]: the examples of steps start .. start+k-1."""
    out = np.empty((k, self.batch_size), np.int32)
    for i, step in enumerate(range(start, start + k)):
      epoch, pos = divmod(step, self.steps_per_epoch)
      out[i] = self._permutation(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]
    return out


def to_model_input(images, key, flip: bool):
  """uint8 NHWC -> float32 in [-1, 1], with a random horizontal flip per image when asked."""
  x = images.astype(jnp.float32) * (2.0 / 255.0) - 1.0
  if flip:
    mask = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    x = jnp.where(mask, x[:, :, ::-1, :], x)
  return x


class Feeder:
  """Inputs for one dispatch of k steps: `tables` and `xs`, one entry per stream.

  A method's data is one source or a pytree of sources (method.sources), each a stream with its
  own schedule; an example of a source is one array or a pytree of arrays (an image and its
  label). Streams that fit on the devices are put there once: their table is the whole source
  and xs the int32 [k, B] indices the step gathers. The others are read by a background thread:
  their table is None and xs the examples themselves, [k, B, ...]. Either way xs is sharded on
  its batch axis over the whole mesh, each process supplying only its own rows.
  """

  def __init__(self, sources, spec, config, mesh):
    """`spec` is the method's example_spec: the sources' structure, with one example's
    ShapeDtypeStructs at each source."""
    self.sources, self.treedef = jax.tree.flatten(sources, is_leaf=_is_source)
    self.specs = self.treedef.flatten_up_to(spec)
    self.batch_size = config.batch_size
    self.schedules = [Schedule(len(s), config.batch_size, config.seed, i)
                      for i, s in enumerate(self.sources)]
    self.sharding = parallel.batch_sharding(mesh, batch_axis=1)
    nbytes = sum(len(s) * _example_bytes(spec) for s, spec in zip(self.sources, self.specs))
    mode = config.data.on_device
    on_device = (nbytes <= config.data.on_device_max_mb * 2 ** 20 if mode == 'auto'
                 else mode == 'yes')
    self.tables = [parallel.replicate(mesh, s.load_all()) if on_device else None
                   for s in self.sources]
    logging.info('data: %s, %s', ', '.join(f'{len(s)} examples of {s.name}' for s in self.sources),
                 'on device' if on_device else 'streamed')
    self._pool = concurrent.futures.ThreadPoolExecutor(1) if not on_device else None
    self._next = None

  def get(self, start: int, k: int):
    """(tables, xs): lists with one entry per stream; see gather()."""
    if self._pool is None:
      return self.tables, [self._indices(s.indices(start, k)) for s in self.schedules]
    local = self._read_ahead(start, k)
    self._next = self._pool.submit(self._read, start + k, k)  # the next dispatch, in background
    return self.tables, [jax.tree.map(self._rows, x) for x in local]

  def gather(self, tables, xs):
    """The step's batch, structured like the sources, from one step's slice of each xs."""
    return self.treedef.unflatten([x if t is None else jax.tree.map(lambda a: a[x], t)
                                   for t, x in zip(tables, xs)])

  def _indices(self, indices):
    """Global [k, B] indices (the same on every process), sharded on B."""
    return parallel.global_array(self.sharding, indices.shape, lambda rows: indices[:, rows],
                                 axis=1)

  def _rows(self, local):
    """The global [k, B, ...] array of which this process read the rows `local`."""
    shape = local.shape[:1] + (self.batch_size,) + local.shape[2:]
    return parallel.global_array(self.sharding, shape, lambda rows: local, axis=1)

  def _read(self, start, k):
    out = []
    for source, schedule in zip(self.sources, self.schedules):
      indices = schedule.indices(start, k)
      rows = indices[:, parallel.local_rows(self.sharding, indices.shape, axis=1)]
      out.append(jax.tree.map(lambda a: a.reshape(rows.shape + a.shape[1:]),
                              source[rows.reshape(-1)]))
    return (start, k), out

  def _read_ahead(self, start, k):
    if self._next is not None:
      key, local = self._next.result()
      if key == (start, k):
        return local
    return self._read(start, k)[1]


def _is_source(x):
  return hasattr(x, 'load_all')


def _example_bytes(spec):
  return sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in jax.tree.leaves(spec))
