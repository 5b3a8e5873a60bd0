"""MSG-GAN on the handwritten digits that ship with scikit-learn (1,797 real 8x8 scans), 32x32.

The default job, and what `python train.py` runs. Needs no network.

  python train.py --config configs/msggan_digits.py --workdir runs/digits
  (about 6 minutes on a 2-core CPU for 3,000 steps; recognisable digits by step ~1,500)

Variant `tiny` (depth 2, width 16, 20 steps: a few seconds on a CPU) is for tests and smoke runs:
  python train.py --config configs/msggan_digits.py:tiny --workdir /tmp/tiny
"""
from gans import config as config_lib


def get_config(variant=''):
  c = config_lib.msggan_defaults()
  c.data.name = 'digits'
  c.data.flip = False  # digits are not mirror-symmetric
  c.model.depth = 4  # 32x32
  c.model.width = 64
  c.model.latent_size = 64
  c.model.image_channels = 1
  c.batch_size = 32
  c.num_steps = 3000
  c.steps_per_dispatch = 10
  c.log_every = 50
  c.sample_every = 500
  c.checkpoint_every = 500
  if variant == 'tiny':
    c.model.depth = 2
    c.model.width = 16
    c.model.latent_size = 16
    c.batch_size = 8
    c.num_steps = 20
    c.steps_per_dispatch = 5
    c.log_every = c.sample_every = c.checkpoint_every = 10
    c.num_samples = 4
  elif variant:
    raise ValueError(f'unknown variant {variant!r}; this config has: tiny')
  return c
