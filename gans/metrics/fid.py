"""Frechet distance between Gaussians fitted to two feature sets (FID).

The matrix square root is taken in TF-GAN's symmetric form,
Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), through two symmetric eigendecompositions: the
eigenvalues of a PSD matrix are real, so there is no complex residue to discard and no NaN when
a covariance is singular (fewer samples than dimensions), the failure pytorch-fid patches with
eps * I and a retry (bioinf-jku/TTUR#31). Eigenvalues below d * eps * lambda_max are round-off,
not signal (a backward-stable eigensolver on a d x d product is exact only to about that), and
are set to 0: otherwise the square roots of the ~D - N noise eigenvalues of a rank-deficient
covariance add up to an FID of order 1e-5 between a set and itself.
"""
import numpy as np


def _denoise(w):
  """Eigenvalues with those below d * eps * max (round-off, of either sign) set to 0."""
  cut = len(w) * np.finfo(np.float64).eps * max(float(np.max(w, initial=0.0)), 0.0)
  return np.where(w > cut, w, 0.0)


def gaussian(features):
  """(mean, covariance) of [N, D] features in float64, covariance with N - 1 as np.cov."""
  x = np.asarray(features, np.float64)
  if x.shape[0] < 2:
    raise ValueError(f'need at least 2 feature vectors for a covariance, got {x.shape[0]}')
  return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(s):
  w, v = np.linalg.eigh(s)
  return (v * np.sqrt(_denoise(w))) @ v.T


def trace_sqrt_product(sigma1, sigma2):
  """Tr((sigma1 sigma2)^1/2) for symmetric PSD matrices."""
  s1 = _sqrt_psd(np.asarray(sigma1, np.float64))
  m = s1 @ np.asarray(sigma2, np.float64) @ s1
  return float(np.sum(np.sqrt(_denoise(np.linalg.eigvalsh((m + m.T) / 2)))))


def frechet_distance(mu1, sigma1, mu2, sigma2):
  """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^1/2)."""
  diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
               - 2.0 * trace_sqrt_product(sigma1, sigma2))


def fid(features1, features2):
  """FID of two [N, D] feature sets."""
  return frechet_distance(*gaussian(features1), *gaussian(features2))


class Moments:
  """Running float64 sums for a Gaussian fit without keeping the features (per-scale FID).

  Sums are of x - shift, the shift being the first batch's mean, so that the covariance is not
  the difference of two large numbers when the features are far from the origin.
  """

  def __init__(self):
    self.count, self.shift, self.sum, self.outer = 0, None, 0.0, 0.0

  def add(self, features):
    x = np.asarray(features, np.float64)
    if self.shift is None:
      self.shift = x.mean(axis=0)
    x = x - self.shift
    self.count += len(x)
    self.sum = self.sum + x.sum(axis=0)
    self.outer = self.outer + x.T @ x

  def gaussian(self):
    """(mean, covariance with N - 1), as gaussian() of all the features added."""
    mean = self.sum / self.count
    cov = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
    return mean + self.shift, cov
