"""BEGAN on CelebA (TFDS `celeb_a`, 162,770 aligned faces) at 64x64: carpedm20's recipe.

n = 128, N_h = N_z = 64 (G 1.7M, D 13.4M parameters), gamma 0.5, batch 16, Adam 8e-5 betas
(0.5, 0.999) for both, halved every 100k steps with a floor of 2e-5, 500k steps; z_D and z_G
drawn separately (the paper; --config.began.shared_z=True for carpedm20's single z).
Faces: the central 128x128 crop of the 178x218 image (carpedm20 crops 128x128 at top 50,
left 25: ours sits 5 px higher), then an antialiased (PIL bilinear) resize instead of
carpedm20's nearest-neighbour one (spec §9 decision 10). Prepare once:
`tfds build celeb_a --file_format=array_record` (needs the manual download TFDS describes).

  python train.py --config configs/began_celeba64.py --workdir runs/began_celeba64
  (500,000 steps at batch 16 = 8M images; an estimate, not measured: the paper's 64x64
  models took "a few hours on a single GPU")

Variants: `fast` is the n = 64 model (about 4x fewer FLOPs) the spec asks for beside the
n = 128 one; `tiny` is the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import began


def get_config(variant=''):
  config_lib.check_variant(variant, ('tiny', 'fast'))
  c = began.defaults()
  c.data.name = 'celeb_a'
  c.data.center_crop = 128
  c.model.resolution = 64
  if variant == 'fast':
    c.model.n = 64
  c.log_every = 100
  c.sample_every = 5000
  c.checkpoint_every = 5000
  c.data.on_device_max_mb = 1024
  return config_lib.make_tiny(c) if variant == 'tiny' else c
