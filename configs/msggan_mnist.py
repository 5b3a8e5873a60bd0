"""MSG-GAN on MNIST (TFDS `mnist`, 60,000 training digits) at 32x32, grey.

Prepare once, with internet and TensorFlow: `tfds build mnist --file_format=array_record`.

  python train.py --config configs/msggan_mnist.py --workdir runs/mnist
  (20,000 steps at batch 64 = 1.3M images at 8.6 GFLOP each, 11 PFLOP in all: minutes on
  one GPU by that count, not yet timed; a 2-core CPU does 15.6 images/s, about 23 hours)

Variant `tiny`: the same data path at 8x8 for a few steps (tests run it under tfds mock_data).
"""
from gans import config as config_lib
from gans.methods import msggan


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = msggan.defaults()
  c.data.name = 'mnist'
  c.data.flip = False
  c.model.depth = 4  # 32x32
  c.model.width = 128
  c.model.latent_size = 128
  c.model.image_channels = 1
  c.batch_size = 64
  c.num_steps = 20_000
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 1000
  return config_lib.make_tiny(c) if variant == 'tiny' else c
