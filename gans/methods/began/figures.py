"""BEGAN's figures for eval.py: the M curve with sample snapshots, interpolations between
random latents and between latents found for real images, and the gamma (diversity) figure
across runs."""
import functools
import io
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath
from PIL import Image

from gans import figures as figures_lib
from gans import logs
from gans.data import feeding
from gans.errors import UserError
from gans.methods.began.step import build_models, carry, generate, sample_latents, sources


def find_latents(config: ml_collections.ConfigDict, state, images, steps=None, lr=None, key=None):
  """z in [-1, 1] with G(z) close to each real image (float NHWC in [-1, 1]), by Adam on
  mean |image - G(z)| from a random start, clipped to the prior's support after each step
  (spec §6.3; carpedm20 uses Adam 1e-4, which barely moves z: the default lr is 0.01)."""
  f = config.figures
  steps, lr = f.z_steps if steps is None else steps, f.z_lr if lr is None else lr
  g, _ = build_models(config)
  c = carry(config, state.step)
  key = jax.random.PRNGKey(0) if key is None else key
  return figures_lib.fit_latents(lambda z: g.apply({'params': state.g_params}, z, c), images,
                                 sample_latents(config, key, images.shape[0]), steps, lr, 1.0)


def _interpolate(config: ml_collections.ConfigDict, state, z_a, z_b):
  """[pairs * points] images: rows of G along the slerp from each z_a to its z_b."""
  z = figures_lib.slerp_walk(z_a, z_b, config.figures.points)  # [pairs, points, d]
  fake = jax.jit(functools.partial(generate, config))(state, z.reshape(-1, z.shape[-1]))
  return np.asarray(fake['samples'])


def interpolation_figures(config: ml_collections.ConfigDict, state, directory, key=None):
  """Write interpolation_generated.png (slerp between random latents) and interpolation_real.png
  (between latents found for real image pairs by find_latents; each row starts and ends with
  the two real images) into `directory`. Returns the paths."""
  f = config.figures
  key = jax.random.PRNGKey(config.seed) if key is None else key
  k_gen, k_real, k_fit = jax.random.split(key, 3)
  z = np.asarray(sample_latents(config, k_gen, 2 * f.pairs))
  gen = _interpolate(config, state, z[:f.pairs], z[f.pairs:])
  paths = [figures_lib.save_grid(gen, os.path.join(directory, 'interpolation_generated.png'),
                                 f.points)]
  source = sources(config)
  index = np.asarray(jax.random.choice(k_real, len(source), (2 * f.pairs,), replace=False))
  real = np.asarray(feeding.to_model_input(jnp.asarray(source[index]), None, False))
  z = np.asarray(find_latents(config, state, real, key=k_fit))
  between = _interpolate(config, state, z[:f.pairs], z[f.pairs:]).reshape(
      (f.pairs, f.points) + real.shape[1:])
  rows = np.concatenate([real[:f.pairs, None], between, real[f.pairs:, None]], axis=1)
  paths.append(figures_lib.save_grid(rows.reshape((-1,) + real.shape[1:]),
                                     os.path.join(directory, 'interpolation_real.png'),
                                     f.points + 2))
  return paths


def convergence_figure(config: ml_collections.ConfigDict, workdir, path):
  """M over the run (workdir/metrics.jsonl: each point M_mean, the mean over a log interval,
  which is smoother than M at the logged step; M in runs logged before M_mean, where M was
  that mean) with config.figures.snapshots sample sheets from workdir/samples/samples/ along
  it. Returns the path, or None when the run has logged nothing yet."""
  records = [r for r in logs.read_metrics(workdir) if 'M' in r]
  if not records:
    return None
  name = 'M_mean' if all('M_mean' in r for r in records) else 'M'
  sample_dir = epath.Path(workdir) / 'samples' / 'samples'
  saved = sorted(int(f.name[5:-4]) for f in sample_dir.iterdir()
                 if re.fullmatch(r'step_\d+\.png', f.name)) if sample_dir.is_dir() else []
  picks = sorted({saved[round(i)] for i in np.linspace(0, len(saved) - 1,
                                                        config.figures.snapshots)}) if saved else []
  snapshots = [(s, Image.open(io.BytesIO((sample_dir / f'step_{s:08d}.png').read_bytes())))
               for s in picks]
  return figures_lib.curve_with_snapshots([r['step'] for r in records],
                                          [r[name] for r in records], snapshots, path)


def figures(config: ml_collections.ConfigDict, state, workdir):
  """The method's figures for eval.py, into workdir/figures/: convergence.png (the M curve
  with sample snapshots), interpolation_generated.png and interpolation_real.png. Returns the
  paths written."""
  directory = os.path.join(workdir, 'figures')
  paths = [convergence_figure(config, workdir, os.path.join(directory, 'convergence.png'))]
  paths += interpolation_figures(config, state, directory)
  return [p for p in paths if p]


def gamma_figure(workdirs, path, num_samples=36, seed=0, step=None):
  """The diversity figure: one sample sheet per run, side by side in order of gamma and
  captioned with it (the paper's gamma in {0.3, 0.5, 0.7}). Every run draws its samples
  from the same latents when their N_z agree. `step` picks a checkpoint present in every run
  (default: each run's latest). Returns the path."""
  from gans import checkpoint  # pylint: disable=g-import-not-at-top
  runs = []
  for workdir in workdirs:
    config, state = checkpoint.load(workdir, step)
    if config.method != 'began':
      raise UserError(f'{workdir} holds a {config.method} run; the gamma figure compares BEGAN '
                      'runs')
    runs.append((config.loss.gamma, config, state))
  sheets, labels = [], []
  for gamma, config, state in sorted(runs, key=lambda r: r[0]):
    z = sample_latents(config, jax.random.PRNGKey(seed), num_samples)
    fake = np.asarray(jax.jit(functools.partial(generate, config))(state, z)['samples'])
    factor = max(1, -(-64 // fake.shape[1]))
    sheets.append(figures_lib.grid(figures_lib.to_uint8(figures_lib.upsample(fake, factor))))
    labels.append(f'gamma = {gamma:g}, step {int(state.step):,}')
  return figures_lib.labelled_side_by_side(
      [s[..., 0] if s.shape[-1] == 1 else s for s in sheets], labels, path)
