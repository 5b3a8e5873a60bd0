"""Penalties that need the discriminator itself (gradient penalty, R1), and SCoGAN's soft
couplings of two generators (FR, SL, CC, PL, weight similarity).

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


# SCoGAN's soft couplings (spec coupled.md §3.5). Each is a pure function of activations the
# method computes; which networks it updates is decided by what the method differentiates.


def feature_regularizer(features_a, features_b):
  """FR = sum over layers of mean((f_a - f_b)^2): the two generators' activations for one z."""
  return sum(jnp.mean(jnp.square(a - b)) for a, b in zip(features_a, features_b))


def semantic_loss(probs_a, probs_b):
  """SL = mean((C(x_a) - C(x_b))^2) over batch and classes: squared difference of the frozen
  classifier's probability vectors, not KL or CE (the reference's form)."""
  return jnp.mean(jnp.square(probs_a - probs_b))


def cycle_consistency(z_a, z_b, z):
  """CC = mean|E(x_a) - z| + mean|E(x_b) - z|: both images must give back their shared z."""
  return jnp.mean(jnp.abs(z_a - z)) + jnp.mean(jnp.abs(z_b - z))


def weight_similarity(pairs):
  """W = sum over corresponding variables (w_a, w_b) of mean((w_a - w_b)^2): the baseline
  that pulls two unshared generators' weights together. `pairs` is [(tree_a, tree_b)]."""
  return sum(jnp.mean(jnp.square(a - b)) for ta, tb in pairs
             for a, b in zip(jax.tree.leaves(ta), jax.tree.leaves(tb)))


def gram(features):
  """Per-sample Gram matrices F^T F / (H W C) of NHWC features: (B, C, C)."""
  b, h, w, c = features.shape
  f = features.reshape(b, h * w, c).astype(jnp.float32)
  return jnp.einsum('bpi,bpj->bij', f, f) / (h * w * c)


def style_loss(fake_layers, real_layers, per_sample=False):
  """PL style term: mean over layers of mean((Gram(fake) - Gram(real))^2).

  The default compares batch-mean Grams (spec §4 #22): the domains are unpaired, so pairing
  fake i with real i by batch index, as the reference does (`per_sample`), is arbitrary.
  """
  terms = []
  for f, r in zip(fake_layers, real_layers):
    gf, gr = gram(f), gram(r)
    if not per_sample:
      gf, gr = gf.mean(0), gr.mean(0)
    terms.append(jnp.mean(jnp.square(gf - gr)))
  return sum(terms) / len(terms)


def content_loss(features_a, features_b):
  """PL content term: mean((F(x_a) - F(x_b))^2 / (H W C)), the reference's extra division kept
  so its recorded weights mean the same."""
  _, h, w, c = features_a.shape
  return jnp.mean(jnp.square(features_a - features_b)) / (h * w * c)
