"""Direct numpy computations the tests compare the library against."""
import numpy as np


def np_conv(x, k, dilation=1, padding='SAME'):
  """Direct NHWC/HWIO convolution, stride 1, as a sum of shifted patches."""
  x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
  kh, kw = k.shape[:2]
  eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
  if padding == 'SAME':
    x = np.pad(x, ((0, 0), ((eh - 1) // 2, eh - 1 - (eh - 1) // 2),
                   ((ew - 1) // 2, ew - 1 - (ew - 1) // 2), (0, 0)))
  h, w = x.shape[1] - eh + 1, x.shape[2] - ew + 1
  y = np.zeros((x.shape[0], h, w, k.shape[3]))
  for p in range(kh):
    for q in range(kw):
      patch = x[:, p * dilation:p * dilation + h, q * dilation:q * dilation + w]
      y += np.einsum('bhwc,co->bhwo', patch, k[p, q])
  return y
