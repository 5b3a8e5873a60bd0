"""Joint-distribution metrics of a coupled model (spec metrics.md §6.1, §6.2).

A coupled model is good when the two images of one z correspond. For pairs linked by a known
pixel transform the CoGAN paper's pixel agreement measures it directly; for the others a
classifier is asked whether it gives both images the same label. Inputs are host arrays of
generated images in [-1, 1], NHWC, one row per z.
"""
import numpy as np

from gans.data import pairs


def binarize(images, crop=0, threshold=0.5):
  """[-1, 1] images -> bool [N, H, W] in [0, 1] space, channel mean, `crop` border removed."""
  x = (np.asarray(images, np.float32).mean(-1) + 1.0) / 2.0
  if crop:
    x = x[:, crop:-crop, crop:-crop]
  return x >= threshold


def pixel_agreement(images_a, images_b, transform, crop=0, threshold=0.5):
  """Fraction of pixels where T(binarised x_a) equals binarised x_b, over pixels and pairs.

  `crop` removes the black border the data pipeline padded after the transform (pair.pad), so
  that a negative's black frame is not counted against it.
  """
  a = binarize(images_a, crop, threshold).astype(np.float32)[..., None]
  b = binarize(images_b, crop, threshold)
  t = pairs.transform(transform, a)[..., 0] >= 0.5
  return float(np.mean(t == b))


def classifier_agreement(labels_a, labels_b, num_classes):
  """(agreement, chance): the fraction of pairs given one label, and the agreement two
  independent draws from the two predicted label marginals would reach, sum_c p_a(c) p_b(c)."""
  labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
  p_a = np.bincount(labels_a, minlength=num_classes) / len(labels_a)
  p_b = np.bincount(labels_b, minlength=num_classes) / len(labels_b)
  return float(np.mean(labels_a == labels_b)), float(np.dot(p_a, p_b))


def undo_transform(images_b, transform, pad=0):
  """Domain-b images in domain a's look where the pair's transform is invertible (negative,
  rotate; others unchanged). The padded border stays black: the transform never touched it."""
  if transform == 'negative':
    inner = -images_b[:, pad:images_b.shape[1] - pad, pad:images_b.shape[2] - pad]
    return np.pad(inner, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-1.0)
  if transform == 'rotate':
    return np.rot90(images_b, -1, axes=(1, 2))
  return images_b


def pair_scores(images_a, images_b, transform, pad=0, classifier=''):
  """{name: float} of generated pairs (metrics.md §6): pixel_agreement when domain b is a pixel
  transform of a (`transform` not 'none'), and pair_agreement with its chance level when
  `classifier` names a classifier workdir. For negative and rotate pairs domain b's images are
  transformed back before classification, so a classifier of domain a judges both."""
  out = {}
  if transform != 'none':
    out['pixel_agreement'] = pixel_agreement(images_a, images_b, transform, crop=pad)
  if classifier:
    from gans import figures  # pylint: disable=g-import-not-at-top
    from gans.methods import classifier as method  # pylint: disable=g-import-not-at-top
    frozen = method.load_frozen(classifier)
    labels = [frozen.predict_all(figures.to_uint8(x))
              for x in (images_a, undo_transform(images_b, transform, pad))]
    agree, chance = classifier_agreement(*labels, frozen.config.model.num_classes)
    out['pair_agreement'], out['pair_agreement_chance'] = agree, chance
  return out
