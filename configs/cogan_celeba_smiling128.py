"""CoGAN on CelebA faces with and without a smile, 128x128 RGB (the paper's face experiment).

Domain a = CelebA train images with the `Smiling` attribute, domain b = those without (any
attribute: --config.pair.attribute=Eyeglasses, Blond_Hair, Male, ...); central 140 px crop,
mirrored. The face net of spec coupled.md §2.4: G shares its first 5 blocks (to 64x64), D its
last 6; N(0, 0.02) init with zero bias, coupled L2 1e-4, batch 128, 50,000 D+G step pairs (Caffe's
100,000 alternating iterations). Prepare once: `tfds build celeb_a --file_format=array_record`.
Splitting by attribute reads every record once at start-up (minutes).

  python train.py --config configs/cogan_celeba_smiling128.py --workdir runs/cogan_smiling
  (not timed: GPU hours by FLOP count (estimate))

Variant `tiny` (64x64, channels / 32, a few steps) is for tests.
"""
from gans.data import pairs
from gans.methods import coupled


def get_config(variant=''):
  _, tiny = coupled.parse_variant(variant, ())
  c = pairs.configure(coupled.defaults('cogan'), 'celeba/Smiling')
  c.model.arch = 'faces'
  c.model.resolution = 128
  c.model.g_shared = 5
  c.model.d_shared = 6
  c.model.weight_init = 'normal0'
  c.optim.weight_decay = 1e-4
  c.num_steps = 50_000
  c.eval.num_pairs = 0  # no pixel transform; set eval.classifier for classifier agreement
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 5000
  if tiny:  # 64x64: the same nets one level shallower
    c.model.resolution, c.model.g_shared, c.model.d_shared = 64, 4, 5
    return coupled.tiny(c)
  return c
