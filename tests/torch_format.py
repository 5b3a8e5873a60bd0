"""Write a state dict of numpy arrays in torch.save's zip format, without torch.

The tests use it to make weights files in the published format at full size; that the result
is what torch writes is checked by reading torch-written fixtures with the same reader
(tests/data/torch_*.pth) and was checked once with torch.load itself.
"""
import struct
import zipfile

import numpy as np

_STORAGES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage',
             np.dtype(np.int64): 'LongStorage'}


def _pickle(arrays):
  """Protocol-2 opcodes of OrderedDict(name -> _rebuild_tensor_v2(storage i, 0, shape, strides))."""
  out = bytearray(b'\x80\x02')

  def glob(module, name):
    out.extend(f'c{module}\n{name}\n'.encode())

  def text(s):
    b = s.encode()
    out.extend(b'X' + struct.pack('<I', len(b)) + b)

  def integer(i):
    out.extend(b'J' + struct.pack('<i', i))

  def ints(values):
    out.extend(b'(')
    for v in values:
      integer(v)
    out.extend(b't')

  glob('collections', 'OrderedDict')
  out.extend(b')R(')
  for i, (name, a) in enumerate(arrays.items()):
    text(name)
    glob('torch._utils', '_rebuild_tensor_v2')
    out.extend(b'((')
    text('storage')
    glob('torch', _STORAGES[a.dtype])
    text(str(i))
    text('cpu')
    integer(a.size)
    out.extend(b'tQ')  # the persistent id tuple
    integer(0)
    ints(a.shape)
    ints([s // a.itemsize for s in a.strides])
    out.extend(b'\x89')  # requires_grad=False
    glob('collections', 'OrderedDict')
    out.extend(b')RtR')  # backward hooks, args tuple, rebuild
  out.extend(b'u.')
  return bytes(out)


def save_state_dict(arrays, path, root='archive'):
  arrays = {k: np.array(v, order='C') for k, v in arrays.items()}
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
    z.writestr(f'{root}/data.pkl', _pickle(arrays))
    for i, a in enumerate(arrays.values()):
      z.writestr(f'{root}/data/{i}', a.astype(a.dtype.newbyteorder('<')).tobytes())
    z.writestr(f'{root}/version', '3\n')
