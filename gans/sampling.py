"""The one way samples are made from (method, config, state, seed, count).

Batch j of a seed's samples is the method's generator on
`method.sample_latents(config, fold_in(PRNGKey(seed), j), batch)`, the latents sharded over the
mesh's 'data' axis, split into the method's image sets (`eval_sets`: MSG-GAN adds one set per
lower scale; coupled models one per domain) and quantised to uint8 with `extractors.quantize`,
round((x + 1) * 127.5) clipped. That computation is jitted on its own, so the uint8 images it
returns are exactly what a writer saves and exactly what the evaluation feeds its extractor
(in a second jit): a sample written for seed s is bit-identical to the one eval.py scored for s.

The batch is rounded up to a multiple of the device count; the surplus rows of the last batch
are dropped, so exactly `num` images come out. `truncation` draws the same batches' latents
through `method.truncated_latents` instead (gans/latents.py); without it nothing changes.
"""
import dataclasses
import functools
from typing import Iterator, Optional, Sequence

import jax
import ml_collections
import numpy as np

from gans import parallel
from gans.errors import UserError
from gans.metrics import extractors


def image_sets(method, config: ml_collections.ConfigDict, images, real: bool = False,
               domain: Optional[str] = None) -> dict:
  """{set name: [-1, 1] images} of a generator's output (real=False) or of real images
  (real=True): the method's eval_sets / real_eval_sets hook, else the images as set ''."""
  hook = method.real_eval_sets if real else method.eval_sets
  if hook:
    return hook(config, images) if domain is None else hook(config, images, domain)
  if not hasattr(images, 'shape'):
    raise UserError(f'{config.method} generates {type(images).__name__}s, not images: it needs '
                    'an eval_sets hook (see gans/methods/__init__.py) to be evaluated')
  return {'': images}


def round_batch(batch_size: int, mesh) -> int:
  """batch_size rounded up to a multiple of the mesh's device count."""
  n = mesh.devices.size
  return -(-batch_size // n) * n


def uses_ema(state) -> bool:
  """Whether the state holds an EMA generator (MSG-GAN's g_ema), which `method.generate`
  samples from; otherwise the trained generator itself is used (BEGAN, CoGAN, SCoGAN)."""
  return dataclasses.is_dataclass(state) and 'g_ema' in {
      f.name for f in dataclasses.fields(state)}


def generator_label(state) -> str:
  """What the samples came from, as the eval record states it: 'EMA' or 'trained G'."""
  return 'EMA' if uses_ema(state) else 'trained G'


def latent_fn(method, truncation: Optional[float] = None):
  """(config, key, n) -> z: method.sample_latents, or its truncated_latents at `truncation`."""
  if truncation is None:
    return method.sample_latents
  if not truncation > 0:
    raise UserError(f'--truncation={truncation} must be > 0 (components with |z| > T are '
                    'redrawn within [-T, T])')
  if method.truncated_latents is None:
    raise UserError(f'{method.name} has no latent to truncate; drop --truncation')
  return functools.partial(method.truncated_latents, threshold=truncation)


def sample_fn(method, config: ml_collections.ConfigDict, mesh, batch: int,
              sets: Optional[Sequence[str]] = None, domain: Optional[str] = None,
              truncation: Optional[float] = None):
  """jit(state, key) -> {set: uint8 [batch, H, W, C]}, sharded over the mesh's 'data' axis.

  `key` is the batch's key, fold_in(PRNGKey(seed), j); `sets` keeps only those image sets
  (None: all; ('',): the headline set); `domain` picks one domain of a coupled method, or a
  tuple of them several (images_fn).
  """
  sharding = parallel.batch_sharding(mesh)
  latents, images = latent_fn(method, truncation), images_fn(method, config, sets, domain)

  def fn(state, key):
    return images(state, jax.lax.with_sharding_constraint(latents(config, key, batch), sharding))

  return jax.jit(fn, out_shardings=sharding)


def images_fn(method, config: ml_collections.ConfigDict, sets: Optional[Sequence[str]] = None,
              domain=None):
  """(state, z) -> {set: uint8 images} (jittable), as sample_fn makes them from its latents.

  `domain` may be a tuple of domains (a coupled method's a and b from the same z): the sets are
  then keyed '<domain>' for the headline set and '<domain>/<set>' for the others.
  """
  def fn(state, z):
    outputs = method.generate(config, state, z)
    if isinstance(domain, tuple):
      out = {f'{d}/{k}'.rstrip('/'): v for d in domain
             for k, v in image_sets(method, config, outputs, False, d).items()
             if sets is None or k in sets}
    else:
      out = {k: v for k, v in image_sets(method, config, outputs, False, domain).items()
             if sets is None or k in sets}
    return {k: extractors.quantize(v) for k, v in out.items()}

  return fn


def latent_images(method, config: ml_collections.ConfigDict, state, mesh, z, batch_size: int,
                  sets: Optional[Sequence[str]] = None, domain=None) -> dict:
  """{set: host uint8 images} of given latents z (numpy, the same on every process), computed
  batch by batch over the mesh as sample_fn computes a seed's (interpolations, figures)."""
  batch = round_batch(batch_size, mesh)
  fn = jax.jit(lambda state, z: images_fn(method, config, sets, domain)(
      state, jax.lax.with_sharding_constraint(z, parallel.batch_sharding(mesh))),
               out_shardings=parallel.replicated(mesh))
  out = []
  for start in range(0, len(z), batch):
    chunk = np.zeros((batch,) + z.shape[1:], z.dtype)
    chunk[:len(z) - start] = z[start:start + batch]
    out.append(parallel.to_host(fn(state, parallel.replicate(mesh, chunk))))
  return {k: np.concatenate([o[k] for o in out])[:len(z)] for k in out[0]}


@functools.cache
def _gather(mesh):
  return jax.jit(lambda x: x, out_shardings=parallel.replicated(mesh))


def to_host(mesh, images, size: int) -> dict:
  """numpy copies of the first `size` rows of a batch that batches() yielded on the devices,
  on every process (gathered first; every process calls this together)."""
  return {k: v[:size] for k, v in parallel.to_host(_gather(mesh)(images)).items()}


def batches(method, config: ml_collections.ConfigDict, state, mesh, num: int, seed: int,
            batch_size: int, sets: Optional[Sequence[str]] = None, domain: Optional[str] = None,
            host: bool = False, truncation: Optional[float] = None) -> Iterator[tuple]:
  """Yields (start, size, {set: uint8 images}) covering samples start .. start+size-1 of the
  `num` samples of `seed`, batch by batch.

  The images are device arrays sharded over the mesh with the rounded batch's rows
  (round_batch), of which the first `size` are samples and the rest the surplus of the last
  batch, to drop; or, with host=True, numpy arrays of the `size` samples on every process
  (gathered first). Every process calls this together: one computation over the whole mesh.
  """
  batch = round_batch(batch_size, mesh)
  fn = sample_fn(method, config, mesh, batch, sets, domain, truncation)
  base = jax.random.PRNGKey(seed)
  for j, start in enumerate(range(0, num, batch)):
    images = fn(state, jax.random.fold_in(base, j))
    size = min(batch, num - start)
    if host:
      images = to_host(mesh, images, size)
    yield start, size, images
