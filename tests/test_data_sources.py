"""Image sources: digits, folders, TFDS (mocked, plus one real array_record build)."""

import gzip
import io
import json
import logging
import math
import re

import ml_collections
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from gans.data import ImageSource, make_source
from gans.data.sources import prepare_image
from gans.data.tfds_source import TfdsSource
from gans.errors import UserError


def _config(name, **kw):
  defaults = dict(path='', split='train', data_dir=None, image_key='image', percentage=100.0)
  return ml_collections.ConfigDict({**defaults, 'name': name, **kw})


def _check(images, n, resolution, channels):
  assert images.shape == (n, resolution, resolution, channels)
  assert images.dtype == np.uint8


def _png(path, array, mode=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode).save(path)


_RNG = np.random.default_rng(0)


def _rgb(h=12, w=10):
  return _RNG.integers(0, 256, (h, w, 3), np.uint8)


# --- digits -------------------------------------------------------------------------------


@pytest.mark.parametrize('resolution,channels', [(32, 1), (8, 3)])
def test_digits(resolution, channels):
  source = make_source(_config('digits'), resolution, channels)
  assert isinstance(source, ImageSource)
  assert (len(source), source.name) == (1797, 'digits')
  images = source[np.array([0, 5, 1796])]
  _check(images, 3, resolution, channels)
  assert images.max() > 200 and images.min() == 0
  _check(source.load_all(), 1797, resolution, channels)


def test_digits_at_native_size_are_the_scaled_scans():
  from sklearn.datasets import load_digits
  source = make_source(_config('digits'), 8, 1)
  np.testing.assert_array_equal(
      source[np.arange(4)][..., 0], np.round(load_digits().images[:4] * 255 / 16))


def test_digits_percentage():
  assert len(make_source(_config('digits', percentage=10.0), 8, 1)) == 180


def test_bad_percentage():
  with pytest.raises(UserError, match='percentage'):
    make_source(_config('digits', percentage=0.0), 8, 1)


# --- resize and channels ------------------------------------------------------------------


def test_prepare_matches_pil_bilinear():
  array = _rgb(20, 30)
  expected = np.asarray(Image.fromarray(array).resize((16, 16), Image.BILINEAR))
  np.testing.assert_array_equal(prepare_image(array, 16, 3), expected)


def test_prepare_channel_conversion():
  array = _rgb(6, 6)
  grey = prepare_image(array, 6, 1)[..., 0]
  luma = array.astype(float) @ [0.299, 0.587, 0.114]
  assert np.abs(grey - luma).max() <= 0.5 + 1e-3  # round(), up to PIL's fixed point
  rgb = prepare_image(grey[..., None], 6, 3)
  assert all((rgb[..., c] == grey).all() for c in range(3))


def test_prepare_center_crop_and_inputs():
  array = np.zeros((218, 178, 3), np.uint8)
  array[39:179, 19:159] = 255  # the central 140 x 140 square
  assert (prepare_image(array, 8, 3, center_crop=140) == 255).all()
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, 'PNG')
  np.testing.assert_array_equal(prepare_image(buffer.getvalue(), 8, 3),
                                prepare_image(Image.fromarray(array), 8, 3))


def test_folder_16_bit_png_is_scaled_not_clipped(tmp_path):
  deep = _RNG.integers(0, 65536, (9, 9), np.uint16)
  _png(tmp_path / 'deep.png', deep)  # a 16-bit greyscale PNG: PIL opens it as mode I;16
  assert Image.open(tmp_path / 'deep.png').mode == 'I;16'
  expected = (deep >> 8).astype(np.uint8)  # the high byte, as PIL decodes 16-bit RGB PNGs
  for channels in (1, 3):
    image = make_source(_config('folder', path=str(tmp_path)), 9, channels)[np.array([0])][0]
    np.testing.assert_array_equal(image, np.repeat(expected[..., None], channels, -1))


