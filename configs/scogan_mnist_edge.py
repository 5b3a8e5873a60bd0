"""SCoGAN on MNIST digits and their edges (32x32 grey): unshared GANs coupled softly.

The CoGAN task A data (first half of MNIST train, second half as edges, 28 -> 32 by padding);
two independent copies of the 32x32 net on one z, pulled together by the feature regulariser
(weight 10, the first 2 ConvT outputs; spec coupled.md §3.5). Variants: `fr` (the default),
`cc` (latent cycle consistency), `sl_cc`, `cc_fr`, `fr_sl_cc`, each at weight 10, and
`weight_sim` (the weight-similarity baseline). SL reads a classifier of both domains, another
network than the judge of pair agreement:

  python train.py --config configs/classifier_pair.py:mnist2edge --workdir runs/cls_mnist_edge
  python train.py --config configs/scogan_mnist_edge.py:sl_cc --workdir runs/scogan_mnist_edge \
      --config.reg.sl_classifier=runs/cls_mnist_edge
  (not timed: 25,000 steps at batch 128, minutes on one GPU by FLOP count (estimate))

MNIST from the IDX files: --config.data.name=idx --config.data.path=/work/shared/data/mnist.
`tiny` and `<variant>_tiny` run a few steps for tests.
"""
from gans.data import pairs
from gans.methods import coupled

VARIANTS = ('fr', 'cc', 'sl_cc', 'cc_fr', 'fr_sl_cc', 'weight_sim')


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, VARIANTS)
  c = pairs.configure(coupled.defaults('scogan'), 'mnist2edge')
  coupled.couple(c, name or 'fr', 'runs/cls_mnist_edge', tiny)
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 2500
  return coupled.tiny(c) if tiny else c
