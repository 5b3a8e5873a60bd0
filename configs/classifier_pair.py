"""A classifier that knows both domains of a coupled pair (spec coupled.md §4 #20): SCoGAN's
semantic-loss classifier and the judge of pair agreement, trained on the union of domain a and
domain b exactly as the coupled GANs read them (halves, transform, 2-pixel pad; 32x32).

The variant names the pair: `digits2negative` (the default), `digits2edge`, `mnist2negative`,
`mnist2edge`, `mnist2svhn` (MNIST and SVHN as RGB), each with `_tiny` for tests. The semantic
loss and the judge must be two different networks (the GAN would otherwise be scored by what it
was trained to please): train two, e.g. with different seeds, and pass one as reg.sl_classifier
and the other as eval.classifier.

  python train.py --config configs/classifier_pair.py:digits2negative --workdir runs/cls_neg
  python train.py --config configs/classifier_pair.py:digits2negative --workdir runs/judge_neg \\
      --config.seed=1
  (2,000 steps at batch 64 each)

MNIST from the IDX files: --config.data.name=idx --config.data.path=/work/shared/data/mnist
(with classifier.eval_split=t10k).
"""
from gans import config as config_lib
from gans.data import pairs
from gans.methods import classifier

PAIRS = ('digits2negative', 'digits2edge', 'mnist2negative', 'mnist2edge', 'mnist2svhn')


def get_config(variant=''):
  config_lib.check_variant(variant, ('tiny',) + PAIRS + tuple(f'{p}_tiny' for p in PAIRS))
  name = variant.removesuffix('tiny').removesuffix('_') or PAIRS[0]
  c = classifier.defaults()
  c.classifier.on_pair = True
  pairs.configure(c, name)
  c.model.resolution = 32
  if not name.startswith('digits'):
    c.data.split, c.classifier.eval_split = 'train', 'test'
  c.log_every = 100
  c.sample_every = 500
  c.checkpoint_every = 500
  return config_lib.make_tiny(c) if variant.endswith('tiny') else c
