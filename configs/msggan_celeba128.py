"""MSG-GAN on CelebA (TFDS `celeb_a`, 162,770 aligned faces) at 128x128: BMSG-GAN at depth 6.

Faces are centre-cropped to 140x140 before resizing (the usual CelebA crop), then flipped at
random. Full reference architecture, RaHinge, Adam 0.003 betas (0, 0.99), batch 32.
Prepare once: `tfds build celeb_a --file_format=array_record` (needs the manual download TFDS
describes). The 128x128 set does not fit the on-device budget, so it streams.

  python train.py --config configs/msggan_celeba128.py --workdir runs/celeba128
  (150,000 steps at batch 32 = 4.8M images; ~5.8 hours at the reference's 230 img/s on an
  H100, to be replaced by our measured figure)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'celeb_a'
  c.data.center_crop = 140
  c.model.depth = 6
  c.batch_size = 32
  c.num_steps = 150_000
  c.log_every = 100
  c.sample_every = 2000
  c.checkpoint_every = 2000
  c.data.on_device_max_mb = 1024
  return config_lib.make_tiny(c) if variant == 'tiny' else c