@pytest.mark.parametrize('array,expected', [
    (np.array([[0, 255, 256, 65535]], np.uint16), [0, 0, 1, 255]),  # mode I;16
    (np.array([[-5, 511, 65535, 70000]], np.int32), [0, 1, 255, 255]),  # mode I, as 16-bit
    (np.array([[-0.5, 0.0, 0.5, 1.0]], np.float32), [0, 0, 128, 255]),  # mode F, as [0, 1]
], ids=['I;16', 'I', 'F'])
def test_prepare_scales_deep_images_to_8_bits(array, expected):
  image = np.repeat(array, 4, axis=0)
  np.testing.assert_array_equal(prepare_image(image, 4, 1)[0, :, 0], expected)


# --- folder -------------------------------------------------------------------------------


def test_folder_flat_and_nested_mixed_modes(tmp_path):
  _png(tmp_path / 'a.png', _rgb())
  _png(tmp_path / 'cats' / 'b.JPG', _rgb())
  _png(tmp_path / 'dogs' / 'grey.png', _RNG.integers(0, 256, (9, 9), np.uint8))
  _png(tmp_path / 'dogs' / 'rgba.png', _RNG.integers(0, 256, (7, 11, 4), np.uint8), 'RGBA')
  (tmp_path / 'notes.txt').write_text('not an image')
  for channels in (1, 3):
    source = make_source(_config('folder', path=str(tmp_path)), 16, channels)
    assert len(source) == 4 and source.name == f'folder:{tmp_path}'
    _check(source[np.array([3, 0, 1, 2])], 4, 16, channels)
    _check(source.load_all(), 4, 16, channels)
  expected = np.asarray(Image.open(tmp_path / 'a.png').resize((16, 16), Image.BILINEAR))
  np.testing.assert_array_equal(source[np.array([0])][0], expected)


def test_folder_missing_and_empty(tmp_path):
  with pytest.raises(UserError, match='does not exist'):
    make_source(_config('folder', path=str(tmp_path / 'nope')), 8, 3)
  (tmp_path / 'readme.txt').write_text('x')
  with pytest.raises(UserError, match='no images'):
    make_source(_config('folder', path=str(tmp_path)), 8, 3)
  with pytest.raises(UserError, match='data.path'):
    make_source(_config('folder'), 8, 3)


def _truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def test_folder_skips_truncated_image(tmp_path, caplog):
  for i in range(4):
    _png(tmp_path / f'{i}.png', _rgb(32, 32))
  _truncate(tmp_path / '2.png')
  with caplog.at_level(logging.WARNING):
    source = make_source(_config('folder', path=str(tmp_path)), 8, 3)
  assert len(source) == 3
  assert 'skipped 1 of 4 images' in caplog.text and '2.png' in caplog.text
  _check(source.load_all(), 3, 8, 3)


def test_folder_mostly_bad_is_an_error(tmp_path):
  for i in range(3):
    _png(tmp_path / f'{i}.png', _rgb(32, 32))
  _truncate(tmp_path / '0.png')
  (tmp_path / '1.png').write_bytes(b'not a png at all')
  with pytest.raises(UserError, match='2 of 3 images'):
    make_source(_config('folder', path=str(tmp_path)), 8, 3)


def test_folder_images_over_pils_pixel_limit(tmp_path, monkeypatch, caplog):
  """PIL refuses images over 2 * MAX_IMAGE_PIXELS as possible decompression bombs (400 MP
  photos in practice); a lowered limit makes 32 x 32 test images count as such."""
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 500)
  for i in range(3):
    _png(tmp_path / f'{i}.png', _rgb(16, 16))
  _png(tmp_path / 'huge.png', _rgb(32, 32))
  with caplog.at_level(logging.WARNING):
    assert len(make_source(_config('folder', path=str(tmp_path)), 8, 3)) == 3
  assert re.search(r'skipped 1 of 4 images that are too large to decode.*huge\.png.*1024 pixels'
                   r'.*downscale', caplog.text)
  assert 'could not be read' not in caplog.text
  for i in range(3):
    _png(tmp_path / f'{i}.png', _rgb(32, 32))
  with pytest.raises(UserError, match=r"^4 of 4 images in .* are too large to decode.*0\.png.*"
                                      r'1024 pixels.*downscale[^\n]*$') as error:
    make_source(_config('folder', path=str(tmp_path)), 8, 3)
  assert 'could not be read' not in str(error.value)


# --- TFDS ---------------------------------------------------------------------------------


