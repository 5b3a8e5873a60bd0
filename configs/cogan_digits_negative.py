"""CoGAN on the embedded digits and their negatives (32x32 grey): the default coupled job.

The 1,797 scikit-learn digits are split into two disjoint halves; the first half is domain a,
the second half, negated, domain b (the CoGAN paper's task B on the embedded digits). The
spec's 32x32 net with G's channel counts divided by 8 and batch 32 per domain
(coupled.cpu_size), so a 2-core CPU trains it in minutes: G shares its first 4 blocks, D its
last 3. Needs no network.

  python train.py --config configs/cogan_digits_negative.py --workdir runs/cogan_neg
  python train.py --config configs/cogan_digits_negative.py:unshared --workdir runs/unshared_neg
  (2,000 steps at batch 32 per domain: 5 min 38 s (shared) and 5 min 7 s (unshared) alone on
  a 2-core CPU, about 200 images/s. Final pixel agreement 0.960 shared vs 0.747 unshared;
  classifier pair agreement with classifier_digits 0.822 (chance 0.262) vs 0.297 (chance
  0.309). Both are logged at every checkpoint; add
  --config.eval.classifier=WORKDIR of a trained configs/classifier_digits.py for the second.)

Variants: `unshared` is the 0-shared baseline (two independent GANs on the same z); `tiny`
and `unshared_tiny` run a few steps for tests.
"""
from gans.methods import coupled


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, ('unshared',))
  c = coupled.cpu_size(coupled.defaults('cogan'))
  if name == 'unshared':
    c.model.g_shared = c.model.d_shared = 0
  return coupled.tiny(c) if tiny else c
