"""Feature extractors: what a metric's features and logits are computed by.

An Extractor is a name (recorded with every number, part of every cache file name), a metric
suffix ('' for the standard Inception numbers, '_classifier' for a project classifier, so
`fid_classifier` can never be mistaken for FID), its parameters, and a pure function
apply(params, images) -> (features [N, D], logits [N, K]) on uint8 NHWC images. The parameters
are passed to apply rather than closed over, so that jit takes them as device arguments instead
of baking 95 MB of Inception weights into the executable as constants.

Every image reaches an extractor as uint8: generated images are quantised with
round((x + 1) * 127.5), clipped (spec section 5), the way a PNG on disk would be; real images
are uint8 already. The Inception extractor then resizes them to 299 and scales them as one of
three named conventions (CONVENTIONS: 'clean', 'pytorch-fid', 'tf'), each a pair of jittable
resize matrices checked against its peer's own code, and records the name in its `info`.
"""
import dataclasses
import functools
import hashlib
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from gans import workdir as workdir_lib
from gans.errors import UserError

INCEPTION_FILE = 'pt_inception-2015-12-05-6726825d.pth'
INCEPTION_SIZE = 299


@dataclasses.dataclass(frozen=True)
class Extractor:
  name: str
  suffix: str
  params: Any
  apply: Callable  # (params, uint8 NHWC) -> (features [N, D], logits [N, K]), jittable
  info: dict  # provenance recorded with every result: weights, digest, convention, resize, ...


def quantize(images):
  """[-1, 1] floats -> uint8 via round((x + 1) * 127.5), clipped (jittable). In float32: a
  bfloat16 generator's output would otherwise be rounded to 8 significant bits on the way."""
  x = jnp.clip(jnp.asarray(images, jnp.float32), -1.0, 1.0)
  return jnp.round((x + 1.0) * 127.5).astype(jnp.uint8)


def _bicubic(x, a=-0.5):
  x = np.abs(x)
  return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@functools.cache
