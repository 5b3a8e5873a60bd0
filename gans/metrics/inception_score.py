"""Inception Score: exp(E_x KL(p(y|x) || p(y))), mean and std over splits (10 by convention)."""
import numpy as np
from scipy.special import log_softmax


def inception_score(logits, splits=10):
  """(mean, std) over `splits` consecutive equal parts of [N, K] logits (the remainder of N
  modulo splits is left out, as torch-fidelity does)."""
  logp = log_softmax(np.asarray(logits, np.float64), axis=-1)
  per = len(logp) // splits
  if per < 1:
    raise ValueError(f'Inception Score needs at least {splits} samples, got {len(logp)}')
  scores = []
  for i in range(splits):
    part = logp[i * per:(i + 1) * per]
    log_py = np.log(np.mean(np.exp(part), axis=0))
    scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_py), axis=-1))))
  return float(np.mean(scores)), float(np.std(scores))
