"""BEGAN on CelebA (TFDS `celeb_a`) at 128x128: the paper's largest model.

n = 128, N_h = N_z = 64, five levels (encoder widths n .. 5n; G 2.0M, D 23.2M parameters in
carpedm20's layer list; the paper quotes 17.3M for its own, unverified), gamma 0.5, batch 16,
Adam 8e-5 betas (0.5, 0.999) halved every 100k steps with a floor of 2e-5, 500k steps.
Faces: the central 128x128 crop, no resize. Prepare once:
`tfds build celeb_a --file_format=array_record`. Streams from disk (too big for the device).

  python train.py --config configs/began_celeba128.py --workdir runs/began_celeba128
  (500,000 steps at batch 16 = 8M images; an estimate, not measured: the paper trained its
  128x128 model for about 2.5 days on 4 P100s)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import began


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = began.defaults()
  c.data.name = 'celeb_a'
  c.data.center_crop = 128
  c.model.resolution = 128
  c.log_every = 100
  c.sample_every = 5000
  c.checkpoint_every = 5000
  c.data.on_device_max_mb = 1024
  return config_lib.make_tiny(c) if variant == 'tiny' else c
