"""Inception Score: exp(E_x KL(p(y|x) || p(y))), mean and std over splits (10 by convention)."""
import numpy as np


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))


def inception_score(logits, splits=10):
  """(mean, std) over `splits` consecutive equal parts of [N, K] logits (the remainder of N
  modulo splits is left out, as torch-fidelity does)."""
  logp = _log_softmax(np.asarray(logits, np.float64))
  per = len(logp) // splits
  if per < 1:
    raise ValueError(f'Inception Score needs at least {splits} samples, got {len(logp)}')
  scores = []
  for i in range(splits):
    part = logp[i * per:(i + 1) * per]
    log_py = np.log(np.mean(np.exp(part), axis=0))
    scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_py), axis=-1))))
  return float(np.mean(scores)), float(np.std(scores))
