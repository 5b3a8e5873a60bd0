"""Feature extractors: what a metric's features and logits are computed by.

An Extractor is a name (recorded with every number, part of every cache file name), a metric
suffix ('' for the standard Inception numbers, '_classifier' for a project classifier, so
`fid_classifier` can never be mistaken for FID), its parameters, and a pure function
apply(params, images) -> (features [N, D], logits [N, K]) on uint8 NHWC images. The parameters
are passed to apply rather than closed over, so that jit takes them as device arguments instead
of baking 95 MB of Inception weights into the executable as constants.

Every image reaches an extractor as uint8: generated images are quantised with
round((x + 1) * 127.5), clipped (spec section 5), the way a PNG on disk would be; real images
are uint8 already.
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
  info: dict  # provenance recorded with every result: weights file, digest, resize, ...


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


def resize_like_clean_fid(images, size=INCEPTION_SIZE):
  """uint8 NHWC -> float32 [0, 255] at size x size, grey repeated to RGB (jittable).

  clean-fid's "clean" resize: PIL bicubic on each float channel, then clipped to [0, 255]. As
  two matrix products (rows, then columns, as PIL) at precision HIGHEST; tests check it against
  PIL itself.
  """
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  h, w = x.shape[1:3]
  hi = jax.lax.Precision.HIGHEST
  if w != size:
    x = jnp.einsum('jw,nhwc->nhjc', jnp.asarray(pil_bicubic_matrix(w, size), jnp.float32), x,
                   precision=hi)
  if h != size:
    x = jnp.einsum('ih,nhwc->niwc', jnp.asarray(pil_bicubic_matrix(h, size), jnp.float32), x,
                   precision=hi)
  return jnp.clip(x, 0.0, 255.0)


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


def inception(path=None, sha256_prefix=None):
  """The FID Inception extractor: quantised uint8 -> clean-fid resize to 299 -> [-1, 1] ->
  pool3 features [N, 2048] and logits [N, 1008] without the output bias (for IS)."""
  from gans.models import inception as model
  path = path or default_inception_path()
  variables, digest = load_inception_variables(path, sha256_prefix)
  net = model.FIDInceptionV3()

  def apply(params, images):
    x = resize_like_clean_fid(images) / 127.5 - 1.0  # pytorch-fid's 2 * (x / 255) - 1
    return net.apply(params, x)

  info = {'extractor': 'inception-2015-12-05 (pytorch-fid weights, Flax port)',
          'weights': os.path.abspath(path), 'weights_sha256': digest,
          'resize': 'PIL bicubic to 299 per float channel (clean-fid "clean")',
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
