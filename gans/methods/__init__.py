"""Training methods by name, each one typed contract (`Method`) filled in by its module.

The trainer, evaluation, the bench and the figures read a method's fields and never probe a
module for attributes; a field left None is a capability the method does not have. A fifth
method is one new module that ends with `METHOD = Method(...)` and one line in REGISTRY.
"""
import dataclasses
import importlib
from typing import Any, Callable, Optional

from gans.errors import UserError

# name -> (module, the Method it defines); modules load on first use, so importing gans stays
# cheap and a method's heavy imports (VGG, Inception) happen only when it is asked for.
REGISTRY = {
    'msggan': ('gans.methods.msggan', 'METHOD'),
    'classifier': ('gans.methods.classifier', 'METHOD'),
    'began': ('gans.methods.began', 'METHOD'),
    'cogan': ('gans.methods.coupled', 'COGAN'),  # CoGAN and SCoGAN: one package, other defaults
    'scogan': ('gans.methods.coupled', 'SCOGAN'),
}


@dataclasses.dataclass(frozen=True)
class Method:
  """What a training method provides. Every function takes the run's config first.

  Required, for training:
    defaults() -> ConfigDict       the method's fields, on top of config.base_defaults: the
                                   shared blocks (model, loss, optim, reg, data, eval) and the
                                   method's own knobs in a block named after its module
                                   (config.msggan.ema_decay, config.coupled.g_steps, ...)
    validate(config)               UserError on an impossible value of those fields
    sources(config)                a source or a pytree of sources: one data stream each
    example_spec(config)           the same structure, one example's ShapeDtypeStructs
    init_state(config, key)        a flax.struct dataclass with a `step` field
    train_step(config, state, batch) -> (state, metrics)   jittable; batch is structured like
                                   sources(config), with a batch axis on every array
    tiny_model: dict               model fields of the `tiny` variant (config.make_tiny)
    progress: tuple                metric names shown on the progress line
    logged_at_step: tuple          metrics logged with their value at the logged step (the
                                   last of the interval: a state such as BEGAN's k, or M)
                                   rather than their mean over the log interval; the mean is
                                   logged too, as <name>_mean

  For a generator (all but the classifier):
    image_shape(config) -> (R, R, C)   the images the sources hold, at the model's resolution
    sample_latents(config, key, n) -> z
    generate(config, state, z)     jittable; what the sample sheets are made from
    sheets(config, host_outputs) -> [(name, images in [-1, 1], columns or None)]

  Optional:
    frozen(config) -> {name: gans.models.frozen.Net}   networks the step uses but never trains
                                   (SCoGAN's SL classifier, PL's VGG19), loaded on the host
                                   once. The trainer passes their params, replicated, as
                                   train_step(config, state, batch, frozen) and records each
                                   one's digest in the config field Net.digest; they are
                                   never in the state, so never in a checkpoint
    checkpoint_scores(config, state) -> {name: float}   held-out scores, logged at every
                                   checkpoint (the classifier's accuracy, coupled pair agreement)
    figures(config, state, workdir) -> [paths]   the method's own figures for eval.py
                                   --figures (replaces the generic slerp interpolation)
    flops(config) -> (reference, necessary)   FLOPs per image of one step, for gans.bench
    eval_sets(config, outputs) -> {name: images}   jittable; what the sample-quality metrics
                                   score ('' is the headline set, others get fid_<name>);
                                   None: generate()'s output as one image set
    real_eval_sets(config, images) -> {name: images}   the same names from real images
    eval_domains(config) -> names  a generator of several domains (CoGAN's a and b): metrics
                                   per domain, against that stream of sources(config), with
                                   the domain as the two hooks' third argument
    generator_variables(config, state) -> pytree   what the generator that samples runs on
                                   (MSG-GAN: g_ema and g_stats): what sample.py --export saves
    apply_generator(config, variables, z)   jittable; the generator alone on those variables:
                                   images in [-1, 1], a tuple of one batch per domain
                                   (eval_domains), or a list of scales, low -> high; generate()
                                   is built on it, so an exported generator cannot drift
    latent_prior(config) -> 'normal' | 'uniform'   each latent component's distribution before
                                   the method's normalisation (slerp or lerp walks)
    truncated_latents(config, key, n, threshold) -> z   sample_latents conditioned on
                                   |z_i| <= threshold, as gans/latents.py defines it
  """
  name: str
  defaults: Callable[..., Any]
  validate: Callable[..., Any]
  sources: Callable[..., Any]
  example_spec: Callable[..., Any]
  init_state: Callable[..., Any]
  train_step: Callable[..., Any]
  tiny_model: dict
  progress: tuple
  logged_at_step: tuple = ()
  frozen: Optional[Callable[..., Any]] = None
  image_shape: Optional[Callable[..., Any]] = None
  sample_latents: Optional[Callable[..., Any]] = None
  generate: Optional[Callable[..., Any]] = None
  sheets: Optional[Callable[..., Any]] = None
  checkpoint_scores: Optional[Callable[..., Any]] = None
  figures: Optional[Callable[..., Any]] = None
  flops: Optional[Callable[..., Any]] = None
  eval_sets: Optional[Callable[..., Any]] = None
  real_eval_sets: Optional[Callable[..., Any]] = None
  eval_domains: Optional[Callable[..., Any]] = None
  generator_variables: Optional[Callable[..., Any]] = None
  apply_generator: Optional[Callable[..., Any]] = None
  latent_prior: Optional[Callable[..., Any]] = None
  truncated_latents: Optional[Callable[..., Any]] = None

  @property
  def makes_samples(self) -> bool:
    return self.generate is not None


def one_image_stream(image_shape):
  """(sources, example_spec) of a method that trains on one stream of uint8 images of
  image_shape(config): MSG-GAN and BEGAN."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gans import data  # pylint: disable=g-import-not-at-top

  def sources(config):
    return data.make_source(config.data, *image_shape(config)[1:])

  def example_spec(config):
    return jax.ShapeDtypeStruct(image_shape(config), jnp.uint8)

  return sources, example_spec


def get(name) -> Method:
  if name not in REGISTRY:
    raise UserError(f'unknown method {name!r}; choose one of {", ".join(REGISTRY)}')
  module, attribute = REGISTRY[name]
  return getattr(importlib.import_module(module), attribute)
