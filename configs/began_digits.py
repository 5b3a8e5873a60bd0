"""BEGAN on the handwritten digits that ship with scikit-learn (1,797 real 8x8 scans), 16x16.

Needs no network: the CPU-minutes check that the equilibrium works and M falls as the digits
appear. Two resolution levels (16 -> 8), n = 16, N_h = N_z = 32, grey, batch 16 (the paper's),
Adam 2e-4 halved every 1,000 steps. A run this short needs a faster controller and a higher
gamma than the faces: with lambda_k = 0.001 and gamma = 0.5, k stayed at 0 from step ~200
(L(G(z)) > gamma L(x), the failure carpedm20#12 reports on MNIST) and G collapsed to one
blob. With lambda_k = 0.01, gamma 0.3 and 0.5 still collapsed (k ~ 0), gamma 0.7 gave
varied thin "1"-like strokes (k 0.048 at the end), and gamma 1.0 (this config) gives
recognisable, varied 1, 2, 3, 7 and 9 shapes, k rising to 0.13 (the paper's trend: higher
gamma, more diversity).

  python train.py --config configs/began_digits.py --workdir runs/began_digits
  (3,000 steps: 5 min 0 s measured on a 2-core CPU shared with other jobs, ~200 images/s;
  3 min 16 s for the same steps at gamma 0.7 under lighter load. M falls from 0.60 at step
  50 to 0.046 at step 3,000)

The same model on real MNIST (60,000 28x28 digits from IDX files, resized to 16x16):
  python train.py --config configs/began_digits.py --workdir runs/began_mnist \\
    --config.data.name=idx --config.data.path=/work/shared/data/mnist --config.data.split=train
  (3,000 steps: 5 min 12 s measured on the shared 2-core CPU; M 0.70 -> 0.088, k peaking at
  0.23 near step 1,500; varied but blurry 1-, 4/9- and 6-like strokes)

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
  c.model.n = 16
  c.model.h = 32
  c.model.z = 32
  c.model.image_channels = 1
  c.loss.gamma = 1.0
  c.loss.lambda_k = 0.01
  c.batch_size = 16
  c.num_steps = 3000
  c.optim.g_lr = 2e-4
  c.optim.d_lr = 2e-4
  c.optim.lr_update_step = 1000
  c.log_every = 50
  c.sample_every = 250
  c.checkpoint_every = 500
  c.figures.z_steps = 300
  return config_lib.make_tiny(c) if variant == 'tiny' else c
