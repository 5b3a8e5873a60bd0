"""Training a classifier with the same engine, and loading it frozen for the GAN methods.

The GANs need a judge that knows the domains: SCoGAN's semantic loss, pair agreement and the
classifier-feature metrics all load one with load_frozen(workdir). Held-out accuracy is
computed whenever a checkpoint is written (checkpoint_scores), so every saved classifier has its
score in metrics.jsonl beside the training loss.
"""
import functools
import json
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gans import config as config_lib
from gans import methods
from gans import data, health, parallel
from gans.data import feeding, pairs
from gans.errors import UserError
from gans.models import classifier as models

TINY_MODEL = dict(width=8, feature_size=32)
PROGRESS = ('loss', 'accuracy')


def defaults() -> ml_collections.ConfigDict:
  """A digit classifier: 16x16 grey, 10 classes, 80% of the embedded digits to train on."""
  c = config_lib.base_defaults('classifier')
  c.model = ml_collections.ConfigDict()
  c.model.resolution = 16  # the digits are 8x8 scans: 16x16 keeps every stroke
  c.model.image_channels = 1
  c.model.num_classes = 10
  c.model.width = 32
  c.model.feature_size = 128
  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.data.split = 'train[:80%]'
  c.data.flip = False
  c.classifier = ml_collections.ConfigDict()  # the method's own knobs
  c.classifier.max_shift = 2  # random translation by up to this many pixels: the augmentation
  c.classifier.eval_split = 'train[80%:]'  # held out; '' to skip
  # Train on both domains of the pair in data, data_b and pair (spec coupled.md §4 #20: one
  # judge whose classes mean the same in both domains), each split taken as the GAN takes it.
  c.classifier.on_pair = False
  # Comma-separated attribute names (celeb_a): one sigmoid per attribute, binary CE; the
  # frozen classifier then gives independent probabilities (SCoGAN's multi-label SL).
  c.classifier.attributes = ''
  pairs.add_blocks(c)
  c.batch_size = 64
  c.num_steps = 2000
  return c


def validate(config: ml_collections.ConfigDict):
  check = config_lib.check
  m = config.model
  check(m.resolution >= 8, f'model.resolution={m.resolution} must be >= 8')
  check(m.image_channels in (1, 3), f'model.image_channels={m.image_channels} must be 1 or 3')
  check(m.num_classes >= 2, f'model.num_classes={m.num_classes} must be >= 2')
  check(m.width >= 1 and m.feature_size >= 1, 'model.width and model.feature_size must be >= 1')
  check(config.optim.lr > 0, f'optim.lr={config.optim.lr} must be > 0')
  shift = config.classifier.max_shift
  check(0 <= shift < m.resolution, f'classifier.max_shift={shift} must be in [0, '
        'model.resolution)')
  config_lib.validate_data(config.data)
  if config.classifier.attributes:
    n = len(attribute_names(config))
    check(m.num_classes == n, f'classifier.attributes names {n} attributes: set '
          f'model.num_classes={n}')
    check(not config.classifier.on_pair, 'classifier.attributes reads one dataset: '
          'set classifier.on_pair=False')


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  key: jax.Array
  params: Any
  opt: Any


def build_model(config: ml_collections.ConfigDict):
  m = config.model
  return models.Classifier(num_classes=m.num_classes, width=m.width, feature_size=m.feature_size)


def optimizer(config: ml_collections.ConfigDict):
  return optax.adamw(config.optim.lr, weight_decay=config.optim.weight_decay)


def attribute_names(config: ml_collections.ConfigDict) -> list:
  """The attributes of a multi-label classifier ([] for classes); old configs have none."""
  return [a.strip() for a in config.classifier.get('attributes', '').split(',') if a.strip()]


def _labelled(config: ml_collections.ConfigDict, split=None):
  """The labelled examples of config.data's split (or `split`): its images, the union of both
  domains of the pair (classifier.on_pair), or its images with their attribute vectors."""
  config = config.copy_and_resolve_references()
  if split is not None:
    config.data.split = split
    if config.get('data_b') and config.data_b.name:
      config.data_b.split = split
  m = config.model
  if config.classifier.get('on_pair'):
    domains = pairs.make_sources(config, m.resolution, m.image_channels)
    union = pairs.Union([domains['a'], domains['b']], f'{domains["a"].name}+{domains["b"].name}')
    return data.LabelledSource(union)
  images = data.make_source(config.data, m.resolution, m.image_channels)
  names = attribute_names(config)
  if not names:
    return data.LabelledSource(images)
  values = pairs.attribute_values(config.data, names)[:len(images)].astype(np.float32)
  return data.LabelledSource(images, labels=values)


def sources(config: ml_collections.ConfigDict):
  return _labelled(config)


def example_spec(config: ml_collections.ConfigDict):
  m = config.model
  names = attribute_names(config)
  label = (jax.ShapeDtypeStruct((len(names),), jnp.float32) if names
           else jax.ShapeDtypeStruct((), jnp.int32))
  return {'image': jax.ShapeDtypeStruct((m.resolution, m.resolution, m.image_channels), jnp.uint8),
          'label': label}


