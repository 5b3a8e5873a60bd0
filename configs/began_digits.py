"""BEGAN on the handwritten digits that ship with scikit-learn (1,797 real 8x8 scans), 16x16.

Needs no network: the CPU-minutes check that the equilibrium works and M falls as the digits
appear. Two resolution levels (16 -> 8), n = 16, N_h = N_z = 32, grey, batch 16 (the paper's),
Adam 2e-4 halved every 1,000 steps, 2,000 steps.

gamma = 1.0 and lambda_k = 0.1. With lambda_k = 0.001 and gamma = 0.5, k stayed at 0 from
step ~200 (L(G(z)) > gamma L(x), the failure carpedm20#12 reports on MNIST) and G collapsed
to one blob; gamma 0.3-0.7 collapse too (0.7: 74-98% of the samples judged "1"), the paper's
trend of diversity with gamma. The digits' losses are small (L(x) ~ 0.06-0.1: mostly black
background), so the balance gamma L(x) - L(G(z)) is a few 1e-3 and lambda_k = 0.01 moved k
too slowly: it was still climbing at step 3,000, never at equilibrium. With 0.1, k settles
by step ~1,500 with the balance around 0.

model.tanh = True (spec §9 #4's option; it ends both decoders, G's and D's reconstruction):
the background saturates at -1, k settles higher (~0.32 against ~0.18 with the linear
output) and the samples spread over the classes more evenly. Judged by the digit classifier
(configs/classifier_digits.py, held-out accuracy 0.936) over 2,000 samples with
scripts/class_coverage.py, and by fid_classifier over 10,000 (eval.py --extractor
classifier), seeds 0-4: class-histogram entropy 2.15 / 2.11 / 2.07 / 2.13 / 2.13 (of
ln 10 = 2.30; the real digits 2.30), fid_classifier 282 / 258 / 299 / 260 / 254. With the
linear output: 1.98 / 2.02 / 1.72 / 1.54 / 1.82, fid 326 / 312 / 447 / 466 / 298 (seed 3
misses the 1s); the old config (lambda_k 0.01, 3,000 steps, linear), seeds 0-2: 1.84 / 1.80 /
1.99, fid 545 / 438 / 313; MSG-GAN's default run: 2.16, fid 110. Every class appears, but
the rarest (most often 0) stays at 0.9-2.5% of the samples, where MSG-GAN's is 3.8% and the
real digits' 9%. Coverage (measured with the linear output) peaks between steps 1,000 and
2,000 and then falls as G concentrates on 3-, 8- and 9-like strokes: hence 2,000 steps. Not
better, on seed 0: lambda_k 0.3, 3 convs per level, a wider D (model.d_n = 32, with or
without tanh); and earlier, without tanh: other lrs and halvings, a wider G, n = 32, h = 64
or 16, skip connections, batch 32. G much weaker than D (g_n = 8) leaves k at 0.

  python train.py --config configs/began_digits.py --workdir runs/began_digits
  (2,000 steps: 33-52 s measured on a 2-core CPU at load 3, 1-2 min at load 4-9 from
  other jobs; M 0.20 at step 200 -> 0.065 at 2,000)
  python scripts/class_coverage.py --workdir runs/began_digits \\
    --classifier runs/classifier_digits   (the class histogram of 2,000 samples)

The same model on real MNIST (60,000 28x28 digits from IDX files, resized to 16x16):
  python train.py --config configs/began_digits.py --workdir runs/began_mnist \\
    --config.data.name=idx --config.data.path=/work/shared/data/mnist --config.data.split=train
  (measured before lambda_k = 0.1 and tanh, at 3,000 steps: 5 min 12 s on the shared 2-core
  CPU; M 0.70 -> 0.088, k peaking at 0.23 near step 1,500; varied but blurry 1-, 4/9- and
  6-like strokes)

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
  c.model.tanh = True  # G's and D's outputs: more even classes than linear (docstring)
  c.loss.gamma = 1.0
  c.loss.lambda_k = 0.1
  c.batch_size = 16
  c.num_steps = 2000
  c.optim.g_lr = 2e-4
  c.optim.d_lr = 2e-4
  c.optim.lr_update_step = 1000
  c.log_every = 50
  c.sample_every = 250
  c.checkpoint_every = 500
  c.figures.z_steps = 300
  return config_lib.make_tiny(c) if variant == 'tiny' else c
