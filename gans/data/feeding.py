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

import jax
import jax.numpy as jnp
import numpy as np

from gans import parallel
from gans.errors import UserError


class Schedule:
  """Global batch indices for any step, identical on every process."""

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    if num_examples < batch_size:
      raise UserError(f'the dataset has {num_examples} images, fewer than batch_size='
                      f'{batch_size}; lower --config.batch_size or use more data')
    self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
    self.steps_per_epoch = num_examples // batch_size
    self._cache = (None, None)

  def _permutation(self, epoch):
    if self._cache[0] != epoch:
      self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_examples))
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
  """Inputs for one dispatch of k steps: `table` (the dataset on device, or None) and `xs`.

  With the dataset on device, xs is the int32 [k, B] index array and the step gathers
  table[xs[t]]; streaming, xs is the uint8 [k, B, R, R, C] images themselves. Either way xs is
  sharded on its batch axis over the whole mesh, each process supplying only its own rows.
  """

  def __init__(self, source, config, mesh):
    self.source, self.mesh = source, mesh
    self.schedule = Schedule(len(source), config.batch_size, config.seed)
    self.sharding = parallel.batch_sharding(mesh, batch_axis=1)
    nbytes = len(source) * source.resolution ** 2 * source.channels
    mode = config.data.on_device
    on_device = nbytes <= config.data.on_device_max_mb * 2 ** 20 if mode == 'auto' else mode == 'yes'
    self.table = parallel.replicate(mesh, source.load_all()) if on_device else None
    logging.info('data: %d images of %s, %s', len(source), source.name,
                 'on device' if on_device else 'streamed')
    self._pool = concurrent.futures.ThreadPoolExecutor(1) if self.table is None else None
    self._next = None

  def get(self, start: int, k: int):
    indices = self.schedule.indices(start, k)
    if self.table is not None:
      return self.table, parallel.global_array(self.sharding, indices.shape,
                                               lambda lo, hi: indices[:, lo:hi], axis=1)
    local = self._read_ahead(start, k)
    self._next = self._pool.submit(self._read, start + k, k)  # the next dispatch, in background
    shape = indices.shape + self._image_shape()
    return None, parallel.global_array(self.sharding, shape, lambda lo, hi: local, axis=1)

  def _image_shape(self):
    return (self.source.resolution, self.source.resolution, self.source.channels)

  def _read(self, start, k):
    indices = self.schedule.indices(start, k)
    lo, hi = parallel.local_rows(self.sharding, indices.shape + self._image_shape(), axis=1)
    rows = indices[:, lo:hi]
    return (start, k), self.source[rows.reshape(-1)].reshape(rows.shape + self._image_shape())

  def _read_ahead(self, start, k):
    if self._next is not None:
      key, local = self._next.result()
      if key == (start, k):
        return local
    return self._read(start, k)[1]
