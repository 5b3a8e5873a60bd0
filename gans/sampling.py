"""The one way samples are made from (method, config, state, seed, count).

Batch j of a seed's samples is the method's generator on
`method.sample_latents(config, fold_in(PRNGKey(seed), j), batch)`, the latents sharded over the
mesh's 'data' axis, split into the method's image sets (`eval_sets`: MSG-GAN adds one set per
lower scale; coupled models one per domain) and quantised to uint8 with `extractors.quantize`,
round((x + 1) * 127.5) clipped. That computation is jitted on its own, so the uint8 images it
returns are exactly what a writer saves and exactly what the evaluation feeds its extractor
(in a second jit): a sample written for seed s is bit-identical to the one eval.py scored for s.

The batch is rounded up to a multiple of the device count; the surplus rows of the last batch
are dropped, so exactly `num` images come out.
"""
import dataclasses
import functools
from typing import Iterator, Optional, Sequence

import jax
import ml_collections

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


def sample_fn(method, config: ml_collections.ConfigDict, mesh, batch: int,
              sets: Optional[Sequence[str]] = None, domain: Optional[str] = None):
  """jit(state, key) -> {set: uint8 [batch, H, W, C]}, sharded over the mesh's 'data' axis.

  `key` is the batch's key, fold_in(PRNGKey(seed), j); `sets` keeps only those image sets
  (None: all; ('',): the headline set); `domain` picks one domain of a coupled method.
  """
  sharding = parallel.batch_sharding(mesh)

  def fn(state, key):
    z = jax.lax.with_sharding_constraint(method.sample_latents(config, key, batch), sharding)
    out = image_sets(method, config, method.generate(config, state, z), False, domain)
    return {k: extractors.quantize(v) for k, v in out.items() if sets is None or k in sets}

  return jax.jit(fn, out_shardings=sharding)


@functools.cache
def _gather(mesh):
  return jax.jit(lambda x: x, out_shardings=parallel.replicated(mesh))


def batches(method, config: ml_collections.ConfigDict, state, mesh, num: int, seed: int,
            batch_size: int, sets: Optional[Sequence[str]] = None, domain: Optional[str] = None,
            host: bool = False) -> Iterator[tuple]:
  """Yields (start, size, {set: uint8 images}) covering samples start .. start+size-1 of the
  `num` samples of `seed`, batch by batch.

  The images are device arrays sharded over the mesh with the rounded batch's rows
  (round_batch), of which the first `size` are samples and the rest the surplus of the last
  batch, to drop; or, with host=True, numpy arrays of the `size` samples on every process
  (gathered first). Every process calls this together: one computation over the whole mesh.
  """
  batch = round_batch(batch_size, mesh)
  fn = sample_fn(method, config, mesh, batch, sets, domain)
  base = jax.random.PRNGKey(seed)
  for j, start in enumerate(range(0, num, batch)):
    images = fn(state, jax.random.fold_in(base, j))
    size = min(batch, num - start)
    if host:
      images = {k: v[:size] for k, v in parallel.to_host(_gather(mesh)(images)).items()}
    yield start, size, images
