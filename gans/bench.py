"""Training throughput of a config: images/s, s/kimg, compile time, peak memory, MFU.

  python -m gans.bench --config configs/msggan_digits.py [--config.batch_size=64] [--repeats 10]
  python -m gans.bench --config configs/msggan_digits.py --pipeline   # + the input pipeline
  python -m gans.bench --config configs/msggan_digits.py --profile /tmp/prof  # a trace
  python -m gans.bench --sweep     # the reference table (SWEEP), bf16, one JSON line each
  python -m gans.bench --features [--batch 200] [--resolution 32]   (Inception extraction)
  python -m gans.bench --config configs/msggan_digits.py --sample 50000 [--batch 200]
                   (sample.py's path to an .npz, on a fresh state: wall time and images/s)

Runs the trainer's own compiled dispatch (K fused steps) on synthetic uint8 data already on the
devices, so the input pipeline is excluded; the warm-up dispatch is excluded; the step time is
the median over repeated dispatches, each ended by block_until_ready. FLOPs come from the model's
own layer shapes (counted as the convs are traced, gans.layers.flop_counter), not a guess, and
XLA's cost analysis of the compiled dispatch is printed beside them as a check. The compiled
step's communication is counted from its HLO: all-reduces and the bytes they carry (against the
trained parameters' bytes: a data-parallel step should send each gradient once), any other
collective, any host transfer. Prints one JSON line.
"""
import contextlib
import dataclasses
import functools
import json
import math
import re
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gans import config as config_lib
from gans import methods, parallel, trainer
from gans.data import feeding
from gans.errors import UserError

# Dense peak FLOP/s by device kind and compute dtype (NVIDIA/Google datasheets). PyTorch and XLA
# run float32 convolutions as TF32 on these GPUs by default, hence the TF32 figure for float32.
PEAK_FLOPS = {
    ('H100', 'bfloat16'): 989e12, ('H100', 'float32'): 495e12,
    ('H200', 'bfloat16'): 989e12, ('H200', 'float32'): 495e12,
    ('A100', 'bfloat16'): 312e12, ('A100', 'float32'): 156e12,
    ('TPU v4', 'bfloat16'): 275e12, ('TPU v5 lite', 'bfloat16'): 197e12,
    ('TPU v5', 'bfloat16'): 459e12, ('TPU v6 lite', 'bfloat16'): 918e12,
}


def peak_flops(dtype):
  kind = jax.devices()[0].device_kind
  for (name, dt), value in PEAK_FLOPS.items():
    if name in kind and dt == dtype:
      return value * jax.device_count()
  return None


def peak_memory_bytes():
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'], 'device'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'host RSS'


