"""sample.py as a library: a run's samples to a folder, an .npz or a sheet; interpolation strips.

Samples come from gans.sampling.batches, the computation eval.py scores: with no truncation,
the images written for a seed and a batch size are bit for bit the ones eval.py --seed S
--batch_size B scored. Batch j+1 is dispatched before batch j is copied to the host, and a
background thread encodes and writes (gans.writers), so neither the copy nor the disk keeps
the devices waiting. Every process generates together; only process 0 writes.
"""
import sys
import time

import jax
import numpy as np

from gans import checkpoint, latents, logs, methods, parallel, sampling, writers
from gans.errors import UserError


def _domains(method, config):
  return tuple(method.eval_domains(config)) if method.eval_domains else None


def scale_set(method, config, state, scale):
  """The image set of output resolution `scale` ('' = full; None: full)."""
  domains = _domains(method, config)
  z = jax.eval_shape(lambda: method.sample_latents(config, jax.random.PRNGKey(0), 1))
  fn = sampling.images_fn(method, config, None, domains[0] if domains else None)
  sizes = {v.shape[1]: k for k, v in jax.eval_shape(fn, state, z).items()}
  full = max(sizes)
  if scale is None or scale == full:
    return ''
  if scale not in sizes:
    have = ', '.join(str(r) for r in sorted(sizes))
    raise UserError(f'--scale {scale}: {config.method} makes no {scale}x{scale} images; its '
                    f'output scales are {have}' if len(sizes) > 1 else
                    f'--scale {scale}: {config.method} has one output scale, {full}x{full}; '
                    'drop --scale')
  return sizes[scale]


def _writer_keys(domains):
  return domains if domains else ('images',)


def _rename(arrays, domains):
  """{set key: images} of one set -> the writer's keys ('images', or the domains)."""
  if domains:
    return {k.split('/')[0]: v for k, v in arrays.items()}
  (images,) = arrays.values()
  return {'images': images}


class _Rate:
  """The progress line: every batch on a terminal, every tenth of the way or 10 s in a log.
  The rate is timed from the end of the first batch, whose time is mostly compilation."""

  def __init__(self, num, enabled):
    self.progress = logs.Progress(num, 1, stream=sys.stderr, enabled=enabled, label='samples')
    self.num, self.origin, self.t0 = num, None, time.time()
    self.shown = (0, self.t0)

  def update(self, done):
    now = time.time()
    since = self.origin or (0, self.t0)
    self.origin = self.origin or (done, now)
    p = self.progress
    if p.tty or 10 * done // self.num > 10 * self.shown[0] // self.num or now - self.shown[1] >= 10:
      p.update(done, (done - since[0]) / max(now - since[1], 1e-9), {})
      self.shown = (done, now)


def write_samples(method, config, state, out, num, seed=0, batch_size=200, truncation=None,
                  scale=None, mesh=None, progress=True) -> str:
  """Write `num` samples of `seed` to `out` (see gans.writers for the formats); returns out."""
  kind = writers.output_kind(out)
  mesh = mesh or parallel.make_mesh()
  domains = _domains(method, config)
  name = scale_set(method, config, state, scale)
  writing = jax.process_index() == 0
  writer = writers.Background(writers.make_writer(kind, out, num, _writer_keys(domains))
                              ) if writing else None
  rate = _Rate(num, progress and writing)
  pending = None

  def flush(item):
    start, size, images = item
    host = sampling.to_host(mesh, images, size)  # collective: every process
    if writer:
      writer.put(start, _rename(host, domains))
    rate.update(start + size)

  try:
    for item in sampling.batches(method, config, state, mesh, num, seed, batch_size, (name,),
                                 domains, truncation=truncation):
      if pending:
        flush(pending)  # after the next batch is dispatched: the copy overlaps its compute
      pending = item
    flush(pending)
  except BaseException:
    if writer:
      writer.queue.put(None)  # stop the thread; the error that stopped generation is reported
    raise
  finally:
    rate.progress.close()
  return writer.close() if writer else str(out)


def write_interpolation(method, config, state, out, rows, steps, seed=0, batch_size=200,
                        truncation=None, scale=None, mesh=None) -> str:
  """`rows` walks of `steps` frames between pairs of latents drawn from split(PRNGKey(seed)),
  slerp for Gaussian priors and lerp for uniform ones (gans/latents.py); the first and last
  frames are the endpoints' images exactly. A .png sheet of strips, or a .gif."""
  kind = writers.output_kind(out, interpolate=True)
  if steps < 2:
    raise UserError(f'--interpolate={steps} needs at least 2 frames (the two endpoints)')
  mesh = mesh or parallel.make_mesh()
  domains = _domains(method, config)
  name = scale_set(method, config, state, scale)
  draw = sampling.latent_fn(method, truncation)
  ka, kb = jax.random.split(jax.random.PRNGKey(seed))
  z0, z1 = (np.asarray(jax.device_get(draw(config, k, rows))) for k in (ka, kb))
  prior = method.latent_prior(config) if method.latent_prior else 'normal'
  z = latents.walk(prior, z0, z1, steps).reshape(rows * steps, -1)
  images = sampling.latent_images(method, config, state, mesh, z, batch_size, (name,), domains)
  if jax.process_index() == 0:
    writers.write_walk(kind, out, _rename(images, domains), rows, steps)
  return str(out)


def sample(workdir, out, num=None, step=None, seed=0, batch_size=200, truncation=None,
           scale=None, interpolate=None, progress=True) -> str:
  """What `python sample.py` does with these flags; returns the path written."""
  writers.output_kind(out, bool(interpolate))  # a bad OUT is reported before anything loads
  if truncation is not None and not truncation > 0:
    raise UserError(f'--truncation={truncation} must be > 0')
  if num is not None and num < 1:
    raise UserError(f'--num={num} must be >= 1')
  if batch_size < 1:
    raise UserError(f'--batch_size={batch_size} must be >= 1')
  method = methods.get(checkpoint.read_config(workdir).method)
  if not method.makes_samples:
    raise UserError(f'{method.name} runs have no generator to sample from; pass the workdir '
                    'of an msggan, began, cogan or scogan run')
  config, state = checkpoint.load(workdir, step)
  if interpolate:
    return write_interpolation(method, config, state, out, num or 8, interpolate, seed,
                               batch_size, truncation, scale)
  return write_samples(method, config, state, out, 50_000 if num is None else num, seed,
                       batch_size, truncation, scale, progress=progress)
