"""Domain pairs for the coupled GANs: two unpaired image sources, {'a': ..., 'b': ...}.

The feeder gives each source its own independently shuffled stream, so the two domains are
never paired. A pair is built one of three ways (spec coupled.md §3.6):

  one dataset, two halves   domain a = the first half of `data`, domain b = the second half
                            through a pixel transform (negative, edge, rotate), as the CoGAN
                            paper does with MNIST: no digit instance appears in both domains.
  two datasets              domain a = `data`, domain b = `data_b` (MNIST and SVHN, the two
                            halves trainA/trainB of a CycleGAN set), optionally keeping only
                            the domain-b images a classifier is confident about (SVHN pruning).
  one dataset, attribute    CelebA images with the attribute (a) and without it (b).

Transforms act on the images at their native grid, before `pair.pad` pixels of black border are
added (spec §4 #2): MNIST is transformed at 28x28 and padded to 32x32, so the pixels stay exact
and pixel agreement stays well defined; the metric crops the same border.
"""
import hashlib

import ml_collections
import numpy as np

from gans import config as config_lib
from gans.data import sources, tfds_source
from gans.errors import UserError

TRANSFORMS = ('none', 'negative', 'edge', 'rotate')


def dilate(x):
  """Grey dilation by a 3x3 square: the maximum over each pixel's 3x3 neighbourhood (NHWC)."""
  h, w = x.shape[1:3]
  p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # 0 = black: never wins a maximum
  return np.max([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)


def transform(name, x):
  """Domain b of a one-dataset pair from domain-a images: uint8, or floats in [0, 1], NHWC.

  edge = dilate(x) - x, the outer contour (CoGAN's digit/edge task); negative = max - x;
  rotate = rot90.
  """
  if name == 'none':
    return x
  if name == 'negative':
    return (255 - x) if x.dtype == np.uint8 else 1.0 - x
  if name == 'edge':
    return dilate(x) - x
  if name == 'rotate':
    return np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2)))
  raise UserError(f'pair.transform={name!r}; choose one of {", ".join(TRANSFORMS)}')


class Subset(sources.ImageSource):
  """The examples `indices` of a source, in that order; `salt` is what chose them, beyond the
  source (the digest of a pruning classifier), for the fingerprint."""

  def __init__(self, source, indices, name, salt=''):
    self.source, self.indices = source, np.asarray(indices, np.int64)
    self.name, self.resolution, self.channels = name, source.resolution, source.channels
    self.salt = salt

  def fingerprint(self):
    return sources.digest('subset', self.source.fingerprint(), self.salt,
                          hashlib.sha256(self.indices.tobytes()).hexdigest())

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, indices):
    return self.source[self.indices[np.asarray(indices)]]

  def labels(self):
    return self.source.labels()[self.indices]


class Transformed(sources.ImageSource):
  """A source's images through `transform`, then padded by `pad` black pixels on each side."""

  def __init__(self, source, transform_name, pad):
    self.source, self.transform, self.pad = source, transform_name, pad
    self.name = source.name if transform_name == 'none' else f'{transform_name}({source.name})'
    self.resolution, self.channels = source.resolution + 2 * pad, source.channels

  def __len__(self):
    return len(self.source)

  def fingerprint(self):
    return sources.digest('transformed', self.source.fingerprint(), self.transform, self.pad)

  def __getitem__(self, indices):
    x = transform(self.transform, self.source[indices])
    p = self.pad
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x

  def labels(self):
    return self.source.labels()


class Union(sources.ImageSource):
  """The examples of several sources, one after the other: a classifier that knows both
  domains of a pair (spec coupled.md §4 #20) trains on Union(a, b)."""

  def __init__(self, parts, name):
    self.parts, self.name = list(parts), name
    self.resolution, self.channels = self.parts[0].resolution, self.parts[0].channels
    self._starts = np.cumsum([0] + [len(p) for p in self.parts])

  def __len__(self):
    return int(self._starts[-1])

  def fingerprint(self):
    return sources.digest('union', *[p.fingerprint() for p in self.parts])

  def __getitem__(self, indices):
    indices = np.asarray(indices)
    part = np.searchsorted(self._starts, indices, side='right') - 1
    out = np.empty((len(indices), self.resolution, self.resolution, self.channels), np.uint8)
    for i, source in enumerate(self.parts):
      rows = np.flatnonzero(part == i)
      if len(rows):
        out[rows] = source[indices[rows] - self._starts[i]]
    return out

  def labels(self):
    return np.concatenate([p.labels() for p in self.parts])


def add_blocks(c: ml_collections.ConfigDict, name='digits2negative'):
  """Add the blocks a pair is read from (data_b, pair) to config c, set for the pair `name`."""
  c.data_b = config_lib.data_defaults('')  # domain b's dataset; '' = the other half of data
  c.pair = ml_collections.ConfigDict()
  c.pair.transform = 'negative'  # domain b = T(images): none, negative, edge, rotate
  c.pair.pad = 2  # black border added after the transform (28 -> 32, §4 #2)
  c.pair.attribute = ''  # CelebA: domain a with it, b without
  c.pair.prune_classifier = ''  # keep domain-b images this classifier is confident about
  c.pair.prune_min_confidence = 0.4
  return configure(c, name)


