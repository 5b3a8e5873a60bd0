"""Random-access image sources: embedded digits, image folders, MNIST IDX files and TFDS.

Every source returns uint8 NHWC arrays already at the model's resolution and channel count,
so the feeding code never sees a decoder. Sources are random access (`source[indices]`)
because the trainer draws its own deterministic per-epoch permutations; there is no iterator
state to checkpoint.

Images go through one path (`prepare_image`): to PIL, scale 16-bit, 32-bit int and float
samples to 8 bits, convert to 'L' or 'RGB' (grey, RGBA and palette files all work; 3 -> 1 is
PIL's ITU-R 601 luma, round(0.299R + 0.587G + 0.114B); 1 -> 3 repeats), optional centre crop,
bilinear resize to R x R (aspect ratio not kept, as in the reference code). TensorFlow
Datasets is imported only for TFDS names, so digits and folders also work where it is not
installed.
"""

import concurrent.futures
import functools
import gzip
import io
import logging
import math
import os
import pathlib
import re
import zlib

from etils import epath
import numpy as np
from PIL import Image

from gans.errors import UserError

_IMAGE_SUFFIXES = frozenset({'.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp'})
_KNOWN_TFDS = ('mnist', 'fashion_mnist', 'svhn_cropped', 'cifar10', 'celeb_a',
               'oxford_flowers102', 'lsun/<scene>', 'cycle_gan/<pair>')
# PIL's bad-file errors: truncated data is OSError, broken PNG chunks SyntaxError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError)
# Unsigned-byte IDX files: 0x0000, type 0x08, then the number of dimensions.
_IDX_MAGIC = {'images': 0x00000803, 'labels': 0x00000801}


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
def _pool() -> concurrent.futures.ThreadPoolExecutor:
  """One shared decode pool, a thread per core: PIL releases the GIL while decoding and
  resizing, and streamed 256x256 data needs every core of a GPU host (docs/performance.md)."""
  return concurrent.futures.ThreadPoolExecutor(min(32, os.cpu_count() or 1), 'gans-decode')


def _first_fraction(n: int, percentage: float) -> int:
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


class _DecodingSource(ImageSource):
  """Shared by folders and TFDS: decodes one image per index on the thread pool."""

  center_crop: int

  def _image(self, index: int) -> np.ndarray:
    """Image `index` as uint8 [R, R, C]."""
    raise NotImplementedError

  def _prepare(self, image) -> np.ndarray:
    return prepare_image(image, self.resolution, self.channels, self.center_crop)

  def __getitem__(self, indices: np.ndarray) -> np.ndarray:
    images = list(_pool().map(self._image, np.asarray(indices).reshape(-1).tolist()))
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
    n = _first_fraction(len(raw), percentage)
    raw, self._labels = raw[:n], self._labels[:n]
    grey = np.round(raw * 255 / 16).astype(np.uint8)  # float 0..16, [N, 8, 8]
    self.name = 'digits' if split == 'train' else f'digits:{split}'
    self.resolution, self.channels = resolution, channels
    self._images = np.stack([prepare_image(x, resolution, channels, center_crop) for x in grey])
    self._images.flags.writeable = False  # load_all hands out this array itself, not a copy

  def labels(self) -> np.ndarray:
    return self._labels

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