def benchmark(config, repeats=10, peak_tflops=None, profile_dir=None, fused=None):
  """Measure one config; returns a dict (the JSON line). peak_tflops overrides the table;
  profile_dir: a jax.profiler trace of the timed dispatches goes there (TensorBoard's profile
  plugin or Perfetto reads it); fused: one lax.scan per dispatch or single-step dispatches
  (None: the trainer's choice for the backend)."""
  config_lib.validate(config)
  mesh = parallel.make_mesh()
  parallel.check_batch(config.batch_size, mesh)
  method = methods.get(config.method)
  k, batch = config.steps_per_dispatch, config.batch_size
  spec = method.example_spec(config)
  synthetic = jax.tree.map(lambda s: SyntheticSource(s, 4 * batch), spec)
  on_device = config.copy_and_resolve_references()
  on_device.data.on_device = 'yes'
  feeder = feeding.Feeder(synthetic, spec, on_device, mesh)
  tables, xs = feeder.get(0, k)
  state = jax.jit(functools.partial(method.init_state, config),
                  out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(0))

  # What a data-parallel step must all-reduce: the gradients of every trained parameter.
  trained_bytes = sum(x.nbytes for f in dataclasses.fields(state) if f.name.endswith('params')
                      for x in jax.tree.leaves(getattr(state, f.name)))
  dispatch = trainer.Dispatch(method, config, mesh, feeder.gather, fused=fused)
  state, _ = dispatch(state, tables, xs)  # compiles; warm-up
  jax.block_until_ready(state)
  # XLA's count for one step: the scan body is counted once, as is the single-step executable.
  # It is per device, so times the device count it is the whole step's: equal to one device's
  # when nothing is computed redundantly.
  executable = next(iter(dispatch.executables.values()))
  cost = executable.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  ops = communication(executable.as_text())
  times = []
  with jax.profiler.trace(profile_dir) if profile_dir else contextlib.nullcontext():
    for _ in range(repeats):
      t0 = time.perf_counter()
      state, metrics = dispatch(state, tables, xs)
      jax.block_until_ready((state, metrics))
      times.append((time.perf_counter() - t0) / k)
  step_s = statistics.median(times)
  images_per_s = batch / step_s
  flops = method.flops(config) if method.flops else None
  reference, necessary = flops or (None, None)
  dtype = config.model.get('dtype', 'float32')
  peak = peak_tflops * 1e12 if peak_tflops else peak_flops(dtype)
  memory, memory_kind = peak_memory_bytes()
  gflop = lambda f: round(f / 1e9, 4) if f else None
  return {
      'method': config.method, 'model': config.model.to_dict(), 'batch': batch,
      'dtype': dtype, 'loss': config.get('loss', {}).get('name'),
      'devices': jax.device_count(), 'device': jax.devices()[0].device_kind,
      'steps_per_dispatch': k,
      'images_per_s': round(images_per_s, 2), 's_per_kimg': round(1000 / images_per_s, 4),
      'step_ms': round(1000 * step_s, 3), 'compile_s': round(dispatch.compile_s, 2),
      'fused_scan': dispatch.fused,
      'peak_memory_mb': round(memory / 2 ** 20, 1), 'peak_memory_kind': memory_kind,
      'gflop_per_image_reference': gflop(reference),
      'gflop_per_image_necessary': gflop(necessary),
      'xla_gflop_per_image': round(cost.get('flops', float('nan')) * jax.device_count() / batch
                                   / 1e9, 4),
      'all_reduces': ops['all-reduce'], 'all_reduce_kb': round(ops['all_reduce_bytes'] / 1024, 1),
      'trained_parameters_kb': round(trained_bytes / 1024, 1),
      'other_collectives': ops['other'],
      'host_transfers': ops['host'],
      'mfu_necessary': (float(f'{images_per_s * necessary / peak:.4g}') if peak and necessary
                        else None),
      'peak_tflops': peak / 1e12 if peak else None,
  }


_COLLECTIVE = re.compile(r'\b(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)'
                         r'(?:-start)?\(')
_HOST = re.compile(r'\b(infeed|outfeed|send|recv)\(|custom_call_target="[^"]*(?:callback|host)',
                   re.IGNORECASE)
_ARRAY = re.compile(r'\b(pred|[subf]\d+|bf16)\[([\d,]*)\]')


def communication(hlo_text):
  """The compiled step's all-reduces (ops, and bytes per device), other collectives, and host
  transfers (infeed, outfeed, send/recv, host callbacks): what a data-parallel step should have
  is all-reduces only, about one per update, and no host round-trip."""
  ops, reduced = [], 0
  for line in hlo_text.splitlines():
    found = _COLLECTIVE.search(line)
    if not found:
      continue
    ops.append(found.group(1))
    if found.group(1) == 'all-reduce':  # the result's arrays: text between '=' and the op
      result = line[line.index('=') + 1:found.start()]
      for dtype, dims in _ARRAY.findall(result):
        size = 1 if dtype == 'pred' else 2 if dtype == 'bf16' else int(dtype[1:]) // 8
        reduced += math.prod(int(d) for d in dims.split(',') if d) * size
  return {'all-reduce': ops.count('all-reduce'), 'other': len(ops) - ops.count('all-reduce'),
          'all_reduce_bytes': reduced, 'host': len(_HOST.findall(hlo_text))}


