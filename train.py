"""Train a GAN: python train.py --config configs/<name>.py[:variant] --workdir DIR [--config.x=y].

With no arguments it trains MSG-GAN on the embedded handwritten digits into ./runs/default.
Running the same command again resumes from the latest checkpoint in the workdir.
One run per workdir: a second one started there is refused while the first is alive.
"""
import os
import sys

from absl import flags
from ml_collections import config_flags

from gans import cli

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, 'configs', 'msggan_digits.py')
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with :variant (e.g. configs/msggan_mnist.py:tiny); '
    'default: configs/msggan_digits.py.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', os.path.join('runs', 'default'),
                               'Directory for checkpoints, metrics, samples (a path or a URL).')
_FRESH = flags.DEFINE_bool('fresh', False, 'Start over at step 0 in a workdir whose run saved '
                           'checkpoints that are all gone (its metrics are erased).')


def main(argv):
  del argv
  from gans import distributed, trainer
  distributed.initialize()
  cli.enable_compilation_cache()
  print(f'training {_CONFIG.value.method} into {_WORKDIR.value}', file=sys.stderr)
  trainer.train(_CONFIG.value, _WORKDIR.value, fresh=_FRESH.value)


if __name__ == '__main__':
  sys.exit(cli.run(main, _CONFIG, DEFAULT_CONFIG))
