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

  For a generator (all but the classifier):
    image_shape(config) -> (R, R, C)   the images the sources hold, at the model's resolution
    sample_latents(config, key, n) -> z
    generate(config, state, z)     jittable; what the sample sheets are made from
    sheets(config, host_outputs) -> [(name, images in [-1, 1], columns or None)]

  Optional:
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