def make_sources(config: ml_collections.ConfigDict, resolution, channels):
  """{'a': source, 'b': source} for config.data, config.data_b and config.pair."""
  pair = config.pair
  inner = resolution - 2 * pair.pad
  base = sources.make_source(config.data, inner, channels)
  if pair.attribute:
    with_attr = attribute_values(config.data, pair.attribute)[:len(base)]
    a = Subset(base, np.flatnonzero(with_attr), f'{base.name}[{pair.attribute}]')
    b = Subset(base, np.flatnonzero(~with_attr), f'{base.name}[not {pair.attribute}]')
  elif config.data_b.name:
    a, b = base, sources.make_source(config.data_b, inner, channels)
  else:
    half = len(base) // 2
    a = Subset(base, np.arange(half), f'{base.name}[:half]')
    b = Subset(base, np.arange(half, len(base)), f'{base.name}[half:]')
  if pair.prune_classifier:
    b = prune(b, pair.prune_classifier, pair.prune_min_confidence)
  return {'a': Transformed(a, 'none', pair.pad), 'b': Transformed(b, pair.transform, pair.pad)}


def attribute_values(data_config: ml_collections.ConfigDict, attributes):
  """bool [N] (one attribute name) or [N, A] (a sequence of names): which examples of a TFDS
  dataset with an 'attributes' feature (celeb_a) have each attribute. Reads every record once
  (TFDS decodes the image too: minutes for CelebA), whatever the number of attributes."""
  names = [attributes] if isinstance(attributes, str) else list(attributes)
  records = tfds_source.open_tfds(data_config.name, data_config.split,
                                 data_config.get('data_dir') or None)
  first = records[0]
  for attribute in names:
    if 'attributes' not in first or attribute not in first['attributes']:
      known = ', '.join(sorted(first.get('attributes', {}))) or 'none'
      raise UserError(f'{data_config.name} has no attribute {attribute!r}; its attributes: '
                      f'{known}')
  read = lambda i: [bool(records[i]['attributes'][a]) for a in names]
  values = np.array(list(sources.pool().map(read, range(len(records)))), bool).reshape(
      len(records), len(names))
  return values[:, 0] if isinstance(attributes, str) else values


def prune(source, classifier_workdir, min_confidence):
  """The images of `source` whose max softmax under the frozen classifier is >= min_confidence
  (SCoGAN's `mnist2svhn_prune` keeps SVHN digits a classifier finds legible, at 0.4)."""
  import jax  # pylint: disable=g-import-not-at-top
  from gans.methods import classifier  # pylint: disable=g-import-not-at-top
  from gans.models import frozen as frozen_models  # pylint: disable=g-import-not-at-top
  frozen = classifier.load_frozen(classifier_workdir)
  confidence = jax.jit(lambda p, x: jax.nn.softmax(
      classifier.Frozen(frozen.config, p).logits(x.astype('float32') / 127.5 - 1)).max(-1))
  images = source.load_all()
  conf = np.concatenate([np.asarray(confidence(frozen.params, images[i:i + 512]))
                         for i in range(0, len(images), 512)])
  keep = np.flatnonzero(conf >= min_confidence)
  if not len(keep):
    raise UserError(f'no image of {source.name} reaches confidence {min_confidence} under the '
                    f'classifier in {classifier_workdir}; lower pair.prune_min_confidence')
  return Subset(source, keep, f'{source.name}[conf>={min_confidence}]',
                salt=frozen_models.array_digest(frozen.params))


# Presets: what configs/ and users pick by name. Each sets config.data, config.data_b and
# config.pair; run-time fields (data.path for idx, pair.prune_classifier) stay overridable.
_ONE_DATASET = {'negative', 'edge', 'rotate'}
PAIRS = (*[f'{d}2{t}' for d in ('digits', 'mnist') for t in sorted(_ONE_DATASET)],
         'mnist2svhn', 'mnist2svhn_prune', 'mnist2fashion', 'cycle_gan/apple2orange',
         'cycle_gan/horse2zebra', 'celeba/<attribute>')


def configure(c: ml_collections.ConfigDict, name):
  """Set config c's data, data_b, pair and model.image_channels for the pair `name`."""
  d, b, p = c.data, c.data_b, c.pair
  d.flip = b.flip = False
  first, _, second = name.partition('2')
  if first in ('digits', 'mnist') and second in _ONE_DATASET:
    d.name, b.name, p.transform, p.pad = first, '', second, 2
    c.model.image_channels = 1
  elif name in ('mnist2svhn', 'mnist2svhn_prune', 'mnist2fashion'):
    d.name, b.name, p.transform, p.pad = 'mnist', 'svhn_cropped', 'none', 0
    c.model.image_channels = 3
    if name == 'mnist2fashion':
      b.name, c.model.image_channels = 'fashion_mnist', 1
    if name == 'mnist2svhn_prune':
      p.prune_min_confidence = 0.4  # pair.prune_classifier: a classifier workdir, set at run time
  elif name.startswith('cycle_gan/'):
    d.name = b.name = name
    d.split, b.split, d.flip, b.flip = 'trainA', 'trainB', True, True
    p.transform, p.pad, c.model.image_channels = 'none', 0, 3
  elif name.startswith('celeba/'):
    d.name, b.name, d.center_crop, d.flip = 'celeb_a', '', 140, True
    p.transform, p.pad, p.attribute, c.model.image_channels = 'none', 0, name[7:], 3
  else:
    raise UserError(f'unknown domain pair {name!r}; choose one of {", ".join(PAIRS)}')
  return c