class IdxSource(ImageSource):
  """MNIST-format IDX files (`{split}-images-idx3-ubyte[.gz]` and the matching labels), as
  LeCun's page and many mirrors distribute them: real MNIST (or Fashion-MNIST, KMNIST) with no
  TFDS preparation. split is the file prefix: 'train' or 't10k' ('test' is read as 't10k')."""

  def __init__(self, path: str, resolution: int, channels: int, split: str = 'train',
               percentage: float = 100.0, center_crop: int = 0):
    self._path, self._prefix = path, 't10k' if split == 'test' else split
    self._images_file = self._find(f'{self._prefix}-images-idx3-ubyte')
    images = _read_idx(self._images_file, 'images')
    n = _first_fraction(len(images), percentage)
    self.name, self.resolution, self.channels = f'idx:{self._prefix}', resolution, channels
    self._images = np.stack([prepare_image(x, resolution, channels, center_crop)
                             for x in images[:n]])
    self._images.flags.writeable = False
    self._n, self._count = n, len(images)

  def _find(self, stem: str) -> epath.Path:
    root = epath.Path(self._path).expanduser()
    for file in (root / f'{stem}.gz', root / stem):
      if file.exists():
        return file
    raise UserError(f'no {stem}[.gz] in {self._path!r}; data.name=idx needs '
                    '--config.data.path=DIR holding MNIST-format files, and data.split=train|t10k')

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, indices: np.ndarray) -> np.ndarray:
    return self._images[np.asarray(indices)]

  def load_all(self, chunk: int = 1024) -> np.ndarray:
    return self._images

  def labels(self) -> np.ndarray:
    file = self._find(f'{self._prefix}-labels-idx1-ubyte')
    labels = _read_idx(file, 'labels')
    if len(labels) != self._count:
      raise UserError(f'{file} announces {len(labels)} labels for the {self._count} images of '
                      f'{self._images_file}; use the labels file of the same download')
    return labels[:self._n].astype(np.int32)


def _read_idx(file: epath.Path, kind: str) -> np.ndarray:
  """The uint8 array of an IDX `kind` file ('images' or 'labels'), checked against its header.

  The header is the magic number and one big-endian uint32 size per dimension. The byte count
  must match the sizes exactly: a download cut at an image boundary would otherwise load as a
  smaller dataset without a word.
  """
  raw, magic = _gunzipped(file), _IDX_MAGIC[kind]
  header = 4 + 4 * (magic & 0xFF)
  if len(raw) < header:
    raise UserError(f'{file} is truncated: {len(raw)} bytes, shorter than its {header}-byte IDX '
                    'header; download it again')
  found = int.from_bytes(raw[:4], 'big')
  if found != magic:
    raise UserError(f'{file} is not an MNIST {kind} file: it starts with 0x{found:08x}, not '
                    f'0x{magic:08x}; check the files in data.path')
  shape = tuple(int.from_bytes(raw[i:i + 4], 'big') for i in range(4, header, 4))
  size = header + math.prod(shape)
  dims = f' of {shape[1]}x{shape[2]}' if kind == 'images' else ''
  announced = f'{shape[0]} {kind}{dims} ({size} bytes)'
  if not all(shape):
    raise UserError(f'{file} holds no {kind}: its header announces {announced}')
  if len(raw) != size:
    problem = 'is truncated' if len(raw) < size else 'is longer than its header says'
    raise UserError(f'{file} {problem}: its header announces {announced} but it holds '
                    f'{len(raw)}; download it again')
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _gunzipped(file: epath.Path) -> bytes:
  """The file's bytes, decompressed when its name ends in .gz. Damage shows as EOFError (cut
  short), zlib.error (broken deflate data) or BadGzipFile (not gzip, or a CRC mismatch)."""
  data = file.read_bytes()
  if file.suffix != '.gz':
    return data
  try:
    return gzip.decompress(data)
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise UserError(f'{file} is not a complete gzip file ({e}); download it again') from e


_UNREADABLE = 'could not be read', 'check that the folder holds valid image files'
_TOO_LARGE = ('are too large to decode safely',
              'downscale them: PIL refuses such images as possible decompression bombs')


def _problem(path: str) -> tuple[tuple[str, str], str] | None:
  """Why the file cannot be used, as (_UNREADABLE or _TOO_LARGE, what to show of it), or None
  when it decodes completely (`verify()` alone misses truncation).

  PIL's decompression-bomb guard refuses files over 2 * Image.MAX_IMAGE_PIXELS (179 M pixels)
  before decoding; those are real images, kept apart so that the remedy is the right one.
  """
  try:
    with Image.open(path) as image:
      image.load()
    return None
  except Image.DecompressionBombError as e:  # 'Image size (N pixels) exceeds limit of M pixels'
    return _TOO_LARGE, f'{path}: {str(e).split(",")[0]}'
  except _DECODE_ERRORS:
    return _UNREADABLE, path


