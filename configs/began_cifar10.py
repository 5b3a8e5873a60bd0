"""BEGAN on CIFAR-10 (TFDS `cifar10`, 50,000 training images) at 32x32, for the paper's
unsupervised Inception-score comparison (BEGAN 5.62, recalled).

n = 128, N_h = N_z = 64, three levels (G 1.4M, D 7.1M parameters), gamma 0.5, batch 16,
Adam 8e-5 betas (0.5, 0.999) halved every 100k steps with a floor of 2e-5, random flips.
The paper gives no CIFAR-10 recipe: this is the face recipe at 32x32. Prepare once:
`tfds build cifar10 --file_format=array_record`. Fits on the device (150 MB).

  python train.py --config configs/began_cifar10.py --workdir runs/began_cifar10
  (500,000 steps at batch 16 = 8M images; an estimate, not measured)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import began


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = began.defaults()
  c.data.name = 'cifar10'
  c.data.flip = True
  c.model.resolution = 32
  c.log_every = 100
  c.sample_every = 5000
  c.checkpoint_every = 5000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
