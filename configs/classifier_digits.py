"""A digit classifier on the embedded scikit-learn digits, 16x16 grey: the judge that SCoGAN's
semantic loss, pair agreement and the classifier-feature metrics load.

Trains on the first 80% of the 1,797 digits and reports the accuracy on the other 20%
(`eval_accuracy` in metrics.jsonl, at every checkpoint). Needs no network.

  python train.py --config configs/classifier_digits.py --workdir runs/classifier_digits
  (2,000 steps at batch 64)

Variant `tiny` (width 8, 20 steps) is for tests:
  python train.py --config configs/classifier_digits.py:tiny --workdir /tmp/tiny_classifier
"""
from gans import config as config_lib
from gans.methods import classifier


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = classifier.defaults()
  c.log_every = 100
  c.sample_every = 500
  c.checkpoint_every = 500
  return config_lib.make_tiny(c) if variant == 'tiny' else c
