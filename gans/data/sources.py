"""Random-access image sources: the ImageSource contract, the one image path, the embedded
digits, and make_source, which picks a source by name (folders: gans.data.folder, MNIST IDX
files: gans.data.idx, TFDS: gans.data.tfds_source).

Every source returns uint8 NHWC arrays already at the model's resolution and channel count,
so the feeding code never sees a decoder. Sources are random access (`source[indices]`)
because the trainer draws its own deterministic per-epoch permutations; there is no iterator
state to checkpoint. Every source also has a `fingerprint()` of its content, which keys the
evaluation's reference-feature cache.

Images go through one path (`prepare_image`): to PIL, scale 16-bit, 32-bit int and float
samples to 8 bits, convert to 'L' or 'RGB' (grey, RGBA and palette files all work; 3 -> 1 is
PIL's ITU-R 601 luma, round(0.299R + 0.587G + 0.114B); 1 -> 3 repeats), optional centre crop,
bilinear resize to R x R (aspect ratio not kept, as in the reference code). TensorFlow
Datasets is imported only for TFDS names, so digits and folders also work where it is not
installed.
"""

import concurrent.futures
import functools
import hashlib
import io
import json
import math
import os
import re

import ml_collections
import numpy as np
from PIL import Image

from gans.errors import UserError


def digest(*parts) -> str:
  """A short hex digest of JSON-able parts: what fingerprints are made of."""
  text = json.dumps(parts, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:20]


def prepare_image(image, resolution: int, channels: int, center_crop: int = 0) -> np.ndarray:
  """Converts a numpy HW/HWC uint8 array, PIL image or encoded bytes to uint8 [R, R, C].

  `center_crop` > 0 first cuts the central `center_crop` square (clamped to the image), the
  usual CelebA preprocessing (140 on its 178x218 faces) so that faces fill 64/128 px frames.
  """
  if isinstance(image, bytes):
    image = Image.open(io.BytesIO(image))
  elif not isinstance(image, Image.Image):
    array = np.asarray(image)
    image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
  image = _eight_bit(image).convert('L' if channels == 1 else 'RGB')
  if center_crop:
    width, height = image.size
    size = min(center_crop, width, height)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
  if image.size != (resolution, resolution):
    image = image.resize((resolution, resolution), Image.BILINEAR)
  return np.asarray(image, np.uint8).reshape(resolution, resolution, channels)


def _eight_bit(image: Image.Image) -> Image.Image:
  """`image` with 8-bit samples: PIL's convert('L'/'RGB') clips 16-bit, 32-bit int and float
  samples to 0..255 rather than scaling them, which whitens a 16-bit greyscale PNG.

  Integer modes ('I;16*', what PIL makes of 16-bit greyscale PNGs, and 'I') are taken as
  16-bit and keep their high byte: that is what PIL itself keeps of 16-bit RGB(A) PNGs, so the
  grey and colour files of one picture agree (round(v / 257) would differ by 1 at times).
  Floats ('F') are taken as [0, 1], the convention of float image arrays.
  """
  if image.mode == 'F':
    return Image.fromarray(np.round(np.clip(np.asarray(image), 0, 1) * 255).astype(np.uint8))
  if image.mode.startswith('I'):
    return Image.fromarray((np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8))
  return image


@functools.cache
def pool() -> concurrent.futures.ThreadPoolExecutor:
  """One shared decode pool, a thread per core: PIL releases the GIL while decoding and
  resizing, and streamed 256x256 data needs every core of a GPU host (docs/performance.md)."""
  return concurrent.futures.ThreadPoolExecutor(min(32, os.cpu_count() or 1), 'gans-decode')


def first_fraction(n: int, percentage: float) -> int:
  """How many leading examples `percentage` selects: ceil(n * p / 100), at least 1."""
  if not 0 < percentage <= 100:
    raise UserError(f'data.percentage must be in (0, 100], got {percentage}')
  return max(1, math.ceil(n * percentage / 100))