@pytest.mark.parametrize('name,channels', [('mnist', 3), ('cifar10', 3), ('cifar10', 1)])
def test_tfds_mocked(name, channels):
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    source = make_source(_config(name), 16, channels)
    assert (len(source), source.name) == (10, f'tfds:{name}')
    _check(source[np.array([9, 0, 4])], 3, 16, channels)
    half = make_source(_config(name, percentage=45.0), 16, channels)
    assert len(half) == math.ceil(10 * 0.45)
    _check(half.load_all(), 5, 16, channels)


def test_tfds_missing_image_key():
  with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(UserError, match="'img'.*image, label"):
      make_source(_config('mnist', image_key='img'), 8, 1)


def test_tfds_unknown_name():
  with pytest.raises(UserError, match="unknown TFDS dataset 'mnsit'.*mnist"):
    make_source(_config('mnsit'), 8, 1)


def test_tfds_unknown_config():
  with pytest.raises(UserError, match="'lsun/bedrom'"):
    make_source(_config('lsun/bedrom'), 8, 3)


def test_tfds_not_prepared_fails_fast_without_download(tmp_path):
  with pytest.raises(UserError, match=r"'mnist' is not prepared in .*tfds build mnist"):
    make_source(_config('mnist', data_dir=str(tmp_path)), 8, 1)


def _default_data_dir(monkeypatch, path):
  """TFDS's default data_dir (TFDS_DATA_DIR or ~/tensorflow_datasets, read at import) -> path."""
  monkeypatch.setattr(tfds.core.constants, 'DATA_DIR', str(path))


def test_tfds_not_prepared_without_data_dir(tmp_path, monkeypatch):
  """With no data_dir, tfds.data_source asks for array_record and TFDS 4.9 then raises a
  KeyError (no splits) rather than the NotImplementedError it raises with one."""
  _default_data_dir(monkeypatch, tmp_path)
  expected = (rf"^TFDS dataset 'cifar10' is not prepared in {re.escape(str(tmp_path))}/cifar10/"
              r'.*`tfds build cifar10 --file_format=array_record`[^\n]*$')
  with pytest.raises(UserError, match=expected):
    make_source(_config('cifar10', data_dir=None), 8, 3)
  with pytest.raises(UserError, match=expected):
    TfdsSource('cifar10', 8, 3)


