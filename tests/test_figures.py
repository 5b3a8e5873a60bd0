"""The charts (matplotlib, Agg): what they draw, read back from the PNG's pixels."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT
from gans import figures

MAGENTA = (255, 0, 255)
TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))  # matplotlib's C0..C3


def pixels(path):
  return np.asarray(Image.open(path).convert('RGB')).astype(int)


def count(image, colour, tolerance=12):
  return int((np.abs(image - np.asarray(colour)).max(-1) <= tolerance).sum())


def test_curve_with_snapshots_draws_the_thumbnails_above_the_curve(tmp_path):
  steps = np.arange(10, 1010, 10)
  values = 0.2 * np.exp(-steps / 300) + 0.05
  sheet = np.full((40, 40, 3), MAGENTA, np.uint8)
  snapshots = [(s, sheet) for s in (10, 500, 1000)]
  path = figures.curve_with_snapshots(steps, values, snapshots, tmp_path / 'c.png', thumb=100)
  image = pixels(path)
  assert Image.open(path).size == (900, 380 + 100 + 30)  # the plot, and a row of thumbnails
  magenta = count(image, MAGENTA)
  assert 0.9 * 3 * 100 * 100 <= magenta <= 1.1 * 3 * 100 * 100, magenta
  rows = np.nonzero((np.abs(image - MAGENTA).max(-1) <= 12).any(1))[0]
  assert rows.max() < 130  # above the plot
  assert count(image, TAB10[0]) > 200  # the curve
  other = figures.curve_with_snapshots(steps, values[::-1], snapshots, tmp_path / 'd.png',
                                       thumb=100)
  assert not np.array_equal(pixels(other), image)


def test_curve_without_snapshots_is_the_plot_alone(tmp_path):
  path = figures.curve_with_snapshots([10, 20, 30], [0.3, 0.2, 0.25], [], tmp_path / 'c.png')
  assert Image.open(path).size == (900, 380)
  assert count(pixels(path), MAGENTA) == 0


def test_line_chart_draws_one_line_per_series(tmp_path):
  x = np.arange(0, 100, 10)
  series = {'a': (x, x * 1.0), 'b': (x, 100.0 - x), 'c': (x, np.where(x == 50, np.nan, 50.0))}
  path = figures.line_chart(series, tmp_path / 'sub' / 'l.png', title='losses')
  assert Image.open(path).size == (900, 480)
  image = pixels(path)
  for colour in TAB10[:3]:
    assert count(image, colour, 4) > 150, colour  # each series, with a finite part drawn
  assert count(image, TAB10[3], 4) == 0  # no fourth line
  two = pixels(figures.line_chart(dict(list(series.items())[:2]), tmp_path / 'two.png'))
  assert count(two, TAB10[2], 4) == 0


def test_line_chart_of_nothing_finite_is_an_empty_chart(tmp_path):
  path = figures.line_chart({'a': ([1, 2], [np.nan, np.inf])}, tmp_path / 'l.png', size=(400, 300))
  assert Image.open(path).size == (400, 300)


def test_charts_leave_pyplot_alone(tmp_path):
  """Figure + Agg canvas, never pyplot: no global figure state, no GUI backend chosen."""
  code = ('import sys; from gans import figures; '
          f'figures.line_chart({{"a": ([0, 1], [0, 1])}}, {str(tmp_path / "l.png")!r}); '
          f'figures.curve_with_snapshots([0, 1], [0, 1], [], {str(tmp_path / "c.png")!r}); '
          'print("matplotlib.pyplot" in sys.modules)')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert result.stdout.strip() == 'False', result.stderr
