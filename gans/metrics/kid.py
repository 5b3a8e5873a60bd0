"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, over subsets.

k(a, b) = (a.b / d + 1)^3. As StyleGAN, clean-fid and torch-fidelity: `num_subsets` random
subsets of m = min(n_x, n_y, subset_size) rows of each set (without replacement within a
subset), mean and std of the per-subset MMD^2. Gram matrices are float32 products of float32
features (as the features themselves); the kernel and the sums, where MMD's cancellation
happens, are float64.
"""
import numpy as np


def mmd2_unbiased(x, y):
  """Unbiased MMD^2 of two [m, d] / [n, d] sets with the cubic polynomial kernel."""
  x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
  m, n, d = x.shape[0], y.shape[0], x.shape[1]
  kernel = lambda a, b: ((a @ b.T).astype(np.float64) / d + 1.0) ** 3
  kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


def kid(features1, features2, num_subsets=100, subset_size=1000, seed=0):
  """(mean, std, m) of MMD^2 over `num_subsets` random subsets of size m of each set."""
  rng = np.random.default_rng(seed)
  m = min(len(features1), len(features2), subset_size)
  if m < 2:
    raise ValueError(f'KID needs at least 2 samples in each set, got {m}')
  values = [mmd2_unbiased(features1[rng.choice(len(features1), m, replace=False)],
                          features2[rng.choice(len(features2), m, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values)), m
