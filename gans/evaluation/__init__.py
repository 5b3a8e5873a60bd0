"""Evaluation of trained generators: FID, KID, IS and precision/recall against the run's own
dataset, the method's own numbers, and the figures a workdir supports.

  features     Options, FeatureSet, the reals' features (cached) and the samples' features
  scoring      scores(...) of two FeatureSets, score_checkpoint(workdir, ...) -> eval record
  report       the eval JSON (merge), table, scoreable, method_scores
  drawing      curve_figures, interpolation_figure, draw_figures
  in_training  DuringTraining, the trainer's config.eval hook

Samples come from gans.sampling, the one way samples are made for a seed.
"""
from gans.evaluation.drawing import curve_figures, draw_figures, interpolation_figure
from gans.evaluation.features import (CACHE_VERSION, FeatureSet, Options, domains,
                                      generated_features, make_extractors, reference_features,
                                      reference_key, shared_stats, stats_dir)
from gans.evaluation.in_training import DuringTraining
from gans.evaluation.report import merge, method_scores, scoreable, table
from gans.evaluation.scoring import score_checkpoint, scores

__all__ = ['CACHE_VERSION', 'DuringTraining', 'FeatureSet', 'Options', 'curve_figures',
           'domains', 'draw_figures', 'generated_features', 'interpolation_figure',
           'make_extractors', 'merge', 'method_scores', 'reference_features', 'reference_key',
           'score_checkpoint', 'scoreable', 'scores', 'shared_stats', 'stats_dir', 'table']
