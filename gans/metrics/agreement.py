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
