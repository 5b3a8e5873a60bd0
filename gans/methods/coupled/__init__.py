"""Coupled GANs: CoGAN (hard weight sharing) and SCoGAN (soft couplings), one method package.

Registered twice ('cogan', 'scogan'): the two differ only in their defaults. CoGAN shares the
generators' first and the discriminators' last blocks; SCoGAN shares nothing and pulls the two
generators together with the regularisers FR, SL, CC, PL or the weight-similarity baseline
(spec coupled.md §3.5), each with its own weight (0 = off), combinable with sharing.

  config.py    defaults, the tiny variant, validation
  step.py      the state, the models, the couplings, train_step, generate, flops
  figures.py   pair sheets, slerp walks, cross-domain translation (eval.py --figures)

Here: the metrics' view of the two domains, the pair agreement logged at every checkpoint
(gans.metrics.agreement), and the two Method declarations.
"""
import functools

import jax
import ml_collections

from gans import latents, methods
from gans.methods.coupled.config import (COUPLINGS, CPU_SIZE, couple, cpu_size, defaults,
                                         parse_variant, tiny, validate)
from gans.methods.coupled import figures, step
from gans.methods.coupled.step import (apply_generator, build_models, example_spec, flops,
                                       generate, generator_variables, image_shape, init_state,
                                       sample_latents, sources, train_step)
from gans.metrics import agreement

PROGRESS = ('d_loss', 'g_loss')
TINY_MODEL = dict(g_divisor=32, d_divisor=8, latent_size=16)


def eval_domains(config: ml_collections.ConfigDict):
  """FID & co. per domain, each against its own stream of reals (metrics.md §6)."""
  del config
  return ('a', 'b')


def eval_sets(config: ml_collections.ConfigDict, outputs, domain):
  del config
  return {'': outputs['ab'.index(domain)]}


def real_eval_sets(config: ml_collections.ConfigDict, images, domain):
  del config, domain
  return {'': images}


def latent_prior(config: ml_collections.ConfigDict):
  return config.coupled.latent_dist


def truncated_latents(config: ml_collections.ConfigDict, key, n, threshold):
  """sample_latents conditioned on |z_i| <= threshold, for either prior (gans/latents.py)."""
  return latents.truncate(latent_prior(config), key, sample_latents(config, key, n), threshold)


def checkpoint_scores(config: ml_collections.ConfigDict, state):
  """Pair agreement of eval.num_pairs fixed latents (gans.metrics.agreement.pair_scores): pixel
  agreement when domain b is a pixel transform of a, classifier pair agreement when
  eval.classifier names a classifier workdir."""
  n, transform = config.eval.num_pairs, config.pair.transform
  if not n or (transform == 'none' and not config.eval.classifier):
    return {}
  z = sample_latents(config, jax.random.PRNGKey(config.seed + 2), n)
  x_a, x_b = step.generate_all(config, state, z)
  return agreement.pair_scores(x_a, x_b, transform, config.pair.pad, config.eval.classifier)


_COUPLED = dict(
    validate=validate, sources=sources, example_spec=example_spec, image_shape=image_shape,
    init_state=init_state, train_step=train_step, frozen=step.frozen_nets,
    tiny_model=TINY_MODEL, progress=PROGRESS,
    sample_latents=sample_latents, generate=generate, sheets=figures.sheets,
    checkpoint_scores=checkpoint_scores, figures=figures.figures, flops=flops, eval_sets=eval_sets,
    real_eval_sets=real_eval_sets, eval_domains=eval_domains,
    generator_variables=generator_variables, apply_generator=apply_generator,
    latent_prior=latent_prior, truncated_latents=truncated_latents)
COGAN = methods.Method(name='cogan', defaults=functools.partial(defaults, 'cogan'), **_COUPLED)
SCOGAN = methods.Method(name='scogan', defaults=functools.partial(defaults, 'scogan'),
                        **_COUPLED)
__all__ = ['COGAN', 'COUPLINGS', 'CPU_SIZE', 'SCOGAN', 'build_models', 'couple', 'cpu_size',
           'defaults', 'example_spec', 'generate', 'image_shape', 'init_state', 'parse_variant',
           'sample_latents', 'sources', 'tiny', 'train_step', 'validate']
