"""SCoGAN on the embedded digits and their negatives (32x32 grey): the CPU-scale SCoGAN study.

The pair, nets and schedule of configs/cogan_digits_negative.py (G channels / 8, batch 32 per
domain, 2,000 steps) with nothing shared: the two generators are pulled together only by the
soft couplings, each at the SCoGAN code's weight 10. Variants: `fr` (the default), `sl_cc`,
`cc_fr` and `fr_sl_cc`, each with `_tiny` for tests (an untrained classifier stand-in).

SL compares the two domains' class probabilities under a frozen classifier that knows both
domains (spec coupled.md §4 #20), and pair agreement is judged by another one (a network that
judges what it was trained to please would be circular; validation refuses the same workdir):

  python train.py --config configs/classifier_pair.py:digits2negative --workdir runs/cls_neg
  python train.py --config configs/classifier_pair.py:digits2negative --workdir runs/judge_neg \\
      --config.seed=1
  python train.py --config configs/scogan_digits_negative.py:sl_cc --workdir runs/scogan_sl_cc \\
      --config.reg.sl_classifier=runs/cls_neg --config.eval.classifier=runs/judge_neg

`python scripts/reproduce.py --paper scogan --scale cpu` runs all of it with 3 seeds, beside
CoGAN (shared) and the unshared baseline, and writes the table into docs/results.md.
"""
from gans.methods import coupled

VARIANTS = ('fr', 'sl_cc', 'cc_fr', 'fr_sl_cc')


def get_config(variant=''):
  name, tiny = coupled.parse_variant(variant, VARIANTS)
  c = coupled.cpu_size(coupled.defaults('scogan'))
  coupled.couple(c, name or 'fr', 'runs/cls_neg', tiny)
  return coupled.tiny(c) if tiny else c