def _usable(root: pathlib.Path, files: list[str]) -> list[str]:
  """The files that decode. The others are skipped with one warning per kind of problem, or,
  when they are the majority, refused in one line that names each kind."""
  problems = list(_pool().map(_problem, files))
  bad = {}  # (what, remedy) -> what to show of each such file
  for kind, shown in filter(None, problems):
    bad.setdefault(kind, []).append(shown)
  if 2 * sum(map(len, bad.values())) > len(files):
    raise UserError('; '.join(f'{len(shown)} of {len(files)} images in {str(root)!r} {what} '
                              f'(first: {shown[0]}); {remedy}'
                              for (what, remedy), shown in bad.items()))
  for (what, remedy), shown in bad.items():
    logging.getLogger(__name__).warning('skipped %d of %d images that %s (first: %s); %s',
                                        len(shown), len(files), what, shown[0], remedy)
  return [f for f, problem in zip(files, problems) if problem is None]


class FolderSource(_DecodingSource):
  """Image files under a folder, recursively (flat, or one sub-folder per class).

  Every file is decoded once at construction; unreadable ones, and ones too large for PIL to
  decode, are skipped with a warning so one bad download does not stop a long run mid-epoch,
  but a mostly-bad folder is an error.
  `percentage` selects from the sorted file list before that check, so a small fraction of a
  huge folder is cheap to open.
  """

  def __init__(self, path: str, resolution: int, channels: int, percentage: float = 100.0,
               center_crop: int = 0):
    if not path:
      raise UserError("data.name='folder' needs a folder: set --config.data.path=DIR")
    root = pathlib.Path(path).expanduser()
    if not root.is_dir():
      raise UserError(f'image folder {str(root)!r} does not exist; check --config.data.path')
    files = sorted(str(f) for f in root.rglob('*')
                   if f.suffix.lower() in _IMAGE_SUFFIXES and f.is_file())
    if not files:
      raise UserError(f'image folder {str(root)!r} has no images '
                      f'({", ".join(sorted(_IMAGE_SUFFIXES))}); check --config.data.path')
    files = files[:_first_fraction(len(files), percentage)]
    self.name, self.resolution, self.channels = f'folder:{root}', resolution, channels
    self.center_crop = center_crop
    self._files = _usable(root, files)
    self._root = root

  def labels(self) -> np.ndarray:
    """The index of each file's top-level sub-folder, in sorted order of the folder names."""
    classes = [pathlib.Path(f).relative_to(self._root).parts for f in self._files]
    if any(len(parts) < 2 for parts in classes):
      raise UserError(f'{self.name} has images outside class folders; labels need one '
                      'sub-folder per class')
    names = sorted({parts[0] for parts in classes})
    return np.array([names.index(parts[0]) for parts in classes], np.int32)

  def __len__(self) -> int:
    return len(self._files)

  def _image(self, index: int) -> np.ndarray:
    with Image.open(self._files[index]) as image:
      return self._prepare(image)


class TfdsSource(_DecodingSource):
  """A prepared TFDS split read through `tfds.data_source` (array_record: random access).

  `download=False` always: offline, a download attempt retries for minutes before failing,
  while a missing dataset should be a one-line error at once.
  """

  def __init__(self, name: str, resolution: int, channels: int, split: str = 'train',
               data_dir: str | None = None, image_key: str = 'image', label_key: str = 'label',
               percentage: float = 100.0, center_crop: int = 0):
    self._records = _open_tfds(name, split, data_dir)
    if not len(self._records):
      raise UserError(f'TFDS dataset {name!r} split {split!r} is empty')
    first = self._records[0]
    if image_key not in first:
      raise UserError(f'TFDS dataset {name!r} has no feature {image_key!r}; its features are '
                      f'{", ".join(sorted(first))}: set --config.data.image_key')
    self.name, self.resolution, self.channels = f'tfds:{name}', resolution, channels
    self.center_crop = center_crop
    self._image_key, self._label_key = image_key, label_key
    self._length = _first_fraction(len(self._records), percentage)

  def labels(self) -> np.ndarray:
    if self._label_key not in self._records[0]:
      raise UserError(f'{self.name} has no feature {self._label_key!r}; set '
                      '--config.data.label_key')
    return np.array([self._records[i][self._label_key] for i in range(len(self))], np.int32)

  def __len__(self) -> int:
    return self._length

  def _image(self, index: int) -> np.ndarray:
    return self._prepare(self._records[index][self._image_key])


