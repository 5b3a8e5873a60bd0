"""PNG sheets a person can look at. Values in [-1, 1] are clamped and mapped to 0..255 as they
are: no per-image re-stretching (the reference's scale_each=True distorts colours)."""
import math
import os

import numpy as np
from PIL import Image


def to_uint8(images):
  """[-1, 1] floats -> uint8, clamped, with the same affine map for every image."""
  x = (np.clip(np.asarray(images, np.float32), -1.0, 1.0) + 1.0) * 127.5
  return np.rint(x).astype(np.uint8)


def upsample(images, factor):
  """Nearest-neighbour enlargement of a NHWC batch, so small scales are visible at full size."""
  return np.repeat(np.repeat(np.asarray(images), factor, axis=1), factor, axis=2)


def scales_side_by_side(scales):
  """[N, R, d*R, C]: each sample's scales (low -> high) upsampled to full size, left to right."""
  full = scales[-1].shape[1]
  return np.concatenate([upsample(s, full // s.shape[1]) for s in scales], axis=2)


def grid(images, ncol=None, pad=1):
  """Tile a NHWC uint8 batch into one image, `pad` black pixels between tiles."""
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  out = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.uint8)
  for i, img in enumerate(images):
    r, col = divmod(i, ncol)
    out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = img
  return out


def save_grid(images, path, ncol=None, min_tile=64):
  """Write a sheet of [-1, 1] images to path (directories created); returns the path.

  Tiles smaller than min_tile pixels are enlarged by an integer nearest-neighbour factor, so a
  sheet of 8x8 or 16x16 samples is big enough to look at.
  """
  images = np.asarray(images)
  factor = max(1, -(-min_tile // min(images.shape[1:3])))
  sheet = grid(to_uint8(upsample(images, factor)), ncol)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  Image.fromarray(sheet[..., 0] if sheet.shape[-1] == 1 else sheet).save(path)
  return path


def pair_rows(images_a, images_b, max_columns=12):
  """(images, columns) for a pair sheet: each column one z, its domain-a image above its
  domain-b image; more z than max_columns wrap into further row pairs."""
  images_a, images_b = np.asarray(images_a), np.asarray(images_b)
  ncol = min(len(images_a), max_columns)
  rows = [r for i in range(0, len(images_a), ncol) for r in (images_a[i:i + ncol],
                                                             images_b[i:i + ncol])]
  if len(images_a) % ncol:  # pad the last row pair with black so the columns stay aligned
    fill = np.full((ncol - len(rows[-1]),) + images_a.shape[1:], -1.0, images_a.dtype)
    rows[-2:] = [np.concatenate([r, fill]) for r in rows[-2:]]
  return np.concatenate(rows), ncol


def slerp_walk(z0, z1, steps):
  """[N, steps, D]: spherical interpolation from each z0[i] to z1[i] (the CoGAN/SCoGAN latent
  walks); falls back to a straight line where the two are (anti)parallel."""
  z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  t = np.linspace(0.0, 1.0, steps)[None, :, None]
  cos = np.sum(z0 * z1, -1) / (np.linalg.norm(z0, axis=-1) * np.linalg.norm(z1, axis=-1))
  omega = np.arccos(np.clip(cos, -1.0, 1.0))[:, None, None]
  sin = np.sin(omega)
  safe = np.where(sin > 1e-6, sin, 1.0)
  curved = (np.sin((1 - t) * omega) * z0[:, None] + np.sin(t * omega) * z1[:, None]) / safe
  straight = (1 - t) * z0[:, None] + t * z1[:, None]
  return np.where(sin > 1e-6, curved, straight).astype(np.float32)
