"""Writes tests/data/fid_conventions.npz: Inception inputs computed by the peers themselves.

For each FID convention (gans.metrics.extractors.CONVENTIONS) the peer's own resize to 299 and
input scaling, applied to a few small uint8 images:

  clean        clean-fid: cleanfid.resize.make_resizer('PIL', False, 'bicubic', (299, 299)),
               then InceptionV3W.forward's (x - 128) / 128, in torch;
  pytorch-fid  pytorch-fid: ToTensor's x / 255, F.interpolate(size=(299, 299), mode='bilinear',
               align_corners=False), then 2 * x - 1 (InceptionV3.forward), in torch;
  tf           TTUR / the 2015 graph: tf.compat.v1.image.resize_bilinear (align_corners=False,
               half_pixel_centers=False), then Sub 128, Mul 1/128, in TF.

Grey images are made RGB first (PIL's convert('RGB'), as every peer's loader does). To stay
small, only the rows and columns in `index` (the four at each edge and a fixed random set) of
each 299 x 299 x 3 float32 result are kept. Needs torch, tensorflow and clean-fid, which the
tests do not: run once, commit the file (tests/test_fid_conventions.py reads it).

  python scripts/make_metric_fixtures.py [--out tests/data/fid_conventions.npz]
"""
import argparse
import importlib.metadata
import os

import numpy as np

SIZE = 299


def images():
  """name -> uint8 NHWC: upsampling (square, non-square, grey) and one antialiased shrink."""
  rng = np.random.default_rng(2015)
  u8 = lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8)
  return {'rgb32': u8(4, 32, 32, 3), 'grey28': u8(2, 28, 28, 1), 'rgb16': u8(1, 16, 16, 3),
          'rgb24x40': u8(1, 24, 40, 3), 'grey331x317': u8(1, 331, 317, 1)}


def index():
  rng = np.random.default_rng(12)
  edges = [0, 1, 2, 3, SIZE - 4, SIZE - 3, SIZE - 2, SIZE - 1]
  return np.unique(np.r_[edges, rng.choice(np.arange(4, SIZE - 4), 28, replace=False)])


def clean(batch):
  import torch
  from cleanfid.resize import make_resizer
  fn = make_resizer('PIL', False, 'bicubic', (SIZE, SIZE))
  x = torch.from_numpy(np.stack([fn(img) for img in batch]))
  return ((x - 128) / 128).numpy()  # cleanfid.inception_torchscript.InceptionV3W.forward


def pytorch_fid(batch):
  import torch
  import torch.nn.functional as F
  x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255  # ToTensor
  x = F.interpolate(x, size=(SIZE, SIZE), mode='bilinear', align_corners=False)
  return (2 * x - 1).permute(0, 2, 3, 1).numpy()  # pytorch_fid.inception.InceptionV3.forward


def tf(batch):
  import tensorflow as tf_
  x = tf_.compat.v1.image.resize_bilinear(tf_.cast(batch, tf_.float32), [SIZE, SIZE],
                                          align_corners=False, half_pixel_centers=False)
  return tf_.multiply(tf_.subtract(x, 128.0), 1.0 / 128).numpy()


def version(package):
  for name in (package, package.replace('-cpu', '')):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return 'unknown'


PEERS = {'clean': clean, 'pytorch-fid': pytorch_fid, 'tf': tf}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default=os.path.normpath(os.path.join(
      os.path.dirname(__file__), '..', 'tests', 'data', 'fid_conventions.npz')))
  args = parser.parse_args()
  idx = index()
  out = {'index': idx}
  for name, batch in images().items():
    out[f'{name}__images'] = batch
    rgb = np.repeat(batch, 3, axis=-1) if batch.shape[-1] == 1 else batch
    for convention, peer in PEERS.items():
      y = np.asarray(peer(rgb), np.float32)
      assert y.shape == (len(batch), SIZE, SIZE, 3), y.shape
      out[f'{name}__{convention}'] = y[:, idx][:, :, idx]
  packages = ('numpy', 'Pillow', 'torch', 'tensorflow-cpu', 'clean-fid')
  out['versions'] = np.array([f'{p}=={version(p)}' for p in packages])
  np.savez_compressed(args.out, **out)
  print(f'{args.out}: {os.path.getsize(args.out)} bytes; {", ".join(out["versions"])}')


if __name__ == '__main__':
  main()
