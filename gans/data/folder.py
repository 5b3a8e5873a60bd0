"""Image folders: every image file under a directory (flat, or one sub-folder per class), checked
once at start-up; unreadable or oversized files are skipped with a warning, a mostly-bad folder
is refused."""
import logging
import os
import pathlib

import numpy as np
from PIL import Image

from gans.data import sources
from gans.errors import UserError

_IMAGE_SUFFIXES = frozenset({'.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp'})
# PIL's bad-file errors: truncated data is OSError, broken PNG chunks SyntaxError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError)
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
  problems = list(sources.pool().map(_problem, files))
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


class FolderSource(sources.DecodingSource):
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
    files = files[:sources.first_fraction(len(files), percentage)]
    self.name, self.resolution, self.channels = f'folder:{root}', resolution, channels
    self.center_crop = center_crop
    self._files = _usable(root, files)
    self._root = root
    self._fingerprint = None

  def fingerprint(self) -> str:
    """A digest of the sorted (relative name, size, mtime_ns) of the files used: one stat per
    file (seconds for 200k files, on the decode pool), no reading; computed once, on demand."""
    if self._fingerprint is None:
      stats = sources.pool().map(os.stat, self._files)
      self._fingerprint = sources.digest('folder', [
          (os.path.relpath(f, self._root), s.st_size, s.st_mtime_ns)
          for f, s in zip(self._files, stats)])
    return self._fingerprint

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
