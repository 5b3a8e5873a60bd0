"""The sample-quality metrics of config.eval, computed inside training."""
import ml_collections

from gans.evaluation import features, scoring
from gans.metrics import parse_metrics


class DuringTraining:
  """The metrics of config.eval, every config.eval.every steps of a run; every process calls it.

  The extractor is built at start-up, so a missing weights file stops the run before training
  rather than at the first evaluation. Returns {name: value} for the metric writer.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir):
    e = config.eval
    self.workdir, self.config = workdir, config
    self.options = features.shared_stats(
        features.Options(metrics=parse_metrics(e.metrics), num_samples=e.num_samples,
                         batch_size=e.batch_size, seed=config.seed), workdir)
    self.extractor = features.make_extractors([e.extractor], e.inception or None,
                                              e.classifier or None,
                                              e.get('convention') or None)[0]

  def __call__(self, state):
    record = scoring.score_checkpoint(self.workdir, self.extractor, self.options,
                                      loaded=(self.config, state))
    return {k: v['value'] for k, v in record['metrics'].items()}
