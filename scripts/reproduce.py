"""Reproduce a paper's table at a named scale and write its section of docs/results.md.

  python scripts/reproduce.py --paper msggan|began|cogan|scogan|... --scale cpu [--root DIR]
      [--mnist DIR_OF_MNIST_IDX_FILES]

Trains every row of the paper for each seed (and the classifiers its measures need) into
--root, scores each finished run once, and rewrites the paper's section (mean +- std over seeds,
the paper's number, commands, hardware, wall time, date, sample sheets). Interrupted? Run the
same command again: finished runs are skipped, unfinished ones resume from their checkpoints.
`--scale cpu` fits a 2-core CPU in under an hour per paper; `--scale paper` is the papers' own
datasets and sizes, for an accelerator; `--scale smoke` runs the tiny configs in seconds.
"""
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gans import cli  # noqa: E402  pylint: disable=g-import-not-at-top

_PAPER = flags.DEFINE_list(
    'paper', None, 'msggan, began, cogan, scogan, scogan_edge, and at the cpu and smoke scales '
    'scogan_mnist and scogan_mnist_edge (the coupled tables on MNIST); comma-separated.',
    required=True)
_SCALE = flags.DEFINE_string('scale', 'cpu', 'smoke, cpu or paper.')
_ROOT = flags.DEFINE_string('root', os.path.join('runs', 'reproduce'),
                            'Where the runs go (a path or a URL).')
_MNIST = flags.DEFINE_string('mnist', '', 'A folder of the MNIST IDX files (train-images-idx3-'
                             'ubyte.gz and the rest): the MNIST tables read them instead of TFDS '
                             'mnist, which needs a download.')
_RESULTS = flags.DEFINE_string('results', None, 'The results page (default docs/results.md; '
                               "'' to write none).")


def main(argv):
  del argv
  from gans import distributed, papers
  distributed.initialize()
  cli.enable_compilation_cache()
  for paper in _PAPER.value:
    papers.reproduce(paper, _SCALE.value, _ROOT.value, _RESULTS.value,
                     log=lambda text: print(text, file=sys.stderr, flush=True),
                     mnist=_MNIST.value)


if __name__ == '__main__':
  sys.exit(cli.run(main))
