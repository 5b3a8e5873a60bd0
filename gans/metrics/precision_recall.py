"""Improved precision and recall (Kynkaanniemi et al. 2019), k = 3.

Each set's manifold is the union of balls around its points with radius the distance to the
k-th nearest other point of the same set. Precision is the fraction of generated points inside
the real manifold, recall the fraction of real points inside the generated one. The pairwise
distances are O(N^2) (50k x 50k), so they run on the devices in row blocks, float32 at HIGHEST
precision; ties at the radius count as inside (<=), as StyleGAN2-ADA. The distances are
|a|^2 + |b|^2 - 2 a.b, which loses to float32 round-off whatever is common to all points, so
both sets are first centred on the real set's mean (in float64): Inception features lie far from
the origin, and uncentred their round-off flips neighbourhood decisions.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

_HI = jax.lax.Precision.HIGHEST


def _sq_dist(a, b):
  aa = jnp.sum(a * a, axis=1)[:, None]
  bb = jnp.sum(b * b, axis=1)[None, :]
  return jnp.maximum(aa + bb - 2.0 * jnp.matmul(a, b.T, precision=_HI), 0.0)


@functools.partial(jax.jit, static_argnums=2)
def _kth_block(block, points, k):
  # The k+1 smallest include the point itself at distance 0.
  return -jax.lax.top_k(-_sq_dist(block, points), k + 1)[0][:, k]


@jax.jit
def _covered_block(block, centers, radii):
  return jnp.any(_sq_dist(block, centers) <= radii[None, :], axis=1)


def _blocks(x, size):
  """Row blocks of x, the last one padded with copies of row 0 to a static shape."""
  for start in range(0, len(x), size):
    block = x[start:start + size]
    n = len(block)
    if n < size:
      block = np.concatenate([block, np.repeat(x[:1], size - n, axis=0)])
    yield block, n


def kth_radii(points, k=3, block=1024):
  """Squared distance of each point to its k-th nearest other point of the same set."""
  points = np.asarray(points, np.float32)
  on_device = jnp.asarray(points)
  size = min(block, len(points))
  return np.concatenate([np.asarray(_kth_block(b, on_device, k))[:n]
                         for b, n in _blocks(points, size)])


def coverage(queries, centers, radii, block=1024):
  """Fraction of queries within the ball of some center."""
  queries = np.asarray(queries, np.float32)
  c, r = jnp.asarray(np.asarray(centers, np.float32)), jnp.asarray(radii)
  size = min(block, len(queries))
  inside = np.concatenate([np.asarray(_covered_block(b, c, r))[:n]
                           for b, n in _blocks(queries, size)])
  return float(inside.mean())


def precision_recall(real, fake, k=3):
  """(precision, recall) of fake features against real features."""
  if min(len(real), len(fake)) <= k:
    raise ValueError(f'precision/recall with k={k} needs more than {k} samples per set')
  center = np.mean(real, axis=0, dtype=np.float64)  # distances do not move; round-off shrinks
  real = (np.asarray(real) - center).astype(np.float32)
  fake = (np.asarray(fake) - center).astype(np.float32)
  precision = coverage(fake, real, kth_radii(real, k))
  recall = coverage(real, fake, kth_radii(fake, k))
  return precision, recall
