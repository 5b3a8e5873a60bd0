"""SCoGAN on CycleGAN apples and oranges with the perceptual loss (PL), 128x128 RGB.

TFDS `cycle_gan/apple2orange` trainA (apples) and trainB (oranges), resized to 128 (spec
coupled.md §4 #24); two unshared face-style 128 nets (the SCoGAN 128 D keeps its dropouts) on
one z, coupled by VGG19 content and style terms at the only recorded setting, w_c 1e-3,
w_s 1e-11, 20,000 steps (§3.5; batch-mean Grams, §4 #22). VGG19 weights come from a file: make
it once from Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (see gans/models/vgg.py):

  python -m gans.models.vgg vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 vgg19.npz
  python train.py --config configs/scogan_apple2orange.py --workdir runs/scogan_a2o \
      --config.reg.pl_vgg_weights=vgg19.npz
  (not timed: GPU hours by FLOP count (estimate)). Without VGG weights use the project
  classifier's features: --config.reg.pl_net=classifier --config.reg.pl_classifier=WORKDIR.

Variant `tiny` (64x64, channels / 32) uses an untrained small VGG19 stand-in, for tests.
"""
from gans.data import pairs
from gans.methods import coupled


def get_config(variant=''):
  _, tiny = coupled.parse_variant(variant, ())
  c = pairs.configure(coupled.defaults('scogan'), 'cycle_gan/apple2orange')
  c.model.arch = 'faces'
  c.model.resolution = 128
  c.model.d_dropout = True
  c.reg.pl_content = 1e-3
  c.reg.pl_style = 1e-11
  c.reg.pl_vgg_weights = 'vgg19.npz'
  c.num_steps = 20_000
  c.eval.num_pairs = 0
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 5000
  if tiny:  # 64x64: the same nets one level shallower
    c.reg.pl_net, c.model.resolution = 'untrained_vgg19', 64
    return coupled.tiny(c)
  return c
