"""The metric math against closed forms and direct numpy/scipy computations."""
import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from gans.metrics import extractors, fid, inception_score, kid, precision_recall


def scipy_fid(f1, f2, eps=1e-6):
  """pytorch-fid's computation: scipy sqrtm of the product, eps * I retry, real part."""
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = np.eye(len(s1)) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  diff = mu1 - mu2
  return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
  # Commuting (diagonal) covariances: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt a - sqrt b)^2.
  closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-12)
  # The same pair rotated by one orthogonal Q (FID is rotation invariant), so S1 S2 is dense.
  q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  rotated = fid.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
  assert rotated == pytest.approx(closed, rel=1e-10)
  # Samples of the two Gaussians: FID of their features converges to the closed form.
  n = 200_000
  x = mu1 + rng.normal(size=(n, 6)) * np.sqrt(a)
  y = mu2 + rng.normal(size=(n, 6)) * np.sqrt(b)
  assert fid.fid(x, y) == pytest.approx(closed, rel=0.02)


def test_fid_matches_scipy_on_random_features():
  rng = np.random.default_rng(1)
  mix = rng.normal(size=(32, 32))
  f1 = rng.normal(size=(500, 32)) @ mix
  f2 = rng.normal(size=(400, 32)) @ mix * 1.3 + 0.5
  assert fid.fid(f1, f2) == pytest.approx(scipy_fid(f1, f2), rel=1e-9)
  assert fid.fid(f1, f1) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize('n,d', [(40, 64), (100, 512)])
def test_fid_of_a_rank_deficient_set_with_itself_is_zero(n, d):
  """N < D: the D - N zero eigenvalues come out of eigh as round-off of either sign, whose
  square roots used to add up to |FID| ~ 1e-6..1e-5; below d * eps * lambda_max they are 0."""
  rng = np.random.default_rng(n)
  f = rng.normal(size=(n, d)) + rng.uniform(0, 2, d)
  assert abs(fid.fid(f, f)) < 1e-10


def test_fid_with_singular_covariances_is_finite_and_agrees_with_scipy():
  rng = np.random.default_rng(2)
  f1, f2 = rng.normal(size=(40, 64)), rng.normal(size=(50, 64)) + 0.1  # N < D: rank-deficient
  ours = fid.fid(f1, f2)
  assert np.isfinite(ours)
  assert ours == pytest.approx(scipy_fid(f1, f2), rel=1e-6)


def mmd2_loops(x, y):
  k = lambda a, b: (a @ b / len(a) + 1) ** 3
  m, n = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return kxx + kyy - 2 * kxy


def test_kid_matches_a_direct_double_loop():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(20, 5)).astype(np.float32)
  y = (rng.normal(size=(30, 5)) + 0.3).astype(np.float32)
  expected = mmd2_loops(x.astype(np.float64), y.astype(np.float64))
  assert kid.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-5)
  # One subset as large as both sets (m = 20 rows of each) is a random 20 x 20 MMD.
  mean, std, m = kid.kid(x, y, num_subsets=1, subset_size=1000, seed=7)
  sub = np.random.default_rng(7)
  xi, yi = sub.choice(20, 20, replace=False), sub.choice(30, 20, replace=False)
  assert m == 20 and std == 0.0
  assert mean == pytest.approx(mmd2_loops(x[xi].astype(np.float64), y[yi].astype(np.float64)),
                               rel=1e-5)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_otherwise():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
  mean, std, _ = kid.kid(a, b, num_subsets=20, subset_size=500)
  assert abs(mean) < 3 * std / np.sqrt(20) + 1e-4
  assert kid.kid(a, b + 1.0, num_subsets=5, subset_size=500)[0] > 100 * abs(mean)


