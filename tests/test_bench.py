"""gans.bench reports consistent numbers (it measures speed; nothing here asserts one)."""
import json

import pytest

from conftest import tiny_config
from gans import bench
from gans.methods import msggan


@pytest.mark.parametrize('path', ['configs/msggan_digits.py:tiny', 'configs/began_digits.py:tiny',
                                  'configs/cogan_digits_negative.py:tiny'])
def test_benchmark_line_is_consistent(path):
  r = bench.benchmark(bench.load_config(path, {'model.dtype': 'float32'}), repeats=2,
                      peak_tflops=1.0)
  assert r['images_per_s'] > 0 and r['compile_s'] > 0 and r['peak_memory_mb'] > 0
  assert r['s_per_kimg'] == pytest.approx(1000 / r['images_per_s'], rel=1e-3)
  assert r['mfu_necessary'] == pytest.approx(
      r['images_per_s'] * r['gflop_per_image_necessary'] * 1e9 / 1e12, rel=1e-2)
  # The model's own count and XLA's agree to within the non-conv work XLA also counts.
  assert r['xla_gflop_per_image'] == pytest.approx(r['gflop_per_image_necessary'], rel=0.15)


@pytest.mark.parametrize('loss, d_forwards', [('relativistic-hinge', 9), ('hinge', 8)])
def test_iteration_flops_follow_the_spec(loss, d_forwards):
  """Spec §14 at depth 4, width 512: reference 4G + 12D = 166.27 GFLOP per image."""
  config = tiny_config(**{'model.depth': 4, 'model.width': 512, 'model.latent_size': 512,
                          'model.image_channels': 3, 'loss.name': loss})
  g, d = msggan.forward_flops(config)
  reference, necessary = msggan.flops(config)
  assert reference / 1e9 == pytest.approx(166.27, abs=0.05)
  assert necessary == 3 * g + d_forwards * d  # the G step reuses the D step's G forward


def test_sweep_configs_load_as_the_reference_ran_them():
  for path, overrides, target in bench.SWEEP:
    config = bench.load_config(path, overrides)
    assert config.model.dtype == 'bfloat16' and config.batch_size == overrides['batch_size']
    assert target is None or target > 0


def test_sweep_prints_a_line_per_config_and_the_table(capsys):
  rows = [('configs/msggan_digits.py:tiny', {}, 3250),
          ('configs/began_digits.py:tiny', {}, None)]
  table = bench.sweep(rows, repeats=1, peak_tflops=1.0).splitlines()
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [(r['config'], r['method'], r['dtype']) for r in lines] == [
      ('configs/msggan_digits.py:tiny', 'msggan', 'bfloat16'),
      ('configs/began_digits.py:tiny', 'began', 'bfloat16')]
  assert len(table) == 4 and '| 3,250 |' in table[2] and '| - |' in table[3]


def test_input_pipeline_rate_is_measured_on_the_real_source():
  assert bench.pipeline_rate(tiny_config(), dispatches=2) > 0
