"""MSG-GAN on LSUN bedrooms (TFDS `lsun/bedroom`, 3M images) at 128x128, the paper's setting.

BMSG-GAN at depth 6, RaHinge, Adam 0.003 betas (0, 0.99), EMA 0.999, batch 32; streamed.
Prepare once: `tfds build lsun/bedroom --file_format=array_record` (about 43 GB).

  python train.py --config configs/msggan_lsun_bedroom128.py --workdir runs/bedroom128
  (300,000 steps at batch 32 = 9.6M images; ~11.6 hours at the reference's 230 img/s on an
  H100, to be replaced by our measured figure)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'lsun/bedroom'
  c.model.depth = 6
  c.batch_size = 32
  c.num_steps = 300_000
  c.log_every = 100
  c.sample_every = 2000
  c.checkpoint_every = 2000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