def test_inception_score_known_answers():
  k = 10
  confident = np.full((1000, k), -50.0)
  confident[np.arange(1000), np.arange(1000) % k] = 50.0  # one-hot, uniform marginal
  mean, std = inception_score.inception_score(confident, splits=10)
  assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
  same = np.tile(np.random.default_rng(0).normal(size=k), (100, 1))  # p(y|x) = p(y)
  assert inception_score.inception_score(same, splits=10)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_matches_a_direct_computation():
  """N = 1009 is not a multiple of 10: every row counts, split at i * N // 10 (improved-GAN,
  torch-fidelity, StyleGAN2-ADA), the last 9 rows included."""
  n = 1009
  logits = np.random.default_rng(5).normal(size=(n, 7)) * 3
  logits[-9:] *= 4  # confident last rows: leaving them out would change the score
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  parts = [p[i * n // 10:(i + 1) * n // 10] for i in range(10)]
  assert sum(map(len, parts)) == n
  direct = [np.exp(np.mean([np.sum(q * np.log(q / part.mean(0))) for q in part])) for part in parts]
  mean, std = inception_score.inception_score(logits, 10)
  assert mean == pytest.approx(np.mean(direct), rel=1e-9)
  assert std == pytest.approx(np.std(direct), rel=1e-7)


def test_precision_recall_on_points_with_a_known_answer():
  on_line = lambda xs: np.stack([np.asarray(xs, np.float32), np.zeros(len(xs), np.float32)], 1)
  real = on_line(range(10))  # 3rd-NN radii: 3 at the ends, 2 inside
  fake = on_line([0, 1, 2, 3, 4, 100, 101, 102, 103, 104])
  # Precision: 0..4 lie on real points, 100..104 far away. Recall: real 0..7 are within the
  # fake radius of 3 around fake point 4 (7 exactly on the boundary counts), 8 and 9 are not.
  assert precision_recall.precision_recall(real, fake, k=3) == pytest.approx((0.5, 0.8))


def numpy_precision(real, fake, k):
  d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
  radii = np.sort(d_rr, axis=1)[:, k]
  d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
  return np.mean(np.any(d_fr <= radii[None], axis=1))


def test_precision_recall_match_numpy_with_padded_blocks():
  rng = np.random.default_rng(6)
  real = rng.normal(size=(67, 8)).astype(np.float32)
  fake = (rng.normal(size=(45, 8)) * 1.4 + 0.3).astype(np.float32)
  radii = precision_recall.kth_radii(real, 3, block=16)  # 67 = 4 blocks + a padded one
  d = np.linalg.norm(real[:, None] - real[None], axis=-1)
  np.testing.assert_allclose(np.sqrt(radii), np.sort(d, axis=1)[:, 3], rtol=1e-4)
  p, r = precision_recall.precision_recall(real, fake, k=3)
  assert p == pytest.approx(numpy_precision(real, fake, 3))
  assert r == pytest.approx(numpy_precision(fake, real, 3))


def test_precision_recall_do_not_depend_on_where_the_features_lie():
  """Features 1000 away from the origin (Inception features are far from it) give the answer
  at the origin: float32 |a|^2 + |b|^2 - 2ab loses ~|a|^2 * 1e-7 = 0.1 to round-off unless
  the sets are centred first, which flips neighbourhood decisions."""
  rng = np.random.default_rng(9)
  real = rng.normal(size=(300, 16)) * 0.5
  fake = rng.normal(size=(250, 16)) * 0.6 + 0.1
  at_origin = precision_recall.precision_recall(real, fake, k=3)
  direct = numpy_precision(real, fake, 3), numpy_precision(fake, real, 3)
  assert at_origin == pytest.approx(direct)
  far = precision_recall.precision_recall(real + 1000.0, fake + 1000.0, k=3)
  assert far == at_origin


def test_quantize():
  x = np.array([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 3.0], np.float32)
  np.testing.assert_array_equal(np.asarray(extractors.quantize(x)),
                                [0, 0, 0, 128, 191, 255, 255])


@pytest.mark.parametrize('shape', [(8, 8, 1), (32, 32, 3), (16, 40, 3), (320, 310, 3)])
def test_resize_matches_pil_bicubic_on_float_channels(shape):
  """clean-fid's resize: PIL bicubic of each channel as a float ('F') image, clipped."""
  x = np.random.default_rng(0).integers(0, 256, (2,) + shape, dtype=np.uint8)
  ours = np.asarray(extractors.resize_like_clean_fid(x))
  ref = np.stack([np.stack([np.asarray(Image.fromarray(img[..., c].astype(np.float32), 'F')
                                       .resize((299, 299), Image.BICUBIC)).clip(0, 255)
                            for c in range(shape[-1])], -1) for img in x])
  if shape[-1] == 1:
    ref = np.repeat(ref, 3, -1)
  assert ours.shape == (2, 299, 299, 3)
  np.testing.assert_allclose(ours, ref, atol=2e-4)  # float32 round-off on the 0..255 scale


def test_running_moments_equal_the_gaussian_of_all_features():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(300, 5)) * [1, 2, 3, 4, 5] + 1e3  # far from 0: the shift matters
  m = fid.Moments()
  for part in np.array_split(x, 7):
    m.add(part)
  mean, cov = m.gaussian()
  np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
  np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9)
