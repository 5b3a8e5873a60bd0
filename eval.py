"""Evaluate a training run: python eval.py --workdir DIR [--step N] [--num_samples 64].

Restores the run's latest (or given) checkpoint with the config saved beside it and writes
sample sheets from the EMA generator into DIR/figures/. Metrics (FID, KID, IS, ...) are the
subject of a later change and will be added here.
"""
import os
import sys

import jax
from absl import flags

from gans import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run directory.', required=True)
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_NUM = flags.DEFINE_integer('num_samples', 64, 'Samples per sheet.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latents.')


def main(argv):
  del argv
  from gans import methods, parallel, trainer
  parallel.initialize_distributed()
  config, state = trainer.load(_WORKDIR.value, _STEP.value)
  method = methods.get(config.method)
  latents = method.sample_latents(config, jax.random.PRNGKey(_SEED.value), _NUM.value)
  step = int(parallel.to_host(state.step))
  for path in trainer.write_samples(method, config, state, latents,
                                    os.path.join(_WORKDIR.value, 'figures'), f'step_{step:08d}'):
    print(path)


if __name__ == '__main__':
  sys.exit(cli.run(main))
