"""Prepared TFDS datasets, read with random access through `tfds.data_source` (array_record).
TensorFlow Datasets is imported only here, only for TFDS names."""
import os

import numpy as np

from gans.data import sources
from gans.errors import UserError

_KNOWN_TFDS = ('mnist', 'fashion_mnist', 'svhn_cropped', 'cifar10', 'celeb_a',
               'oxford_flowers102', 'lsun/<scene>', 'cycle_gan/<pair>')


class TfdsSource(sources.DecodingSource):
  """A prepared TFDS split read through `tfds.data_source` (array_record: random access).

  `download=False` always: offline, a download attempt retries for minutes before failing,
  while a missing dataset should be a one-line error at once.
  """

  def __init__(self, name: str, resolution: int, channels: int, split: str = 'train',
               data_dir: str | None = None, image_key: str = 'image', label_key: str = 'label',
               percentage: float = 100.0, center_crop: int = 0):
    self._records = open_tfds(name, split, data_dir)
    if not len(self._records):
      raise UserError(f'TFDS dataset {name!r} split {split!r} is empty')
    first = self._records[0]
    if image_key not in first:
      raise UserError(f'TFDS dataset {name!r} has no feature {image_key!r}; its features are '
                      f'{", ".join(sorted(first))}: set --config.data.image_key')
    self.name, self.resolution, self.channels = f'tfds:{name}', resolution, channels
    self.center_crop = center_crop
    self._image_key, self._label_key = image_key, label_key
    self._length = sources.first_fraction(len(self._records), percentage)
    self._split = split

  def fingerprint(self) -> str:
    """The builder's full name (name/config/version) and the split's files with the records
    read from each: a rebuilt or re-versioned dataset changes it. No file is read."""
    info = self._records.dataset_info
    try:
      files = [(os.path.basename(str(f.filename)), f.skip, f.take, f.examples_in_shard)
               for f in info.splits[self._split].file_instructions]
    except (KeyError, ValueError, AttributeError):  # a split TFDS resolves only when reading
      files = None
    return sources.digest('tfds', info.full_name, str(info.version), self._split, files,
                          len(self._records))

  def labels(self) -> np.ndarray:
    if self._label_key not in self._records[0]:
      raise UserError(f'{self.name} has no feature {self._label_key!r}; set '
                      '--config.data.label_key')
    return np.array([self._records[i][self._label_key] for i in range(len(self))], np.int32)

  def __len__(self) -> int:
    return self._length

  def _image(self, index: int) -> np.ndarray:
    return self._prepare(self._records[index][self._image_key])


def open_tfds(name: str, split: str, data_dir: str | None):
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
