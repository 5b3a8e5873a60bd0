"""Read a PyTorch state-dict file (`torch.save`) into numpy arrays, without torch.

pytorch-fid publishes the FID Inception weights as a .pth file. Reading it here keeps torch out
of the runtime (and out of TPU VMs) and needs no converted copy with a checksum of its own: the
published file itself is what gets verified. Both formats torch.save has written are read:
the zip archive (torch >= 1.6: `<root>/data.pkl` plus one raw file per storage) and the older
legacy stream (magic number, protocol, system info, the pickle, the storage keys, then each
storage as an int64 element count and its raw bytes). The unpickler resolves only the handful of
globals a state dict of tensors needs, so a malicious pickle cannot run code.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class FormatError(ValueError):
  """The file is not a torch.save state dict this reader understands."""


def _rebuild_tensor(storage, offset, size, stride, *unused):
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[offset])
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * itemsize for s in stride])
  return np.array(view)  # own, contiguous memory


def _rebuild_parameter(data, *unused):
  return data


class _Storage:
  """Marker for torch.<Type>Storage classes: carries the numpy dtype."""

  def __init__(self, name):
    self.dtype = np.dtype(_DTYPES[name])


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, load_storage, rebuild=True):
    super().__init__(file)
    self._load_storage = load_storage
    self._rebuild = rebuild

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
      return _rebuild_tensor if self._rebuild else (lambda *args: None)
    if (module, name) == ('torch._utils', '_rebuild_parameter'):
      return _rebuild_parameter
    if module == 'torch' and name in _DTYPES:
      return _Storage(name)
    raise FormatError(f'unsupported object {module}.{name} in the weights file')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise FormatError(f'unsupported persistent id {pid!r}')
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _Storage):
      raise FormatError(f'unsupported storage type {storage_type!r}')
    return self._load_storage(key, storage_type.dtype)


def _read_zip(path):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pkl = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
    if not pkl:
      raise FormatError('zip archive without data.pkl')
    root = pkl[0][:-len('data.pkl')]
    cache = {}

    def load(key, dtype):
      if key not in cache:
        cache[key] = np.frombuffer(archive.read(f'{root}data/{key}'), dtype.newbyteorder('<'))
      return cache[key]

    return _Unpickler(io.BytesIO(archive.read(pkl[0])), load).load()


def _read_legacy(path):
  """Two passes over the pickle: the storages' bytes follow it, so the first pass only learns
  which storages exist (and their dtypes), the second rebuilds the tensors from them."""
  with open(path, 'rb') as f:
    if pickle.load(f) != _LEGACY_MAGIC:
      raise FormatError('not a torch.save file (bad magic number)')
    pickle.load(f)  # protocol version
    if not pickle.load(f).get('little_endian', True):
      raise FormatError('big-endian weights files are not supported')
    start = f.tell()
    dtypes = {}

    def learn(key, dtype):
      dtypes[key] = dtype
      return None  # pass 1 builds no tensors

    _Unpickler(f, learn, rebuild=False).load()
    storages = {}
    for key in pickle.load(f):
      count = int(np.frombuffer(f.read(8), '<i8')[0])
      dtype = dtypes[key].newbyteorder('<')
      storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    f.seek(start)
    return _Unpickler(f, lambda key, dtype: storages[key]).load()


def read_state_dict(path):
  """{name: numpy array} from a torch.save'd state dict (zip or legacy format)."""
  try:
    result = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
  except (pickle.UnpicklingError, EOFError, KeyError, zipfile.BadZipFile) as e:
    raise FormatError(f'not a readable torch.save file ({type(e).__name__}: {e})') from e
  if not isinstance(result, dict):
    raise FormatError(f'expected a state dict, found {type(result).__name__}')
  return dict(result)
