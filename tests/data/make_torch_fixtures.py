"""Regenerate the torch-written fixtures the weights reader is tested on (needs torch; the
project and its tests do not): python tests/data/make_torch_fixtures.py"""
import collections
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def state_dict():
  base = torch.arange(12, dtype=torch.float32)
  return collections.OrderedDict([
      ('conv.weight', torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 7),
      ('bn.running_var', torch.linspace(0.5, 2.0, 3, dtype=torch.float32)),
      ('bn.num_batches_tracked', torch.tensor(5, dtype=torch.int64)),
      ('transposed', base.reshape(3, 4).t()),  # strides (1, 4): a view, not contiguous
      ('offset', base[5:9]),  # shares the storage of 'transposed', at offset 5
      ('double', torch.tensor([1.5, -2.25], dtype=torch.float64)),
  ])


if __name__ == '__main__':
  torch.save(state_dict(), os.path.join(HERE, 'torch_zip.pth'))
  torch.save(state_dict(), os.path.join(HERE, 'torch_legacy.pth'),
             _use_new_zipfile_serialization=False)
