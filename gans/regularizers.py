"""Penalties that need the discriminator itself: gradient penalty and R1.

Both take `d_fn`, the discriminator as a function of its inputs alone (parameters closed over),
so they serve any model. Gradients here are taken with respect to images, never parameters;
the method differentiates the result with respect to D's parameters.
"""
import jax
import jax.numpy as jnp


def _per_sample_sq_norm(g):
  return jnp.sum(jnp.square(g.astype(jnp.float32)).reshape(g.shape[0], -1), axis=1)


def gradient_penalty(d_fn, real, fake, key):
  """WGAN-GP on multi-scale inputs: mean over scales of mean_b (||grad_s D(x_hat)||_2 - 1)^2.

  real and fake are lists of scales; one epsilon per sample is shared by every scale, and one
  backward pass of D gives the gradient for all of them. A single-image D passes 1-lists. The
  norm's 1e-12 keeps its gradient finite where the input gradient happens to be exactly zero.
  """
  eps = jax.random.uniform(key, (real[0].shape[0], 1, 1, 1))
  x_hat = [eps * r + (1 - eps) * f for r, f in zip(real, fake)]
  grads = jax.grad(lambda xs: jnp.sum(d_fn(xs)))(x_hat)
  per_scale = [jnp.mean((jnp.sqrt(_per_sample_sq_norm(g) + 1e-12) - 1) ** 2) for g in grads]
  return sum(per_scale) / len(per_scale)


def r1_penalty(d_fn, real):
  """R1: mean_b ||grad_x D(x)||^2 on reals (Mescheder et al. 2018), weighted gamma/2 by callers.

  For MSG-GAN, d_fn takes the full-resolution batch and builds the pyramid itself, so the
  gradient reaches every scale through it, as in msg-stylegan-tf.
  """
  g = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
  return jnp.mean(_per_sample_sq_norm(g))
