"""A digit classifier on MNIST, 32x32 grey: the evaluation classifier of the MNIST pairs
(classifier pair agreement, eval.classifier). Held-out accuracy on the 10k test set.

  python train.py --config configs/classifier_mnist.py --workdir runs/classifier_mnist \
      --config.data.name=idx --config.data.path=/work/shared/data/mnist
  (TFDS `mnist` by default; not timed: 5,000 steps at batch 64)

Variant `tiny` is for tests.
"""
from gans import config as config_lib
from gans.methods import classifier


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = classifier.defaults()
  c.data.name = 'mnist'
  c.data.split = 'train'
  c.classifier.eval_split = 'test'
  c.model.resolution = 32
  c.num_steps = 5000
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 1000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
