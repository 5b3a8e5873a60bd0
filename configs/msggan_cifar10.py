"""MSG-GAN on CIFAR-10 (TFDS `cifar10`, 50,000 training images) at 32x32: BMSG-GAN at depth 4.

Full reference architecture (width 512, latent 512: G 20.7M, D 17.2M parameters), RaHinge,
Adam 0.003 betas (0, 0.99), EMA 0.999. Prepare once:
`tfds build cifar10 --file_format=array_record`.

  python train.py --config configs/msggan_cifar10.py --workdir runs/cifar10
  (100,000 steps at batch 64 = 6.4M images; at the reference's 952 img/s on an H100 this
  would be ~1.9 hours; our own H100 figure will come from `python -m gans.bench`)

Variant `tiny`: the same data path at 8x8 for a few steps.
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'cifar10'
  c.model.depth = 4
  c.batch_size = 64
  c.num_steps = 100_000
  c.log_every = 100
  c.sample_every = 2000
  c.checkpoint_every = 2000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