def init_state(config: ml_collections.ConfigDict, key):
  m = config.model
  k_state, k_init = jax.random.split(key)
  x = jnp.zeros((1, m.resolution, m.resolution, m.image_channels))
  params = build_model(config).init(k_init, x)['params']
  return TrainState(step=jnp.zeros((), jnp.int32), key=k_state, params=params,
                    opt=optimizer(config).init(params))


def _shift(x, key, max_shift):
  """Translate each image by up to max_shift pixels (edge-padded): digits move, classes don't."""
  if not max_shift:
    return x
  n, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), mode='edge')
  offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def train_step(config: ml_collections.ConfigDict, state: TrainState, batch):
  k_flip, k_shift = jax.random.split(jax.random.fold_in(state.key, state.step))
  x = feeding.to_model_input(batch['image'], k_flip, config.data.flip)
  x = _shift(x, k_shift, config.classifier.max_shift)
  model = build_model(config)

  multilabel = bool(attribute_names(config))

  def loss_fn(params):
    logits = model.apply({'params': params}, x)
    if multilabel:
      loss = optax.sigmoid_binary_cross_entropy(logits, batch['label']).mean()
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt = optimizer(config).update(grads, state.opt, state.params)
  accuracy = jnp.mean(_predict(logits, multilabel) == batch['label'])
  params = optax.apply_updates(state.params, updates)
  return (state.replace(step=state.step + 1, params=params, opt=opt),
          {'loss': loss, 'accuracy': accuracy, 'lr': jnp.float32(config.optim.lr),
           **health.norms('classifier', grads, state.params, params)})


def checkpoint_scores(config: ml_collections.ConfigDict, state):
  """{'eval_accuracy': ...} on config.classifier.eval_split (nothing when it is ''), over all its
  images."""
  split = config.classifier.eval_split
  if not split:
    return {}
  source = _labelled(config, split)
  frozen = Frozen(config, state.params)
  examples = source.load_all()
  predictions = frozen.predict_all(examples['image'])
  return {'eval_accuracy': float(np.mean(predictions == examples['label']))}


class Frozen(NamedTuple):
  """A trained classifier as fixed functions of float images in [-1, 1], NHWC, any size and
  channel count (adapted to what it was trained on)."""

  config: Any
  params: Any

  def logits_and_taps(self, x):
    """(logits, {'conv0' .. 'conv5', 'fc': features}) (gans.models.classifier)."""
    m = self.config.model
    x = models.adapt(x.astype(jnp.float32), m.resolution, m.image_channels)
    return build_model(self.config).apply({'params': self.params}, x, features=True)

  def logits(self, x):
    return self.logits_and_taps(x)[0]

  @property
  def multilabel(self) -> bool:
    return bool(attribute_names(self.config))

  def probabilities(self, x):
    """Class probabilities (softmax), or one independent probability per attribute (sigmoid)
    for a multi-label classifier: what SCoGAN's semantic loss compares."""
    logits = self.logits(x)
    return jax.nn.sigmoid(logits) if self.multilabel else jax.nn.softmax(logits)

  def features(self, x):
    """The penultimate features: what the classifier-feature metrics compare."""
    return self.logits_and_taps(x)[1]['fc']

  def predict_all(self, images_uint8, batch=256):
    """Host helper: int32 labels of a uint8 NHWC array (a multi-label classifier: float 0/1
    per attribute), in jitted batches."""
    fn = _predict_fn(self.config.model.to_json(), self.multilabel)
    out = []
    for start in range(0, len(images_uint8), batch):
      chunk = images_uint8[start:start + batch]
      pad = batch - len(chunk)  # one shape, one compilation
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(fn(self.params, chunk))[:batch - pad])
    return np.concatenate(out)


def _predict(logits, multilabel):
  """The predicted class, or each attribute's presence as 0/1 (comparable with the labels)."""
  return (logits > 0).astype(jnp.float32) if multilabel else jnp.argmax(logits, -1)


@functools.lru_cache(maxsize=None)
def _predict_fn(model_json, multilabel=False):
  config = ml_collections.ConfigDict({'model': json.loads(model_json)})
  model = build_model(config)

  def predict(params, x):
    x = models.adapt(x.astype(jnp.float32) / 127.5 - 1, config.model.resolution,
                     config.model.image_channels)
    return _predict(model.apply({'params': params}, x), multilabel)

  return jax.jit(predict)


def load_frozen(workdir, step=None) -> Frozen:
  """The classifier trained in `workdir` (latest checkpoint, or `step`), on this host."""
  from gans import checkpoint  # pylint: disable=g-import-not-at-top
  config, state = checkpoint.load(workdir, step)
  if config.method != 'classifier':
    raise UserError(f'{workdir} holds a {config.method} run, not a classifier; train one with '
                    'python train.py --config configs/classifier_digits.py')
  return Frozen(config, parallel.to_host(state.params))


METHOD = methods.Method(
    name='classifier', defaults=defaults, validate=validate, sources=sources,
    example_spec=example_spec, init_state=init_state, train_step=train_step,
    tiny_model=TINY_MODEL, progress=PROGRESS, checkpoint_scores=checkpoint_scores)
