"""MSG-GAN on Oxford Flowers-102 (TFDS `oxford_flowers102`) at 256x256, the paper's setting.

BMSG-GAN at depth 7 (G 23.0M, D 18.7M parameters), RaHinge, Adam 0.003 betas (0, 0.99), EMA
0.999, batch 16; images resized without keeping the aspect ratio, as the reference does. The
train, validation and test splits together hold 8,189 images: use all of them.
Prepare once: `tfds build oxford_flowers102 --file_format=array_record`.

  python train.py --config configs/msggan_flowers256.py --workdir runs/flowers256
  (100,000 steps at batch 16 = 1.6M images; ~3.9 hours at the reference's 116 img/s on an
  H100, to be replaced by our measured figure)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'oxford_flowers102'
  c.data.split = 'train+validation+test'
  c.model.depth = 7
  c.batch_size = 16
  c.num_steps = 100_000
  c.log_every = 100
  c.sample_every = 2000
  c.checkpoint_every = 2000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
