"""PNG sheets a person can look at. Values in [-1, 1] are clamped and mapped to 0..255 as they
are: no per-image re-stretching (the reference's scale_each=True distorts colours)."""
import functools
import io
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
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


def png_bytes(image) -> bytes:
  """A PIL image encoded as PNG."""
  buffer = io.BytesIO()
  image.save(buffer, format='PNG')
  return buffer.getvalue()


def save_png(image, path):
  """Write a PIL image to path, a local path or a URL (gs://...), creating its folders."""
  return _write(png_bytes(image), path)


def to_pil(image) -> Image.Image:
  """A PIL image of one uint8 HxWxC array (C = 1: greyscale)."""
  image = np.asarray(image)
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def enlarge(images, min_tile=64):
  """NHWC images enlarged by the integer nearest-neighbour factor that makes tiles of at least
  min_tile pixels, so a sheet of 8x8 or 16x16 samples is big enough to look at."""
  images = np.asarray(images)
  return upsample(images, max(1, -(-min_tile // min(images.shape[1:3]))))


def grid_png(images, ncol=None, min_tile=64) -> bytes:
  """A sheet of [-1, 1] images (small tiles enlarged), encoded as PNG."""
  return png_bytes(to_pil(grid(to_uint8(enlarge(images, min_tile)), ncol)))


def save_grid(images, path, ncol=None, min_tile=64):
  """Write a sheet of [-1, 1] images (grid_png) to path (directories created); returns the
  path."""
  return _write(grid_png(images, ncol, min_tile), path)


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


def _chart(size, draw):
  """A PNG of `size` pixels: draw(fig) fills a matplotlib Figure rendered by Agg. Figure objects
  keep no pyplot state, so charts drawn from threads or a notebook never touch each other."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, facecolor='white')
  FigureCanvasAgg(fig)
  draw(fig)
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100, facecolor='white')
  return buffer.getvalue()


def _write(data, path):
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)
  return str(path)


def curve_with_snapshots(steps, values, snapshots, path, label='M', size=(900, 380), thumb=150):
  """A line plot of values over steps with sample sheets above it (the BEGAN convergence
  figure): each snapshot (step, image) is a thumbnail joined to its step on the curve, so the
  samples can be read against the measure. `size` is the plot's; the thumbnails add a row
  above it. Returns the path."""
  from matplotlib.patches import ConnectionPatch  # pylint: disable=g-import-not-at-top
  steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  width, plot_h = size
  slot = width / max(len(snapshots), 1)
  thumb = min(thumb, int(slot) - 12)  # a gap between neighbours
  row = thumb + 30 if snapshots else 0  # the thumbnails and their step captions
  height = plot_h + row

  def draw(fig):
    left, right, top, bottom = 70, 20, 30, 45
    ax = fig.add_axes((left / width, bottom / height, (width - left - right) / width,
                       (plot_h - top - bottom) / height))
    ax.plot(steps, values, color='tab:blue', linewidth=1.5)
    ax.set_xlabel('step')
    ax.set_ylabel(label)
    ax.grid(True, color='0.9')
    ax.set_xlim(steps.min(), max(steps.max(), steps.min() + 1))
    for i, (step, image) in enumerate(snapshots):
      im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
      im = np.asarray(im.convert('RGB'))
      scale = thumb / max(im.shape[:2])
      w, h = im.shape[1] * scale, im.shape[0] * scale
      x = slot * i + (slot - w) / 2
      inset = fig.add_axes((x / width, (height - 8 - h) / height, w / width, h / height))
      inset.imshow(im, interpolation='antialiased')
      inset.set_axis_off()
      inset.text(0.5, -4 / h, f'{step:,}', fontsize=9, ha='center', va='top',
                 transform=inset.transAxes)
      at = min(np.searchsorted(steps, step), len(steps) - 1) if len(steps) else 0
      fig.add_artist(ConnectionPatch(
          xyA=(step, values[at]), coordsA=ax.transData, xyB=(0.5, -20 / h),
          coordsB=inset.transAxes, color='0.6', linewidth=0.8))

  return _write(_chart((width, height), draw), path)


def line_chart(series, path, title='', xlabel='step', size=(900, 480)):
  """A PNG line chart of {name: (xs, ys)}, one colour per series and a legend beside the plot;
  non-finite values are skipped (a diverged metric still shows its finite part). Returns the
  path."""
  series = {k: (np.asarray(x, np.float64), np.asarray(y, np.float64))
            for k, (x, y) in series.items()}
  series = {k: (x[np.isfinite(y)], y[np.isfinite(y)]) for k, (x, y) in series.items()}
  series = {k: v for k, v in series.items() if len(v[0])}
  width, height = size

  def draw(fig):
    left, right, top, bottom = 80, 190, 34, 46
    ax = fig.add_axes((left / width, bottom / height, (width - left - right) / width,
                       (height - top - bottom) / height))
    for name, (x, y) in series.items():
      ax.plot(x, y, linewidth=2, marker='o' if len(x) == 1 else None, label=name)
    ax.set_title(title, loc='left')
    ax.set_xlabel(xlabel)
    ax.grid(True, color='0.9')
    if series:
      ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), frameon=False)

  return _write(_chart(size, draw), path)


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


def write_samples(method, config: ml_collections.ConfigDict, state, latents, directory, tag,
                  generate=None, pngs=None):
  """Write the method's sample sheets for `latents` into directory/<sheet>/<tag>.png; returns
  the paths. A dict passed as `pngs` receives {sheet name: the PNG bytes written}, so that a
  caller logging the sheets (logs.MetricWriter.images) need not read them back.

  All processes must call it (generation is one global computation); process 0 writes.
  """
  generate = generate or jax.jit(functools.partial(method.generate, config))
  outputs = parallel.to_host(generate(state, latents))
  paths = []
  if jax.process_index() == 0:
    for name, images, ncol in method.sheets(config, outputs):
      png = grid_png(images, ncol)
      paths.append(_write(png, os.path.join(directory, name, f'{tag}.png')))
      if pngs is not None:
        pngs[name] = png
  return paths
