"""Sample-quality metrics and the feature extractors they are computed in.

The scores are host-side numpy in float64 (fid, kid, inception_score), except the O(N^2)
nearest-neighbour search of precision/recall, which runs on the devices. Features come from an
`extractors.Extractor`: the FID Inception network, or a classifier trained by the project.
"""
from gans.errors import UserError

METRICS = ('fid', 'kid', 'is', 'pr')


def parse_metrics(names):
  """('fid', 'kid') from 'fid,kid' or a list; UserError on a name that is not a metric."""
  if isinstance(names, str):
    names = names.split(',')
  names = tuple(n.strip().lower() for n in names if n.strip())
  bad = [n for n in names if n not in METRICS]
  if bad:
    raise UserError(f'unknown metric {bad[0]!r}; choose from {",".join(METRICS)}')
  return names
