"""SCoGAN on MNIST and SVHN (32x32 RGB): two unshared GANs on one z, softly coupled.

Variants pick the coupling pairs found in the SCoGAN repository's sample folders (spec
coupled.md §3.2), each regulariser at its code-default weight 10: `fr_sl` (the default), `sl_cc`
and `cc_fr`. SL needs a frozen classifier that knows both domains (§4 #20); point
reg.sl_classifier at its workdir. Pruned SVHN: --config.pair.prune_classifier=WORKDIR keeps the
SVHN images that classifier gives max softmax >= pair.prune_min_confidence (0.4).

  python train.py --config configs/classifier_pair.py:mnist2svhn --workdir runs/cls_mnist_svhn
  python train.py --config configs/scogan_mnist_svhn.py:fr_sl --workdir runs/scogan_fr_sl \
      --config.reg.sl_classifier=runs/cls_mnist_svhn
  (not timed: 25,000 steps, batch 128 per domain, two full 32x32 nets: minutes to an hour on one
  GPU by FLOP count (estimate); needs TFDS mnist and svhn_cropped prepared)

The `_tiny` variants (`tiny` = `fr_sl_tiny`) use an untrained classifier stand-in, for tests.
"""
from gans.data import pairs
from gans.methods import coupled

VARIANTS = ('fr_sl', 'sl_cc', 'cc_fr')


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, VARIANTS)
  c = pairs.configure(coupled.defaults('scogan'), 'mnist2svhn')
  coupled.couple(c, name or 'fr_sl', 'runs/cls_mnist_svhn', tiny)
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 2500
  return coupled.tiny(c) if tiny else c
