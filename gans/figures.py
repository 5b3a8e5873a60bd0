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


def slerp(a, b, t):
  """Spherical interpolation between latent batches a and b ([N, D]) at fractions t ([T]):
  [N, T, D]. Gaussian latents concentrate on a sphere, so a straight line between two of them
  passes through unlikely, short vectors; the great circle does not."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
  omega = np.arccos(np.clip(np.sum(a / na * b / nb, axis=-1, keepdims=True), -1.0, 1.0))
  t = np.asarray(t, np.float64)[None, :, None]
  so = np.sin(omega)[:, None]
  safe = np.where(so < 1e-8, 1.0, so)
  wa = np.where(so < 1e-8, 1.0 - t, np.sin((1.0 - t) * omega[:, None]) / safe)
  wb = np.where(so < 1e-8, t, np.sin(t * omega[:, None]) / safe)
  return (wa * a[:, None] + wb * b[:, None]).astype(np.float32)


_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def _ticks(lo, hi, n=5):
  if hi <= lo:
    hi = lo + 1.0
  step = 10 ** math.floor(math.log10((hi - lo) / n))
  step *= min((m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= n), default=10)
  first = math.ceil(lo / step) * step
  return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(series, path, title='', xlabel='step', size=(900, 480)):
  """A PNG line chart of {name: (xs, ys)}, drawn with PIL (no plotting library needed for a
  few curves); non-finite values are skipped. Returns the path."""
  from PIL import ImageDraw, ImageFont
  series = {k: (np.asarray(x, np.float64), np.asarray(y, np.float64))
            for k, (x, y) in series.items()}
  series = {k: (x[np.isfinite(y)], y[np.isfinite(y)]) for k, (x, y) in series.items()}
  series = {k: v for k, v in series.items() if len(v[0])}
  width, height = size
  left, right, top, bottom = 80, 190, 34, 46
  image = Image.new('RGB', size, 'white')
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default()
  draw.text((left, 10), title, fill='black', font=font)
  if series:
    xs = np.concatenate([x for x, _ in series.values()])
    ys = np.concatenate([y for _, y in series.values()])
    (x0, x1), (y0, y1) = (xs.min(), xs.max()), (ys.min(), ys.max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    px = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)
    py = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
    draw.rectangle((left, top, width - right, height - bottom), outline='black')
    for t in _ticks(x0, x1):
      draw.line((px(t), height - bottom, px(t), height - bottom + 4), fill='black')
      draw.text((px(t) - 12, height - bottom + 6), f'{t:.6g}', fill='black', font=font)
    for t in _ticks(y0, y1):
      draw.line((left - 4, py(t), left, py(t)), fill='black')
      draw.line((left, py(t), width - right, py(t)), fill=(225, 225, 225))
      draw.text((4, py(t) - 6), f'{t:.4g}', fill='black', font=font)
    for i, (name, (x, y)) in enumerate(series.items()):
      colour = _COLOURS[i % len(_COLOURS)]
      points = list(zip(px(x).tolist(), py(y).tolist()))
      if len(points) > 1:
        draw.line(points, fill=colour, width=2)
      else:
        draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2),
                     fill=colour)
      draw.line((width - right + 10, top + 8 + 16 * i, width - right + 30, top + 8 + 16 * i),
                fill=colour, width=3)
      draw.text((width - right + 36, top + 2 + 16 * i), name, fill='black', font=font)
  draw.text(((width - right + left) // 2 - 10, height - 18), xlabel, fill='black', font=font)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  image.save(path)
  return path
