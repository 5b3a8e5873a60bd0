"""SCoGAN on MNIST digits and their edges (32x32 grey): unshared GANs coupled by FR.

The CoGAN task A data (first half of MNIST train, second half as edges, 28 -> 32 by padding);
two independent copies of the 32x32 net on one z, pulled together by the feature regulariser
(weight 10, the first 2 ConvT outputs; spec coupled.md §3.5). Variants: `cc` (latent cycle
consistency instead), `fr_cc` (both), `weight_sim` (the weight-similarity baseline).

  python train.py --config configs/scogan_mnist_edge.py --workdir runs/scogan_mnist_edge \
      --config.data.name=idx --config.data.path=/work/shared/data/mnist
  (not timed: 25,000 steps at batch 128, minutes on one GPU by FLOP count (estimate))

`tiny` and `<variant>_tiny` run a few steps for tests.
"""
from gans.data import pairs
from gans.methods import coupled

COUPLINGS = {'': ('fr',), 'cc': ('cc',), 'fr_cc': ('fr', 'cc'), 'weight_sim': ('weight_sim',)}


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, ('cc', 'fr_cc', 'weight_sim'))
  c = pairs.configure(coupled.defaults('scogan'), 'mnist2edge')
  for reg in COUPLINGS[name]:
    c.reg[reg] = 10.0
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 2500
  return coupled.tiny(c) if tiny else c
