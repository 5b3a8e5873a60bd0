"""CoGAN on MNIST digits and their negatives (32x32 grey): the CoGAN paper's task B.

Domain a is the first half of MNIST train, domain b the second half through the negative transform,
at 28x28, then padded to 32x32 (spec coupled.md §4 #2); the spec's full 32x32 net, batch 128,
25,000 D+G step pairs, coupled L2 5e-4 (§4 defaults). Prepare MNIST once with TFDS
(`tfds build mnist --file_format=array_record`), or read the IDX files directly:

  python train.py --config configs/cogan_mnist_negative.py --workdir runs/cogan_mnist_negative
  python train.py --config configs/cogan_mnist_negative.py --workdir runs/cogan_mnist_negative \
      --config.data.name=idx --config.data.path=/work/shared/data/mnist
  (not timed: 25,000 steps of 2 x 128 images at about 1.4 GFLOP per G forward are minutes on
  one GPU by FLOP count (estimate), days on a 2-core CPU)

Variants: `unshared` (the 0-shared baseline), `tiny` and `unshared_tiny` (tests).
"""
from gans.data import pairs
from gans.methods import coupled


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, ('unshared',))
  c = pairs.configure(coupled.defaults('cogan'), 'mnist2negative')
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 2500
  if name == 'unshared':
    c.model.g_shared = c.model.d_shared = 0
  return coupled.tiny(c) if tiny else c