class GansTestTinyImages(tfds.core.GeneratorBasedBuilder):
  """A real (unmocked) array_record dataset of PNG-encoded images; builds without TF."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {'image': tfds.features.Image(shape=(None, None, 3))}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(range(6)), 'test': self._generate_examples([5.5, 6])}

  def _generate_examples(self, values):
    for i in values:
      buffer = io.BytesIO()
      Image.fromarray(np.full((10, 14, 3), int(40 * i), np.uint8)).save(buffer, 'PNG')
      yield str(i), {'image': buffer.getvalue()}


def test_tfds_real_array_record(tmp_path, monkeypatch):
  GansTestTinyImages(data_dir=str(tmp_path), file_format='array_record').download_and_prepare()
  source = make_source(_config('gans_test_tiny_images', data_dir=str(tmp_path)), 4, 1)
  assert len(source) == 6
  _check(source[np.array([5, 1])], 2, 4, 1)
  images = source.load_all()  # TFDS shuffles record order at build time: compare as a set
  assert sorted(images.reshape(6, -1).max(axis=1)) == [0, 40, 80, 120, 160, 200]
  assert (images.min(axis=(1, 2, 3)) == images.max(axis=(1, 2, 3))).all()
  # Split arithmetic, as configs/msggan_flowers256.py uses ('train+validation+test').
  both = make_source(_config('gans_test_tiny_images', data_dir=str(tmp_path), split='train+test'),
                     4, 1)
  assert len(both) == 8
  assert sorted(both.load_all().reshape(8, -1).max(axis=1))[-2:] == [220, 240]
  half = make_source(_config('gans_test_tiny_images', data_dir=str(tmp_path), split='train[:50%]'),
                     4, 1)
  assert len(half) == 3
  again = make_source(_config('gans_test_tiny_images', data_dir=str(tmp_path)), 4, 1)
  assert source.fingerprint() == again.fingerprint()  # builder version and split files
  assert len({source.fingerprint(), both.fingerprint(), half.fingerprint()}) == 3
  with pytest.raises(UserError, match="split 'trainA'.*train"):
    make_source(_config('gans_test_tiny_images', data_dir=str(tmp_path), split='trainA'), 4, 1)
  # TFDS's default data_dir, read through the array_record request tfds.data_source then adds.
  _default_data_dir(monkeypatch, tmp_path)
  assert len(make_source(_config('gans_test_tiny_images'), 4, 1)) == 6
  # A KeyError from a prepared dataset is a bug somewhere, not "not prepared": kept as it is.
  with monkeypatch.context() as patch:
    patch.setattr(tfds, 'data_source', lambda *a, **k: {}['bug'])
    with pytest.raises(KeyError, match='bug'):
      make_source(_config('gans_test_tiny_images'), 4, 1)
  # The same files declared as tfrecord (what `tfds build` writes by default) need TensorFlow.
  info = next(tmp_path.glob('gans_test_tiny_images/*/dataset_info.json'))
  info.write_text(json.dumps({**json.loads(info.read_text()), 'fileFormat': 'tfrecord'}))
  for data_dir in (str(tmp_path), None):  # NotImplementedError with one, ValueError without
    with pytest.raises(UserError, match='tfrecord.*convert_format'):
      make_source(_config('gans_test_tiny_images', data_dir=data_dir), 4, 1)


def _write_idx(directory, prefix, images, labels):
  import gzip
  n, h, w = images.shape
  header = b'\x00\x00\x08\x03' + b''.join(v.to_bytes(4, 'big') for v in (n, h, w))
  with gzip.open(directory / f'{prefix}-images-idx3-ubyte.gz', 'wb') as f:
    f.write(header + images.tobytes())
  with open(directory / f'{prefix}-labels-idx1-ubyte', 'wb') as f:  # not compressed: both work
    f.write(b'\x00\x00\x08\x01' + n.to_bytes(4, 'big') + labels.tobytes())


def test_idx_files_read_as_mnist(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 28, 28), np.uint8)
  labels = np.array([3, 1, 4, 1, 5], np.uint8)
  _write_idx(tmp_path, 't10k', images, labels)
  source = make_source(_config('idx', path=str(tmp_path), split='test'), 28, 1)
  np.testing.assert_array_equal(source[np.arange(5)][..., 0], images)
  np.testing.assert_array_equal(source.labels(), labels)
  with pytest.raises(UserError, match='no train-images-idx3-ubyte'):
    make_source(_config('idx', path=str(tmp_path)), 28, 1)


def _idx(magic, shape, data=None):
  """An IDX file's bytes: magic, big-endian sizes, then the data (zeros of the header's size)."""
  data = bytes(math.prod(shape)) if data is None else data
  return magic.to_bytes(4, 'big') + b''.join(v.to_bytes(4, 'big') for v in shape) + data


def _flip(data, at):
  """`data` with 8 bytes inverted from `at`: in a gzip file, 10 hits the first deflate block's
  header (zlib.error), the middle of a stored block the data (a CRC mismatch, BadGzipFile)."""
  return data[:at] + bytes(255 - b for b in data[at:at + 8]) + data[at + 8:]


_IMAGES = _idx(0x803, (5, 28, 28), _RNG.bytes(5 * 28 * 28))


@pytest.mark.parametrize('name,data,problem', [
    ('.gz', _RNG.bytes(3000), 'is not a complete gzip file'),
    ('', _RNG.bytes(3000), r'is not an MNIST images file: it starts with 0x\w{8}, not 0x00000803'),
    ('', b'', r'is truncated: 0 bytes, shorter than its 16-byte IDX header'),
    ('.gz', gzip.compress(b''), r'is truncated: 0 bytes, shorter than its 16-byte IDX header'),
    ('.gz', gzip.compress(_IMAGES[:10]), 'is truncated: 10 bytes, shorter than its 16-byte'),
    ('.gz', gzip.compress(_IMAGES)[:-100], 'is not a complete gzip file'),
    ('.gz', _flip(gzip.compress(_IMAGES), 10), 'is not a complete gzip file'),
    ('.gz', _flip(gzip.compress(_IMAGES), 2000), 'is not a complete gzip file'),
    ('.gz', gzip.compress(_idx(0x801, (5, 28, 28))),
     'is not an MNIST images file: it starts with 0x00000801, not 0x00000803'),
    ('.gz', gzip.compress(_idx(0x803, (5, 28, 27), _IMAGES[16:])),
     r'is longer than its header says: its header announces 5 images of 28x27 \(3796 bytes\) '
     r'but it holds 3936'),
    ('.gz', gzip.compress(_IMAGES[:16 + 3 * 28 * 28]),
     r'is truncated: its header announces 5 images of 28x28 \(3936 bytes\) but it holds 2368'),
    ('.gz', gzip.compress(_idx(0x803, (0, 28, 28))),
     'holds no images: its header announces 0 images of 28x28'),
], ids=['not gzip', 'random bytes', 'empty', 'empty gzip', 'cut header', 'cut gzip',
        'corrupt gzip', 'bad crc', 'labels magic', 'wrong dims', 'cut at an image', 'no images'])
def test_idx_bad_images_file(tmp_path, name, data, problem):
  file = tmp_path / f'train-images-idx3-ubyte{name}'
  file.write_bytes(data)
  with pytest.raises(UserError, match=rf'^{re.escape(str(file))} {problem}[^\n]*$'):
    make_source(_config('idx', path=str(tmp_path)), 28, 1)


@pytest.mark.parametrize('data,problem', [
    (_idx(0x803, (5,)), 'is not an MNIST labels file: it starts with 0x00000803, not '
                        '0x00000801'),
    (_idx(0x801, (5,))[:-2], r'is truncated: its header announces 5 labels \(13 bytes\)'),
    (_idx(0x801, (4,)), r'announces 4 labels for the 5 images of .*train-images-idx3-ubyte\.gz'),
], ids=['images magic', 'cut', 'count'])
def test_idx_bad_labels_file(tmp_path, data, problem):
  (tmp_path / 'train-images-idx3-ubyte.gz').write_bytes(gzip.compress(_IMAGES))
  file = tmp_path / 'train-labels-idx1-ubyte'
  file.write_bytes(data)
  source = make_source(_config('idx', path=str(tmp_path)), 28, 1)
  with pytest.raises(UserError, match=rf'^{re.escape(str(file))} {problem}[^\n]*$'):
    source.labels()


def test_fingerprints_follow_the_content(tmp_path):
  """What keys the evaluation's reference cache: a folder's (name, size, mtime) list, an IDX
  file's bytes, a constant for the embedded digits; pairs compose their parts."""
  import os
  from gans.data import pairs
  folder = tmp_path / 'images'
  _png(folder / 'a.png', np.zeros((6, 6), np.uint8))
  _png(folder / 'b' / 'c.png', np.full((6, 6), 9, np.uint8))
  first = make_source(_config('folder', path=str(folder)), 4, 1).fingerprint()
  assert make_source(_config('folder', path=str(folder)), 4, 1).fingerprint() == first
  _png(folder / 'b' / 'c.png', _RNG.integers(0, 256, (6, 6), np.uint8))  # same name, new pixels
  os.utime(folder / 'b' / 'c.png', ns=(1, 1))
  assert make_source(_config('folder', path=str(folder)), 4, 1).fingerprint() != first
  digits = make_source(_config('digits'), 8, 1)
  assert digits.fingerprint() == make_source(_config('digits'), 16, 3).fingerprint()
  _write_idx(tmp_path, 'train', np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
  idx = make_source(_config('idx', path=str(tmp_path)), 28, 1).fingerprint()
  _write_idx(tmp_path, 'train', np.ones((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
  assert make_source(_config('idx', path=str(tmp_path)), 28, 1).fingerprint() != idx
  half = pairs.Subset(digits, np.arange(10), 'half')
  assert half.fingerprint() != pairs.Subset(digits, np.arange(1, 11), 'half').fingerprint()
  assert half.fingerprint() != pairs.Subset(digits, np.arange(10), 'half', 'c2').fingerprint()
  edge = pairs.Transformed(half, 'edge', 2)
  assert edge.fingerprint() != pairs.Transformed(half, 'negative', 2).fingerprint()
  assert edge.fingerprint() != pairs.Transformed(half, 'edge', 0).fingerprint()