class ImageSource:
  """Random-access images: `source[indices]` -> uint8 [len(indices), R, R, C]."""

  name: str
  resolution: int
  channels: int

  def __len__(self) -> int:
    raise NotImplementedError

  def __getitem__(self, indices: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def fingerprint(self) -> str:
    """A digest of what the images are made from, beyond the config that built the source:
    files, their sizes and times, dataset versions. It changes when the content may have."""
    raise NotImplementedError(f'{type(self).__name__} has no fingerprint()')

  def labels(self) -> np.ndarray:
    """int32 [len(self)]: every example's class, for methods that train on labels."""
    raise UserError(f'{self.name} has no labels; the classifier needs a labelled dataset '
                    '(digits, a TFDS dataset with a label feature, or a folder of class folders)')

  def load_all(self, chunk: int = 1024) -> np.ndarray:
    """All images as one array, for datasets small enough to live on the devices.

    Filled chunk by chunk into one preallocated array, so the peak is the result itself.
    """
    out = np.empty((len(self), self.resolution, self.resolution, self.channels), np.uint8)
    for start in range(0, len(self), chunk):
      out[start:start + chunk] = self[np.arange(start, min(start + chunk, len(self)))]
    return out


class DecodingSource(ImageSource):
  """Shared by folders and TFDS: decodes one image per index on the thread pool."""

  center_crop: int

  def _image(self, index: int) -> np.ndarray:
    """Image `index` as uint8 [R, R, C]."""
    raise NotImplementedError

  def _prepare(self, image) -> np.ndarray:
    return prepare_image(image, self.resolution, self.channels, self.center_crop)

  def __getitem__(self, indices: np.ndarray) -> np.ndarray:
    images = list(pool().map(self._image, np.asarray(indices).reshape(-1).tolist()))
    if not images:
      return np.empty((0, self.resolution, self.resolution, self.channels), np.uint8)
    return np.stack(images)


class DigitsSource(ImageSource):
  """scikit-learn's 1,797 8x8 handwritten digits (UCI), held in memory at full size.

  They ship inside scikit-learn, so the default run needs no network and no preparation.
  """

  def __init__(self, resolution: int, channels: int, percentage: float = 100.0,
               center_crop: int = 0, split: str = 'train'):
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    digits = load_digits()
    lo, hi = _slice(split, len(digits.images))
    raw, self._labels = digits.images[lo:hi], digits.target[lo:hi].astype(np.int32)
    n = first_fraction(len(raw), percentage)
    raw, self._labels = raw[:n], self._labels[:n]
    grey = np.round(raw * 255 / 16).astype(np.uint8)  # float 0..16, [N, 8, 8]
    self.name = 'digits' if split == 'train' else f'digits:{split}'
    self.resolution, self.channels = resolution, channels
    self._images = np.stack([prepare_image(x, resolution, channels, center_crop) for x in grey])
    self._images.flags.writeable = False  # load_all hands out this array itself, not a copy

  def labels(self) -> np.ndarray:
    return self._labels

  def fingerprint(self) -> str:
    """A constant: the digits ship inside scikit-learn and never change."""
    return digest('sklearn load_digits')

  def __len__(self) -> int:
    return len(self._images)

  def __getitem__(self, indices: np.ndarray) -> np.ndarray:
    return self._images[np.asarray(indices)]

  def load_all(self, chunk: int = 1024) -> np.ndarray:
    return self._images


def _slice(split: str, n: int) -> tuple[int, int]:
  """[lo, hi) of a TFDS-style split of the one-split digits: 'train', 'train[:80%]',
  'train[1500:]'. They have no official test split; slicing gives held-out data."""
  match = re.fullmatch(r'train(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?', split.replace(' ', ''))
  if not match:
    raise UserError(f'digits split {split!r}: the digits have one split, train; slice it as '
                    "'train[:80%]' or 'train[1500:]'")
  def bound(text, percent, default):
    if not text:
      return default
    value = int(text) * n // 100 if percent else int(text)
    return value + n if value < 0 else min(value, n)
  lo, hi = bound(match[1], match[2], 0), bound(match[3], match[4], n)
  if match[0] != 'train' and hi <= lo:
    raise UserError(f'digits split {split!r} is empty')
  return lo, hi


def make_source(data_config: ml_collections.ConfigDict, resolution: int,
                channels: int) -> ImageSource:
  """The source `data_config.name` names: 'digits', 'folder' or a TFDS name."""
  from gans.data import folder, idx, tfds_source  # pylint: disable=g-import-not-at-top
  if channels not in (1, 3):
    raise UserError(f'channels must be 1 or 3, got {channels}')
  common = dict(resolution=resolution, channels=channels,
                percentage=data_config.get('percentage', 100.0),
                center_crop=data_config.get('center_crop', 0))
  if data_config.name == 'digits':
    return DigitsSource(split=data_config.get('split', 'train'), **common)
  if data_config.name == 'folder':
    return folder.FolderSource(data_config.get('path', ''), **common)
  if data_config.name == 'idx':
    return idx.IdxSource(data_config.get('path', ''), split=data_config.get('split', 'train'),
                         **common)
  return tfds_source.TfdsSource(data_config.name, split=data_config.get('split', 'train'),
                    data_dir=data_config.get('data_dir') or None,
                    image_key=data_config.get('image_key', 'image'),
                    label_key=data_config.get('label_key', 'label'), **common)


class LabelledSource:
  """Images with their classes:
  source[indices] -> {'image': uint8 [n, R, R, C], 'label': int32 [n]}."""

  def __init__(self, images: ImageSource, labels: np.ndarray | None = None):
    """`labels` overrides the images' classes (e.g. attribute vectors), one row per image."""
    self.images, self.name = images, images.name
    self._labels = images.labels() if labels is None else labels

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, indices: np.ndarray) -> dict:
    return {'image': self.images[indices], 'label': self._labels[np.asarray(indices)]}

  def load_all(self) -> dict:
    return {'image': self.images.load_all(), 'label': self._labels}