def pil_bicubic_matrix(in_size, out_size):
  """[out, in] weights of PIL's bicubic resampling along one axis (Pillow's Resample.c).

  PIL widens the kernel by the scale factor when shrinking (antialiasing) and normalises each
  row to sum 1; a float ('F' mode) image is resampled with these weights in double precision,
  horizontal pass first. clean-fid's resizer is exactly this, per channel, on float images.
  """
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  w = np.zeros((out_size, in_size))
  for i in range(out_size):
    center = (i + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    k = _bicubic((np.arange(lo, hi) - center + 0.5) / filterscale)
    w[i, lo:hi] = k / k.sum() if k.sum() != 0 else k
  return w


@functools.cache
def torch_bilinear_matrix(in_size, out_size):
  """[out, in] weights of torch's F.interpolate(mode='bilinear', align_corners=False) along one
  axis: no antialiasing (antialias=False, the default), so a shrink samples 2 taps per output.

  The source of output i is (i + 0.5) * in / out - 0.5, clamped at 0, between pixel floor and
  the next one, the last pixel repeated (ATen's upsample_bilinear2d). The scale and position
  are float32 as in ATen's kernel for float images.
  """
  f32 = np.float32
  scale = f32(in_size) / f32(out_size)
  w = np.zeros((out_size, in_size))
  for i in range(out_size):
    src = float(max(scale * (f32(i) + f32(0.5)) - f32(0.5), f32(0.0)))
    lo = min(int(src), in_size - 1)
    w[i, lo] += 1.0 - (src - lo)
    w[i, min(lo + 1, in_size - 1)] += src - lo
  return w


@functools.cache
def tf1_bilinear_matrix(in_size, out_size):
  """[out, in] weights of TF1's tf.compat.v1.image.resize_bilinear (align_corners=False,
  half_pixel_centers=False) along one axis, the ResizeBilinear op of the 2015 Inception graph.

  The legacy grid: output i samples at i * in / out (no half-pixel shift, so the image moves by
  half an output pixel), between pixel floor and the next one, the last pixel repeated; no
  antialiasing. The scale and position are float32 as in TF's kernel.
  """
  scale = np.float32(in_size) / np.float32(out_size)
  w = np.zeros((out_size, in_size))
  for i in range(out_size):
    src = float(np.float32(i) * scale)
    lo = min(int(np.floor(src)), in_size - 1)
    w[i, lo] += 1.0 - (src - lo)
    w[i, min(lo + 1, in_size - 1)] += src - lo
  return w


# Name -> (resize matrix along one axis, clip to [0, 255] after, c of the scaling (x - c) / c):
# the three ways published FIDs feed uint8 images to the same Inception graph (README,
# Evaluation). c = 128 is the TF graph's own Sub 128, Mul 1/128 (TTUR, StyleGAN2-ADA,
# torch-fidelity, clean-fid); c = 127.5 is pytorch-fid's 2 * (x / 255) - 1.
CONVENTIONS = {
    'clean': (pil_bicubic_matrix, True, 128.0),
    'pytorch-fid': (torch_bilinear_matrix, False, 127.5),
    'tf': (tf1_bilinear_matrix, False, 128.0),
}
DEFAULT_CONVENTION = 'clean'
CONVENTION_RESIZE = {
    'clean': 'PIL bicubic (antialiased) to 299 per float channel, clipped to [0, 255] '
             '(clean-fid "clean")',
    'pytorch-fid': "torch F.interpolate(mode='bilinear', align_corners=False), no antialias",
    'tf': 'TF1 resize_bilinear (align_corners=False, half_pixel_centers=False), no antialias',
}


def check_convention(name):
  """`name` if it is a convention, else a one-line UserError listing the choices."""
  if name not in CONVENTIONS:
    raise UserError(f'unknown FID convention {name!r}; choose from {", ".join(CONVENTIONS)}')
  return name


def resize(images, convention=DEFAULT_CONVENTION, size=INCEPTION_SIZE):
  """uint8 NHWC -> float32 [0, 255] at size x size under a convention's resize, grey repeated
  to RGB (jittable).

  As two matrix products (columns, then rows, as PIL does) at precision HIGHEST; every resize
  here is separable and linear, so this is the peer's resize up to float32 round-off (tests
  check each against its peer's own function on fixtures, and 'clean' against PIL itself).
  """
  matrix, clip, _ = CONVENTIONS[check_convention(convention)]
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  h, w = x.shape[1:3]
  hi = jax.lax.Precision.HIGHEST
  if w != size:
    x = jnp.einsum('jw,nhwc->nhjc', jnp.asarray(matrix(w, size), jnp.float32), x, precision=hi)
  if h != size:
    x = jnp.einsum('ih,nhwc->niwc', jnp.asarray(matrix(h, size), jnp.float32), x, precision=hi)
  return jnp.clip(x, 0.0, 255.0) if clip else x


def resize_like_clean_fid(images, size=INCEPTION_SIZE):
  """clean-fid's "clean" resize: PIL bicubic on each float channel, then clipped to [0, 255]."""
  return resize(images, 'clean', size)


def inception_input(images, convention=DEFAULT_CONVENTION, size=INCEPTION_SIZE):
  """uint8 NHWC -> the Inception network's float32 input under a convention (jittable)."""
  c = CONVENTIONS[check_convention(convention)][2]
  return (resize(images, convention, size) - c) / c


def default_inception_path():
  return os.environ.get('GANS_INCEPTION') or os.path.join(
      os.path.expanduser('~'), '.cache', 'gans', INCEPTION_FILE)


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def load_inception_variables(path, sha256_prefix=None):
  """(flax variables, sha256 hex) of pytorch-fid's weights file, with one-line UserErrors.

  sha256_prefix defaults to the published file's '6726825d'; tests pass '' for fake files. A
  machine without internet cannot fetch the file at all, so the missing-file error also names
  the route that needs no download: the features of a classifier the project trains.
  """
  from gans.metrics import torch_weights
  from gans.models import inception
  prefix = inception.SHA256_PREFIX if sha256_prefix is None else sha256_prefix
  if not os.path.isfile(path):
    raise UserError(f'the FID Inception weights are not at {path}; download {INCEPTION_FILE} '
                    f'from {inception.WEIGHTS_URL} and pass --inception=PATH (or put it there, '
                    'or set GANS_INCEPTION=PATH; in a config: eval.inception=PATH); offline, '
                    '--extractor classifier --classifier DIR computes the metrics in the features '
                    'of a classifier trained by this project with configs/classifier_*.py (in a '
                    'config: eval.extractor=classifier eval.classifier=DIR)')
  digest = _sha256(path)
  if not digest.startswith(prefix):
    raise UserError(f'{path} is not the published FID Inception weights: its SHA-256 {digest} '
                    f'does not start with {prefix}; download it again from '
                    f'{inception.WEIGHTS_URL}')
  try:
    return inception.from_state_dict(torch_weights.read_state_dict(path)), digest
  except (ValueError, KeyError, EOFError, OSError) as e:  # FormatError is a ValueError
    raise UserError(f'{path} cannot be read as the FID Inception weights: {e}') from e


def inception(path=None, sha256_prefix=None, convention=DEFAULT_CONVENTION):
  """The FID Inception extractor: quantised uint8 -> the convention's resize to 299 and scaling
  -> pool3 features [N, 2048] and logits [N, 1008] without the output bias (for IS)."""
  from gans.models import inception as model
  check_convention(convention)
  path = path or default_inception_path()
  variables, digest = load_inception_variables(path, sha256_prefix)
  net = model.FIDInceptionV3()

  def apply(params, images):
    return net.apply(params, inception_input(images, convention))

  c = CONVENTIONS[convention][2]
  info = {'extractor': 'inception-2015-12-05 (pytorch-fid weights, Flax port)',
          'weights': os.path.abspath(path), 'weights_sha256': digest, 'convention': convention,
          'resize': CONVENTION_RESIZE[convention], 'scaling': f'(x - {c:g}) / {c:g}',
          'quantisation': 'uint8, round((x + 1) * 127.5)', 'precision': 'HIGHEST'}
  return Extractor('inception', '', jax.tree.map(jnp.asarray, variables), apply, info)


def from_frozen(frozen, name, info=None):
  """An extractor from a frozen project classifier (features(x), logits(x) on [-1, 1] images).

  The classifier sees the same quantised images as Inception does, mapped back to [-1, 1]. A
  NamedTuple with a `params` field (gans.methods.classifier.Frozen) gets its parameters passed
  through jit as arguments. `info` identifies the classifier: it keys the reference cache, so
  it must change when the classifier does.
  """
  def apply(params, images):
    f = frozen._replace(params=params) if hasattr(frozen, '_replace') else frozen
    x = images.astype(jnp.float32) * (2.0 / 255.0) - 1.0
    return f.features(x), f.logits(x)  # one pass: XLA merges the common subgraph

  return Extractor(name, '_classifier', getattr(frozen, 'params', {}), apply,
                   {'extractor': f'project classifier {name}',
                    'quantisation': 'uint8, round((x + 1) * 127.5)', **(info or {})})


def classifier(workdir):
  """The extractor of the classifier trained by the project in `workdir` (latest checkpoint)."""
  from gans.methods import classifier as method
  workdir = str(workdir_lib.absolute(workdir))
  ckpts = epath.Path(workdir) / 'checkpoints'
  names = [d.name for d in ckpts.iterdir()] if ckpts.is_dir() else []
  steps = sorted(int(n) for n in names if n.isdigit())
  frozen = method.load_frozen(workdir)
  tag = re.sub(r'[^A-Za-z0-9.-]+', '-', epath.Path(workdir).name) or 'classifier'
  return from_frozen(frozen, f'classifier-{tag}', {'classifier_workdir': workdir,
                                                   'classifier_step': steps[-1] if steps else None})
