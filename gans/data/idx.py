"""MNIST-format IDX files (`train-images-idx3-ubyte[.gz]` and the labels beside them), read
whole and checked against their headers: a download cut short is an error, not a smaller set."""
import gzip
import hashlib
import math
import zlib

from etils import epath
import numpy as np

from gans.data import sources
from gans.errors import UserError

# Unsigned-byte IDX files: 0x0000, type 0x08, then the number of dimensions.
_IDX_MAGIC = {'images': 0x00000803, 'labels': 0x00000801}


class IdxSource(sources.ImageSource):
  """MNIST-format IDX files (`{split}-images-idx3-ubyte[.gz]` and the matching labels), as
  LeCun's page and many mirrors distribute them: real MNIST (or Fashion-MNIST, KMNIST) with no
  TFDS preparation. split is the file prefix: 'train' or 't10k' ('test' is read as 't10k')."""

  def __init__(self, path: str, resolution: int, channels: int, split: str = 'train',
               percentage: float = 100.0, center_crop: int = 0):
    self._path, self._prefix = path, 't10k' if split == 'test' else split
    self._images_file = self._find(f'{self._prefix}-images-idx3-ubyte')
    raw = self._images_file.read_bytes()
    self._fingerprint = sources.digest('idx', hashlib.sha256(raw).hexdigest())
    images = _read_idx(self._images_file, 'images', raw)
    n = sources.first_fraction(len(images), percentage)
    self.name, self.resolution, self.channels = f'idx:{self._prefix}', resolution, channels
    self._images = np.stack([sources.prepare_image(x, resolution, channels, center_crop)
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

  def fingerprint(self) -> str:
    """The SHA-256 of the images file's bytes (an IDX set is small: read whole anyway)."""
    return self._fingerprint

  def labels(self) -> np.ndarray:
    file = self._find(f'{self._prefix}-labels-idx1-ubyte')
    labels = _read_idx(file, 'labels')
    if len(labels) != self._count:
      raise UserError(f'{file} announces {len(labels)} labels for the {self._count} images of '
                      f'{self._images_file}; use the labels file of the same download')
    return labels[:self._n].astype(np.int32)


def _read_idx(file: epath.Path, kind: str, data: bytes | None = None) -> np.ndarray:
  """The uint8 array of an IDX `kind` file ('images' or 'labels'), checked against its header.

  The header is the magic number and one big-endian uint32 size per dimension. The byte count
  must match the sizes exactly: a download cut at an image boundary would otherwise load as a
  smaller dataset without a word. `data` is the file's bytes when already read.
  """
  raw, magic = _gunzipped(file, data), _IDX_MAGIC[kind]
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


def _gunzipped(file: epath.Path, data: bytes | None = None) -> bytes:
  """The file's bytes, decompressed when its name ends in .gz. Damage shows as EOFError (cut
  short), zlib.error (broken deflate data) or BadGzipFile (not gzip, or a CRC mismatch)."""
  data = file.read_bytes() if data is None else data
  if file.suffix != '.gz':
    return data
  try:
    return gzip.decompress(data)
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise UserError(f'{file} is not a complete gzip file ({e}); download it again') from e
