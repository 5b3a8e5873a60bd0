"""Which classes a generator's samples fall in, as judged by a classifier the project trained.

Draws N samples of a run's checkpoint through gans.sampling (the uint8 images eval.py scores
for the same seed), labels them with the frozen classifier and prints the class histogram, its
entropy (nats; ln C for an even cover of C classes) and the rarest class's share.

  python train.py --config configs/classifier_digits.py --workdir runs/classifier_digits
  python scripts/class_coverage.py --workdir runs/began_digits \\
    --classifier runs/classifier_digits [--num_samples 2000] [--step N] [--json OUT]

--workdir takes several runs, comma-separated: one row each.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True,
                      help='generator run directories, comma-separated')
  parser.add_argument('--classifier', required=True,
                      help='workdir of a trained project classifier (configs/classifier_*.py)')
  parser.add_argument('--num_samples', type=int, default=2000)
  parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  parser.add_argument('--seed', type=int, default=0, help='seed of the samples (gans.sampling)')
  parser.add_argument('--batch_size', type=int, default=500)
  parser.add_argument('--json', default=None, help='also write the results (a list) here')
  args = parser.parse_args(argv)
  if args.num_samples < 1 or args.batch_size < 1:
    parser.error('--num_samples and --batch_size must be >= 1')
  from gans.errors import UserError  # pylint: disable=g-import-not-at-top
  from gans.evaluation import coverage  # pylint: disable=g-import-not-at-top
  from gans.methods import classifier as classifier_lib  # pylint: disable=g-import-not-at-top
  try:
    frozen = classifier_lib.load_frozen(args.classifier)
    results = [coverage.class_coverage(w, frozen, args.num_samples, args.step, args.seed,
                                       args.batch_size) for w in args.workdir.split(',') if w]
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(coverage.table(results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
