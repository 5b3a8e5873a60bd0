"""gans.bench against measurements and counts made here: its speed against the test's own timing
of the dispatches, MFU against XLA's FLOPs, the FLOP counts against spec §14 and a hand count."""
import functools
import json
import statistics
import time

import jax
import pytest

from conftest import tiny_config
from gans import bench, methods, trainer
from gans.methods import msggan


def xla_flops_per_image(config):
  """XLA's cost analysis of one compiled train_step (not bench's dispatch), per image."""
  method = methods.get(config.method)
  state = jax.eval_shape(functools.partial(method.init_state, config), jax.random.PRNGKey(0))
  batch = jax.tree.map(lambda s: jax.ShapeDtypeStruct((config.batch_size, *s.shape), s.dtype),
                       method.example_spec(config))
  compiled = jax.jit(functools.partial(method.train_step, config)).lower(state, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return cost['flops'] / config.batch_size


@pytest.mark.parametrize('path', ['configs/msggan_digits.py:tiny', 'configs/began_digits.py:tiny',
                                  'configs/cogan_digits_negative.py:tiny'])
def test_benchmark_line_agrees_with_independent_timing_and_flops(path, monkeypatch):
  """The reported speed is the speed of the timed dispatches, and MFU is that speed times the
  step's FLOPs over the peak.

  The test times every dispatch call itself (a wrapper that blocks until the outputs are
  ready): bench's per-dispatch times contain these, so its images/s is at most batch x K over
  the median of the test's times, and well above half of it. MFU is checked against FLOPs that
  XLA's cost analysis gives for one train_step compiled here. The model's own count (full
  kernels, as PyTorch's counter) exceeds XLA's on these tiny maps by the padding taps XLA does
  not count (a 3x3 SAME conv at 4x4 has 31% of its taps outside the image): 2-17% here, so 20%.
  A wrong unit, K or device count is a factor of 2 or more."""
  config = bench.load_config(path, {'model.dtype': 'float32', 'steps_per_dispatch': 2})
  calls = []
  original = trainer.Dispatch.__call__

  def timed(self, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(original(self, *args))
    calls.append(time.perf_counter() - t0)
    return out

  monkeypatch.setattr(trainer.Dispatch, '__call__', timed)
  r = bench.benchmark(config, repeats=3, peak_tflops=1.0)
  assert len(calls) == 4  # the warm-up, then the timed ones
  assert r['compile_s'] > 0 and r['peak_memory_mb'] > 0
  measured = config.batch_size * config.steps_per_dispatch / statistics.median(calls[1:])
  assert 0.5 * measured < r['images_per_s'] <= measured * 1.001, (r['images_per_s'], measured)
  assert r['s_per_kimg'] == pytest.approx(1000 / r['images_per_s'], rel=1e-3)
  xla = xla_flops_per_image(config)
  assert r['mfu_necessary'] == pytest.approx(r['images_per_s'] * xla / 1e12, rel=0.2)
  assert r['xla_gflop_per_image'] == pytest.approx(xla / 1e9, abs=5e-5)  # 4 decimals


# Spec §14, depth 4, width 512 (GFLOP per image, PyTorch's counter): G fwd 12.77, D fwd 9.60;
# reference iteration 166.27; necessary work with the D step's G forward reused 124.7 (3G + 9D),
# without reuse 137.5 (4G + 9D); a loss without D(real) in the G step saves one D forward.
SPEC_G, SPEC_D = 12.77, 9.60


@pytest.mark.parametrize('loss, fresh, necessary', [
    ('relativistic-hinge', False, 124.7), ('hinge', False, 124.7 - SPEC_D),
    ('relativistic-hinge', True, 137.5)])
def test_iteration_flops_follow_the_spec(loss, fresh, necessary):
  """The FLOP counts against spec §14's table; fresh_g_latents cannot reuse G's forward."""
  config = tiny_config(**{'model.depth': 4, 'model.width': 512, 'model.latent_size': 512,
                          'model.image_channels': 3, 'loss.name': loss,
                          'msggan.fresh_g_latents': fresh})
  g, d = msggan.forward_flops(config)
  reference, got = msggan.flops(config)
  assert (g / 1e9, d / 1e9) == pytest.approx((SPEC_G, SPEC_D), abs=0.005)
  assert reference / 1e9 == pytest.approx(166.27, abs=0.05)
  assert got / 1e9 == pytest.approx(necessary, abs=0.05)


def test_tiny_model_flops_counted_by_hand():
  """configs/msggan_digits.py:tiny (depth 2, width 16, z 16, grey), layer by layer (MACs per
  image; FLOP = 2 MAC, full kernels, biases not counted)."""
  g_macs = (16 * 4 * 4 * 16  # b0_dense: z 16 -> 4x4x16
            + 4 * 4 * 9 * 16 * 16 + 4 * 4 * 16 * 1  # b0_conv 3x3, to_rgb0 1x1
            + 2 * 8 * 8 * 9 * 16 * 16 + 8 * 8 * 16 * 1)  # b1_conv1, b1_conv2 3x3 at 8x8, to_rgb1
  d_macs = (8 * 8 * 1 * 16  # level1 from_rgb 1 -> 16 at 8x8
            + 8 * 8 * 9 * 16 * 16 + 8 * 8 * 9 * 16 * 8  # b0_conv1 16->16, b0_conv2 16->8
            + 4 * 4 * 1 * 8  # level0 from_rgb 1 -> 8 at 4x4, concat with h: 16
            + 4 * 4 * 9 * 17 * 16  # final 3x3, 16 + mbstd -> 16
            + 4 * 4 * 16 * 16 + 16 * 1)  # final 4x4 valid, score 1x1
  config = tiny_config()
  assert msggan.forward_flops(config) == (2 * g_macs, 2 * d_macs)
  reference, necessary = msggan.flops(config)
  assert (reference, necessary) == (2 * (4 * g_macs + 12 * d_macs), 2 * (3 * g_macs + 9 * d_macs))


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
