"""Inception Score: exp(E_x KL(p(y|x) || p(y))), mean and std over splits (10 by convention)."""
import numpy as np


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))


def inception_score(logits, splits=10):
  """(mean, std) over `splits` consecutive parts of [N, K] logits, part i being rows
  i * N // splits to (i + 1) * N // splits: every row counts, the parts differing by at most
  one row, as improved-GAN's, torch-fidelity's and StyleGAN2-ADA's splits."""
  logp = _log_softmax(np.asarray(logits, np.float64))
  n = len(logp)
  if n < splits:
    raise ValueError(f'Inception Score needs at least {splits} samples, got {n}')
  scores = []
  for i in range(splits):
    part = logp[i * n // splits:(i + 1) * n // splits]
    log_py = np.log(np.mean(np.exp(part), axis=0))
    scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_py), axis=-1))))
  return float(np.mean(scores)), float(np.std(scores))
