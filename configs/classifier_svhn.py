"""A digit classifier on SVHN (TFDS `svhn_cropped`), 32x32 RGB: SL's classifier for
scogan_mnist_svhn and the judge of SVHN pruning. Held-out accuracy on the test split.

  python train.py --config configs/classifier_svhn.py --workdir runs/classifier_svhn
  (not timed; 10,000 steps at batch 64)

It is trained on SVHN only (the pruning judge). SCoGAN's semantic loss wants a classifier that
knows both domains (spec §4 #20): configs/classifier_pair.py:mnist2svhn trains on their union.
Variant `tiny` is for tests.
"""
from gans import config as config_lib
from gans.methods import classifier


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = classifier.defaults()
  c.data.name = 'svhn_cropped'
  c.data.split = 'train'
  c.classifier.eval_split = 'test'
  c.model.resolution = 32
  c.model.image_channels = 3
  c.num_steps = 10_000
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 2000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
