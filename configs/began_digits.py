"""BEGAN on the handwritten digits that ship with scikit-learn (1,797 real 8x8 scans), 16x16.

Needs no network: the CPU-minutes check that the equilibrium works and M falls as the digits
appear. Two resolution levels (16 -> 8), n = 32, N_h = N_z = 32, grey.

  python train.py --config configs/began_digits.py --workdir runs/began_digits
  (measured run time: TBD)

The same model on real MNIST (60,000 28x28 digits from IDX files, resized to 16x16):
  python train.py --config configs/began_digits.py --workdir runs/began_mnist \\
    --config.data.name=idx --config.data.path=/work/shared/data/mnist --config.data.split=train

Variant `tiny` (8x8, n = 8, 20 steps: seconds on a CPU) is for tests and smoke runs:
  python train.py --config configs/began_digits.py:tiny --workdir /tmp/tiny
"""
from gans import config as config_lib
from gans.methods import began


def get_config(variant=''):
  config_lib.check_variant(variant)
  c = began.defaults()
  c.data.name = 'digits'
  c.model.resolution = 16  # the scans are 8x8: more pixels add cost, not detail
  c.model.n = 32
  c.model.h = 32
  c.model.z = 32
  c.model.image_channels = 1
  c.batch_size = 32
  c.num_steps = 3000
  c.optim.g_lr = 2e-4
  c.optim.d_lr = 2e-4
  c.optim.lr_update_step = 1000
  c.log_every = 50
  c.sample_every = 250
  c.checkpoint_every = 500
  c.figures.z_steps = 300
  return config_lib.make_tiny(c) if variant == 'tiny' else c
