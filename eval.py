"""Evaluate training runs: metrics, and the figures a run supports.

  python eval.py --workdir DIR [--step N] [--metrics fid,kid,is,pr] [--num_samples 50000]
                 [--extractor inception|classifier] [--inception PATH] [--classifier DIR]
                 [--convention clean|pytorch-fid|tf]
  python eval.py --workdir DIR --figures
  python eval.py --workdir G03,G05,G07 --gamma_figure gamma.png   (BEGAN runs)

Metrics are computed from the samples of the latest (or --step) checkpoint (its EMA generator
where the method keeps one), made by gans.sampling for --seed, against the run's own dataset,
written to DIR/eval/<step>.json and printed as a table; --workdir takes a comma-separated list.
FID, KID, IS and precision/recall use the FID Inception network, whose
weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth) cannot be downloaded here: pass
the file with --inception. `--extractor classifier --classifier DIR` computes them in the
feature space of a classifier trained by the project instead, as fid_classifier etc.
--figures redraws sample sheets, slerp interpolations and loss/metric curves into
DIR/figures/; with --figures, metrics run only when --metrics is given.
Tables go to stdout; the progress of the feature extraction goes to stderr.
"""
import sys

from absl import flags

from gans import cli

_WORKDIR = flags.DEFINE_list('workdir', None, 'Training run directories (comma-separated).',
                             required=True)
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_METRICS = flags.DEFINE_string('metrics', None, 'Comma-separated subset of fid,kid,is,pr '
                               '(default fid,kid; none with --figures). Per-scale FID comes '
                               'with fid for methods that define extra eval sets (MSG-GAN).')
_NUM = flags.DEFINE_integer('num_samples', 50_000, 'Generated images per metric.')
_NUM_REAL = flags.DEFINE_integer('num_real', 0, 'Real images (0: the whole split).')
_EXTRACTOR = flags.DEFINE_list('extractor', ['inception'], 'inception and/or classifier.')
_INCEPTION = flags.DEFINE_string('inception', None, 'pt_inception-2015-12-05-6726825d.pth '
                                 '(default $GANS_INCEPTION or ~/.cache/gans/).')
_CONVENTION = flags.DEFINE_string('convention', None, 'FID convention of the Inception '
                                  'extractor: clean (default), pytorch-fid or tf; recorded '
                                  'with every number.')
_CLASSIFIER = flags.DEFINE_string('classifier', None, 'Workdir of a trained project classifier.')
_BATCH = flags.DEFINE_integer('batch_size', 200, 'Images per extraction step over all devices '
                             '(rounded up to a multiple of the device count).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latents (and the KID subsets).')
_STATS = flags.DEFINE_string('stats_dir', '', 'Reference-feature cache (default '
                             '$GANS_STATS_DIR or ~/.cache/gans/stats).')
_PER_SCALE = flags.DEFINE_bool('per_scale', True, 'FID of every output scale too (MSG-GAN); '
                               'each scale costs as much extraction as the full resolution.')
_FIGURES = flags.DEFINE_bool('figures', False, 'Redraw every figure of the run.')
_SHEET = flags.DEFINE_integer('sheet_samples', 64, 'Samples per sample sheet.')
_GAMMA = flags.DEFINE_string('gamma_figure', None, 'BEGAN: write the diversity figure of the '
                             '--workdir runs (one sheet per run, ordered by gamma) to this PNG.')


def main(argv):
  del argv
  from gans import checkpoint, distributed, evaluation, methods
  from gans.metrics import parse_metrics
  distributed.initialize()
  drawing = _FIGURES.value or _GAMMA.value
  metrics = _METRICS.value if _METRICS.value is not None else ('' if drawing else 'fid,kid')
  options = evaluation.Options(metrics=parse_metrics(metrics), num_samples=_NUM.value,
                               num_real=_NUM_REAL.value, batch_size=_BATCH.value,
                               seed=_SEED.value, stats_dir=_STATS.value,
                               per_scale=_PER_SCALE.value)
  extractors = None  # built after the first run loads, so a wrong --workdir is reported first
  for workdir in _WORKDIR.value:
    if not drawing or _METRICS.value:
      loaded = checkpoint.load(workdir, _STEP.value)
      print(evaluation.table(evaluation.method_scores(workdir, _STEP.value, loaded), workdir))
      method = methods.get(loaded[0].method)
      names = options.metrics if _METRICS.value is not None or evaluation.scoreable(method) else ()
      if names:
        extractors = extractors or evaluation.make_extractors(
            _EXTRACTOR.value, _INCEPTION.value, _CLASSIFIER.value, _CONVENTION.value)
      for extractor in extractors if names else ():
        record = evaluation.score_checkpoint(workdir, extractor, options, _STEP.value, loaded)
        print(evaluation.table(record, workdir))
    if _FIGURES.value:
      for path in evaluation.draw_figures(workdir, _STEP.value, _SHEET.value, _SEED.value):
        print(path)
  if _GAMMA.value:
    from gans.methods import began
    print(began.gamma_figure(_WORKDIR.value, _GAMMA.value, seed=_SEED.value, step=_STEP.value))


if __name__ == '__main__':
  sys.exit(cli.run(main))
