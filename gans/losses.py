"""Adversarial losses as pure functions of the discriminator's scores, looked up by name.

r and f are the raw scores D gave the real and the fake batch, shape (B,). Means over the batch
are global-batch means (the batch axis is sharded; XLA adds the reductions). Penalties that need
D itself (gradient penalty, R1) live in gans.regularizers; a loss names the one it needs.
"""
import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from gans.errors import UserError

softplus = jax.nn.softplus
relu = jax.nn.relu
mean = jnp.mean


@dataclasses.dataclass(frozen=True)
class Loss:
  d: Callable  # (r, f) -> scalar
  g: Callable  # (r, f) -> scalar; r is None unless g_uses_real
  g_uses_real: bool = False  # the G step needs D(real): run it, but never differentiate it
  penalty: Optional[str] = None  # 'gp' or 'r1', added to the D loss by the method
  drift: float = 0.0  # weight of mean(r^2) in the D loss (WGAN-GP's drift term)


def _relativistic_hinge_d(r, f):
  return mean(relu(1 - (r - mean(f)))) + mean(relu(1 + (f - mean(r))))


def _relativistic_hinge_g(r, f):
  return mean(relu(1 + (r - mean(f)))) + mean(relu(1 - (f - mean(r))))


def _wgan_d(r, f):
  return mean(f) - mean(r)


def _ns_logistic_d(r, f):
  return mean(softplus(-r)) + mean(softplus(f))


def _ns_logistic_g(r, f):
  return mean(softplus(-f))


LOSSES = {
    # BMSG-GAN's default; r-bar and f-bar are not detached, as in the reference.
    'relativistic-hinge': Loss(_relativistic_hinge_d, _relativistic_hinge_g, g_uses_real=True),
    'hinge': Loss(lambda r, f: mean(relu(1 - r)) + mean(relu(1 + f)), lambda r, f: -mean(f)),
    # The reference halves the D loss; the G loss is the non-saturating one.
    'standard-gan': Loss(lambda r, f: 0.5 * _ns_logistic_d(r, f), _ns_logistic_g),
    'wgan-gp': Loss(_wgan_d, lambda r, f: -mean(f), penalty='gp', drift=0.001),
    # Per-sample least squares (the reference squares batch means; see 'lsgan_batchmean').
    'lsgan': Loss(lambda r, f: 0.5 * (mean((r - 1) ** 2) + mean(f ** 2)),
                  lambda r, f: 0.5 * mean((f - 1) ** 2)),
    'lsgan-sigmoid': Loss(
        lambda r, f: 0.5 * (mean((jax.nn.sigmoid(r) - 1) ** 2) + mean(jax.nn.sigmoid(f) ** 2)),
        lambda r, f: 0.5 * mean((jax.nn.sigmoid(f) - 1) ** 2)),
    # Parity option: BMSG-GAN's Losses.py:146-156 exactly, squaring the batch means.
    'lsgan_batchmean': Loss(lambda r, f: 0.5 * ((mean(r) - 1) ** 2 + mean(f) ** 2),
                            lambda r, f: 0.5 * (mean(f) - 1) ** 2),
    # What the official MSG-StyleGAN code trains with (logistic_simplegp, gamma 10).
    'ns-r1': Loss(_ns_logistic_d, _ns_logistic_g, penalty='r1'),
}


def get(name: str) -> Loss:
  if name not in LOSSES:
    raise UserError(f'unknown loss {name!r}; choose one of {", ".join(LOSSES)}')
  return LOSSES[name]