class SyntheticSource:
  """`n` random examples of one spec: data with the real shapes, already on the devices."""

  name = 'synthetic'

  def __init__(self, spec, n):
    rng = np.random.default_rng(0)
    if jnp.issubdtype(spec.dtype, jnp.integer):
      high = 256 if spec.dtype == jnp.uint8 else 2
      self._data = rng.integers(0, high, (n,) + spec.shape).astype(spec.dtype)
    else:
      self._data = rng.standard_normal((n,) + spec.shape).astype(spec.dtype)

  def __len__(self):
    return len(self._data)

  def __getitem__(self, indices):
    return self._data[indices]

  def load_all(self):
    return self._data


# The issue-6 table: BMSG-GAN's three reference configs on one device, as the reference's
# best-effort PyTorch ran them (bf16), with the img/s to beat (twice that column); then the
# other methods' largest configs at their own batch sizes, which have no PyTorch figure here.
SWEEP = (
    ('configs/msggan_cifar10.py', {'batch_size': 64}, 3250),
    ('configs/msggan_celeba128.py', {'batch_size': 32}, 1030),
    ('configs/msggan_flowers256.py', {'batch_size': 16}, 460),
    ('configs/began_celeba64.py', {'batch_size': 16}, None),
    ('configs/began_celeba128.py', {'batch_size': 16}, None),
    ('configs/cogan_mnist_edge.py', {'batch_size': 128}, None),
    ('configs/cogan_celeba_smiling128.py', {'batch_size': 128}, None),
    ('configs/scogan_mnist_svhn.py:cc_fr', {'batch_size': 128}, None),
)


def load_config(path, overrides):
  """A SWEEP row's config ('FILE[:variant]'), in bfloat16 compute, with its overrides."""
  return config_lib.from_file(path, {'model.dtype': 'bfloat16', **overrides})


def sweep(rows, repeats, peak_tflops=None):
  """Benchmark (path, overrides, target) rows as load_config makes them, printing each one's
  JSON line as it finishes; returns the markdown table of all of them."""
  table = ['| config | batch | img/s | target | MFU | peak MB |', '|---|---|---|---|---|---|']
  for path, overrides, target in rows:
    r = benchmark(load_config(path, overrides), repeats, peak_tflops)
    print(json.dumps({'config': path, **r, 'target_images_per_s': target}), flush=True)
    table.append(f'| {path} | {r["batch"]} | {r["images_per_s"]:,.1f} | '
                 f'{f"{target:,}" if target else "-"} | {r["mfu_necessary"]} | '
                 f'{r["peak_memory_mb"]:,.0f} |')
  return '\n'.join(table)


def pipeline_rate(config, dispatches=5):
  """Images/s the host input pipeline delivers when streaming (data.on_device='no'): the
  background read of dispatch n+1 overlaps nothing here, so this is its rate alone."""
  method = methods.get(config.method)
  streamed = config.copy_and_resolve_references()
  streamed.data.on_device = 'no'
  feeder = feeding.Feeder(method.sources(streamed), method.example_spec(streamed), streamed,
                          parallel.make_mesh())
  k = config.steps_per_dispatch
  jax.block_until_ready(feeder.get(0, k))  # the pool and the first read
  t0 = time.perf_counter()
  for n in range(1, dispatches + 1):
    jax.block_until_ready(feeder.get(n * k, k))
  return dispatches * k * config.batch_size / (time.perf_counter() - t0)


def extraction_benchmark(batch=200, resolution=32, channels=3, repeats=10):
  """Images/s of the FID Inception extractor (clean-fid resize to 299 included) on uint8
  batches of resolution^2 x channels sharded over all devices. The weights are zeros of the
  right shapes: the time does not depend on their values, and no weights file is needed."""
  from gans.metrics import extractors
  from gans.models import inception
  mesh = parallel.make_mesh()
  batch = -(-batch // mesh.devices.size) * mesh.devices.size
  variables = jax.tree.map(lambda s: parallel.replicate(mesh, np.zeros(s.shape, s.dtype)),
                           inception.variable_shapes())
  net = inception.FIDInceptionV3()
  fn = jax.jit(lambda v, x: net.apply(v, extractors.resize_like_clean_fid(x) / 127.5 - 1.0))
  images = np.random.default_rng(0).integers(0, 256, (batch, resolution, resolution, channels),
                                             np.uint8)
  x = parallel.global_array(parallel.batch_sharding(mesh), images.shape,
                            lambda rows: images[rows], 0)
  t0 = time.perf_counter()
  jax.block_until_ready(fn(variables, x))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(variables, x))
    times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  return {'benchmark': 'inception_features', 'batch': batch, 'input': list(images.shape[1:]),
          'devices': jax.device_count(), 'device': jax.devices()[0].device_kind,
          'images_per_s': round(batch / step_s, 2), 'batch_ms': round(1000 * step_s, 2),
          'compile_s': round(compile_s, 2)}


