"""PNG sheets a person can look at. Values in [-1, 1] are clamped and mapped to 0..255 as they
are: no per-image re-stretching (the reference's scale_each=True distorts colours)."""
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath
from PIL import Image

from gans import parallel


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
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    out[top:top + h, left:left + w] = img
  return out


def save_png(image, path):
  """Write a PIL image to path, a local path or a URL (gs://...), creating its folders."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('wb') as f:
    image.save(f, format='PNG')
  return str(path)


def save_grid(images, path, ncol=None, min_tile=64):
  """Write a sheet of [-1, 1] images to path (directories created); returns the path.

  Tiles smaller than min_tile pixels are enlarged by an integer nearest-neighbour factor, so a
  sheet of 8x8 or 16x16 samples is big enough to look at.
  """
  images = np.asarray(images)
  factor = max(1, -(-min_tile // min(images.shape[1:3])))
  sheet = grid(to_uint8(upsample(images, factor)), ncol)
  return save_png(Image.fromarray(sheet[..., 0] if sheet.shape[-1] == 1 else sheet), path)


def slerp(t, a, b):
  """Spherical interpolation between latent batches a and b ([N, d]) at fraction t; linear
  where they are parallel (dcgan.torch#14, as carpedm20/BEGAN-tensorflow interpolates)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  cos = np.sum(a * b, -1, keepdims=True) / (
      np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True))
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  so = np.sin(omega)
  safe = np.where(so < 1e-8, 1.0, so)
  spherical = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / safe
  return np.where(so < 1e-8, (1 - t) * a + t * b, spherical).astype(np.float32)


def _font(size):
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  return ImageFont.load_default(size=size)