def _open_tfds(name: str, split: str, data_dir: str | None):
  """`tfds.data_source` with its failures turned into one-line UserErrors."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(f'TFDS dataset {name!r} needs tensorflow-datasets: '
                    'pip install tensorflow-datasets (or use data.name=digits|folder)') from e
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise UserError(f'unknown TFDS dataset {name!r}; known image datasets include '
                    f'{", ".join(_KNOWN_TFDS)} (or data.name=digits|folder)') from e
  except (NotImplementedError, KeyError, ValueError, AssertionError) as e:
    unreadable = _unreadable_tfds(tfds, name, data_dir)
    if unreadable:
      raise UserError(unreadable) from e
    if isinstance(e, (ValueError, AssertionError)):  # unknown config, version or split
      raise UserError(f'TFDS cannot open {name!r} split {split!r}: '
                      f'{str(e).strip().splitlines()[0]}') from e
    raise


def _unreadable_tfds(tfds, name: str, data_dir: str | None) -> str | None:
  """Why TFDS cannot read dataset `name` at all (not prepared, or prepared in a format with no
  random access), or None when it could.

  The builder's state decides, not the exception's type: with a data_dir TFDS 4.9 raises
  NotImplementedError for both, but without one `tfds.data_source` asks for array_record and
  then fails with a KeyError (no splits) or a ValueError (the format is already set).
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except (ValueError, AssertionError):  # an unknown config or version, which the caller reports
    return None
  if not builder.is_prepared():
    return (f'TFDS dataset {name!r} is not prepared in {builder.data_dir}; prepare it once with '
            f'internet: `tfds build {name} --file_format=array_record` (needs tensorflow), or '
            'set --config.data.data_dir')
  random_access = tfds.core.file_adapters.FileFormat.with_random_access()
  if not builder.info.available_file_formats() & random_access:
    return (f'TFDS dataset {name!r} in {builder.data_dir} is in '
            f'{builder.info.file_format.value} format, which needs TensorFlow; convert it once: '
            f'`tfds convert_format --dataset_version_dir={builder.data_dir} '
            '--out_file_format=array_record`')
  return None


def make_source(data_config, resolution: int, channels: int) -> ImageSource:
  """The source `data_config.name` names: 'digits', 'folder' or a TFDS name."""
  if channels not in (1, 3):
    raise UserError(f'channels must be 1 or 3, got {channels}')
  common = dict(resolution=resolution, channels=channels,
                percentage=data_config.get('percentage', 100.0),
                center_crop=data_config.get('center_crop', 0))
  if data_config.name == 'digits':
    return DigitsSource(split=data_config.get('split', 'train'), **common)
  if data_config.name == 'folder':
    return FolderSource(data_config.get('path', ''), **common)
  if data_config.name == 'idx':
    return IdxSource(data_config.get('path', ''), split=data_config.get('split', 'train'), **common)
  return TfdsSource(data_config.name, split=data_config.get('split', 'train'),
                    data_dir=data_config.get('data_dir') or None,
                    image_key=data_config.get('image_key', 'image'),
                    label_key=data_config.get('label_key', 'label'), **common)


class LabelledSource:
  """Images with their classes:
  source[indices] -> {'image': uint8 [n, R, R, C], 'label': int32 [n]}."""

  def __init__(self, images: ImageSource):
    self.images, self.name = images, images.name
    self._labels = images.labels()

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, indices: np.ndarray) -> dict:
    return {'image': self.images[indices], 'label': self._labels[np.asarray(indices)]}

  def load_all(self) -> dict:
    return {'image': self.images.load_all(), 'label': self._labels}