def sample_benchmark(config, num, batch=200):
  """Wall seconds and images/s of writing `num` samples to an .npz the way sample.py does
  (gans.sampler.write_samples: generation, host copies, the writer thread), compilation
  included, on a freshly initialised state: the time does not depend on the weights."""
  import tempfile  # pylint: disable=g-import-not-at-top
  from gans import sampler  # pylint: disable=g-import-not-at-top
  method, mesh = methods.get(config.method), parallel.make_mesh()
  state = jax.device_put(jax.jit(functools.partial(method.init_state, config))(
      jax.random.PRNGKey(0)), parallel.replicated(mesh))
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    sampler.write_samples(method, config, state, f'{tmp}/samples.npz', num, batch_size=batch,
                          mesh=mesh, progress=False)
    wall = time.perf_counter() - t0
  return {'benchmark': 'sample_npz', 'config': config.method, 'num': num, 'batch': batch,
          'devices': jax.device_count(), 'device': jax.devices()[0].device_kind,
          'wall_s': round(wall, 2), 'images_per_s': round(num / wall, 1)}


def main(argv):
  del argv
  if _SAMPLE.value:
    if _CONFIG.value is None:
      raise UserError('--sample needs --config FILE[:variant]')
    print(json.dumps(sample_benchmark(_CONFIG.value, _SAMPLE.value, _BATCH.value)))
    return
  if _FEATURES.value:
    print(json.dumps(extraction_benchmark(_BATCH.value, _RESOLUTION.value, repeats=_REPEATS.value)))
    return
  if _SWEEP.value:
    print(sweep(SWEEP, _REPEATS.value, _PEAK.value))
    return
  if _CONFIG.value is None:
    raise UserError('give --config FILE[:variant], --sweep or --features')
  result = benchmark(_CONFIG.value, _REPEATS.value, _PEAK.value, _PROFILE.value)
  if _PIPELINE.value:
    rate = pipeline_rate(_CONFIG.value)
    result.update(pipeline_images_per_s=round(rate, 1),
                  pipeline_over_step=round(rate / result['images_per_s'], 2))
  print(json.dumps(result))


if __name__ == '__main__':
  from absl import flags
  from ml_collections import config_flags
  from gans import cli
  _CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file[:variant].',
                                            lock_config=True)
  _REPEATS = flags.DEFINE_integer('repeats', 10, 'Timed dispatches; the median is reported.')
  _PEAK = flags.DEFINE_float('peak_tflops', None, 'Peak FLOP/s of all devices, in TFLOP/s, for '
                             'MFU where the device is not in PEAK_FLOPS (e.g. a CPU).')
  _PROFILE = flags.DEFINE_string('profile', None, 'Write a jax.profiler trace of the timed '
                                 'dispatches to this directory (--config only).')
  _SWEEP = flags.DEFINE_bool('sweep', False, 'Run the reference table (SWEEP) instead of --config.')
  _PIPELINE = flags.DEFINE_bool('pipeline', False, 'Also time the real input pipeline, streamed '
                                'from the config\'s dataset, against the step.')
  _FEATURES = flags.DEFINE_bool('features', False, 'Benchmark Inception feature extraction '
                                '(images/s) instead of training.')
  _BATCH = flags.DEFINE_integer('batch', 200, 'Images per batch (--features, --sample).')
  _SAMPLE = flags.DEFINE_integer('sample', 0, 'Time writing this many samples of --config to '
                                 'an .npz (sample.py\'s path) instead of training.')
  _RESOLUTION = flags.DEFINE_integer('resolution', 32, 'Input resolution (--features).')
  sys.exit(cli.run(main, _CONFIG))