def labelled_side_by_side(sheets, labels, path, pad=12, font_size=16):
  """Sheets (uint8 HxW[xC] arrays or PIL images) in one row, each captioned above: the
  diversity figure's layout. Returns the path."""
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  images = [s if isinstance(s, Image.Image) else Image.fromarray(np.asarray(s)) for s in sheets]
  images = [im.convert('RGB') for im in images]
  top = font_size + 2 * pad
  width = sum(im.width for im in images) + pad * (len(images) + 1)
  canvas = Image.new('RGB', (width, top + max(im.height for im in images) + pad), 'white')
  draw, x = ImageDraw.Draw(canvas), pad
  for im, label in zip(images, labels):
    canvas.paste(im, (x, top))
    draw.text((x + im.width // 2, top - pad // 2), label, fill='black', font=_font(font_size),
              anchor='ms')
    x += im.width + pad
  save_png(canvas, path)
  return path


def _ticks(lo, hi, count=5):
  """About `count` round values spanning [lo, hi] (1, 2 or 5 times a power of ten apart)."""
  span = max(hi - lo, 1e-12)
  raw = span / count
  unit = 10 ** math.floor(math.log10(raw))
  step = next(m * unit for m in (1, 2, 5, 10) if m * unit >= raw)
  first = math.ceil(lo / step) * step
  return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def curve_with_snapshots(steps, values, snapshots, path, label='M', size=(900, 380), thumb=150):
  """A line plot of values over steps with sample sheets along it (the BEGAN convergence
  figure): each snapshot (step, image) is drawn below the plot, joined to its step on the
  x axis. Drawn with PIL, so it needs no plotting library. Returns the path."""
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  font = _font(13)
  left, right, top, bottom = 70, 20, 30, 40
  plot_w, plot_h = size[0] - left - right, size[1] - top - bottom
  gap = 30 if snapshots else 0
  height = size[1] + (gap + thumb + 20 if snapshots else 0)
  canvas = Image.new('RGB', (size[0], height), 'white')
  draw = ImageDraw.Draw(canvas)
  x0, x1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))
  y0, y1 = float(values.min()), float(values.max())
  margin = 0.05 * max(y1 - y0, 1e-6)
  y0, y1 = y0 - margin, y1 + margin
  px = lambda s: left + (s - x0) / (x1 - x0) * plot_w
  py = lambda v: top + (y1 - v) / (y1 - y0) * plot_h
  draw.rectangle([left, top, left + plot_w, top + plot_h], outline='black')
  for v in _ticks(y0, y1):
    draw.line([left - 4, py(v), left, py(v)], fill='black')
    draw.line([left, py(v), left + plot_w, py(v)], fill=(230, 230, 230))
    draw.text((left - 6, py(v)), f'{v:.3g}', fill='black', font=font, anchor='rm')
  for s in _ticks(x0, x1, 6):
    draw.line([px(s), top + plot_h, px(s), top + plot_h + 4], fill='black')
    draw.text((px(s), top + plot_h + 6), f'{s:,.0f}', fill='black', font=font, anchor='mt')
  draw.text((left + plot_w // 2, size[1] - 4), 'step', fill='black', font=font, anchor='mb')
  draw.text((left, top - 8), label, fill='black', font=font, anchor='lb')
  draw.line([(px(s), py(v)) for s, v in zip(steps, values)], fill=(31, 119, 180), width=2)
  if snapshots:
    slot = size[0] / len(snapshots)
    thumb = min(thumb, int(slot) - 12)  # a gap between neighbours
    for i, (step, image) in enumerate(snapshots):
      im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
      im = im.convert('RGB')
      scale = thumb / max(im.size)
      im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                     Image.LANCZOS)
      tx = int(slot * i + (slot - im.width) / 2)
      ty = size[1] + gap
      canvas.paste(im, (tx, ty))
      draw.line([px(step), top + plot_h, tx + im.width / 2, ty], fill=(150, 150, 150))
      draw.text((tx + im.width / 2, ty + im.height + 2), f'{step:,}', fill='black', font=font,
                anchor='mt')
  save_png(canvas, path)
  return path


_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def line_chart(series, path, title='', xlabel='step', size=(900, 480)):
  """A PNG line chart of {name: (xs, ys)}, drawn with PIL (no plotting library needed for a
  few curves); non-finite values are skipped. Returns the path."""
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  series = {k: (np.asarray(x, np.float64), np.asarray(y, np.float64))
            for k, (x, y) in series.items()}
  series = {k: (x[np.isfinite(y)], y[np.isfinite(y)]) for k, (x, y) in series.items()}
  series = {k: v for k, v in series.items() if len(v[0])}
  width, height = size
  left, right, top, bottom = 80, 190, 34, 46
  image = Image.new('RGB', size, 'white')
  draw = ImageDraw.Draw(image)
  font = _font(13)
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
  save_png(image, path)
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


def fit_latents(render, target, z, steps, lr, bound=None):
  """z with render(z) close to target: Adam on mean |target - render(z)| from the start z,
  clipped to [-bound, bound] after each step where the prior has that support (BEGAN's
  interpolation between real images, CoGAN's cross-domain translation). One jitted step in a
  Python loop: XLA:CPU runs loops of convolutions slowly."""
  tx = optax.adam(lr)

  @jax.jit
  def step(z, opt):
    grad = jax.grad(lambda z: jnp.mean(jnp.abs(target - render(z))))(z)
    updates, opt = tx.update(grad, opt, z)
    z = optax.apply_updates(z, updates)
    return (z if bound is None else jnp.clip(z, -bound, bound)), opt

  opt = tx.init(z)
  for _ in range(steps):
    z, opt = step(z, opt)
  return z


def slerp_walk(z0, z1, steps):
  """[N, steps, D]: spherical interpolation from each z0[i] to z1[i], both ends included (every
  latent walk of the figures)."""
  return np.stack([slerp(t, z0, z1) for t in np.linspace(0.0, 1.0, steps)], axis=1)


def write_samples(method, config, state, latents, directory, tag, generate=None):
  """Write the method's sample sheets for `latents` into directory/<sheet>/<tag>.png.

  All processes must call it (generation is one global computation); process 0 writes.
  """
  generate = generate or jax.jit(functools.partial(method.generate, config))
  outputs = parallel.to_host(generate(state, latents))
  paths = []
  if jax.process_index() == 0:
    for name, images, ncol in method.sheets(config, outputs):
      paths.append(save_grid(images, os.path.join(directory, name, f'{tag}.png'), ncol))
  return paths
