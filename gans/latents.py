"""Truncated latents and latent walks, defined once for every method's prior.

Truncation at T conditions each latent component on |z| <= T: samples closer to the mode,
less varied, usually cleaner (BigGAN's truncation trick). It is defined on the method's own
draw for the same key, so that with truncation only the components it has to change change:

  Gaussian latents (MSG-GAN, coupled with latent_dist='normal'): the components of
    normal(key) with |z| > T are replaced by draws of N(0, 1) truncated to [-T, T] (from
    fold_in(key, 1)), which is what BigGAN's resampling until |z| <= T draws; then the method
    applies its own normalisation (MSG-GAN's rescaling to norm sqrt(d)).
  Uniform latents on [-1, 1] (BEGAN, CoGAN's default): U[-1, 1] conditioned on |z| <= T is
    U[-T, T], drawn as min(T, 1) * z: every component shrinks, T >= 1 changes nothing.

Walks between latents: slerp for Gaussian priors (the path stays where the prior's mass is),
a straight line for uniform ones (the box is convex; slerp would leave it).
"""
import jax
import jax.numpy as jnp
import numpy as np

from gans import figures

PRIORS = ('normal', 'uniform')


def truncate_normal(key, z, threshold):
  """z ~ N(0, 1) drawn from `key`, its components with |z| > threshold redrawn from N(0, 1)
  truncated to [-threshold, threshold] (from fold_in(key, 1))."""
  redraw = jax.random.truncated_normal(jax.random.fold_in(key, 1), -threshold, threshold,
                                       z.shape, z.dtype)
  return jnp.where(jnp.abs(z) > threshold, redraw, z)


def shrink_uniform(z, threshold):
  """z ~ U[-1, 1] conditioned on |z| <= threshold: min(threshold, 1) * z."""
  return z * jnp.minimum(jnp.float32(threshold), 1.0).astype(z.dtype)


def truncate(prior, key, z, threshold):
  """A draw z of `prior` from `key` conditioned on |z_i| <= threshold, as defined above."""
  if prior == 'normal':
    return truncate_normal(key, z, threshold)
  return shrink_uniform(z, threshold)


def walk(prior, z0, z1, steps):
  """[N, steps, D] from each z0[i] to z1[i]: slerp for 'normal', lerp for 'uniform'. Both ends
  are the given latents exactly (the interpolation's end frames are those latents' images)."""
  z0, z1 = np.asarray(z0, np.float32), np.asarray(z1, np.float32)
  if prior == 'normal':
    out = figures.slerp_walk(z0, z1, steps)
  else:
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    out = ((1 - t) * z0[:, None] + t * z1[:, None]).astype(np.float32)
  out[:, 0], out[:, -1] = z0, z1
  return out
