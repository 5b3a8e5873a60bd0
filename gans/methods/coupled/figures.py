"""The coupled methods' pictures: the pair sheet, slerp walks in both domains, and cross-domain
translation of real domain-a images (CoGAN §5), written by eval.py --figures."""
import os

import jax
import ml_collections
import numpy as np

from gans import figures as figures_lib
from gans.data import feeding
from gans.methods.coupled import step


def sheets(config: ml_collections.ConfigDict, outputs):
  """One pair sheet: column = one z, the domain-a row above the domain-b row."""
  return [('pairs', *figures_lib.pair_rows(*outputs))]


def translate(config: ml_collections.ConfigDict, state, x_a, steps, lr=0.01, seed=0):
  """Cross-domain translation (CoGAN §5): z* = argmin_z mean|G_a(z) - x_a| by Adam from a
  random start, then (G_a(z*), G_b(z*)). Uniform latents are kept in [-1, 1]."""
  g, _ = step.build_models(config)
  variables = {'params': state.g_params, **state.g_stats}
  start = step.sample_latents(config, jax.random.PRNGKey(seed), len(x_a))
  bound = 1.0 if config.coupled.latent_dist == 'uniform' else None
  z = figures_lib.fit_latents(lambda z: g.apply(variables, z, train=False)[0], x_a, start, steps,
                              lr, bound)
  x, y = g.apply(variables, z, train=False)[:2]
  return np.asarray(x), np.asarray(y)


def figures(config: ml_collections.ConfigDict, state, workdir, num=12, seed=0):
  """Write the coupled figures into workdir/figures/ and return their paths: the pair sheet,
  slerp walks rendered in both domains, and cross-domain translation of real domain-a images
  (rows: input, its reconstruction G_a(z*), the translation G_b(z*))."""
  state = jax.device_get(state)
  at = int(state.step)
  out_dir = os.path.join(workdir, 'figures')
  paths = []
  z = np.asarray(step.sample_latents(config, jax.random.PRNGKey(seed), 2 * num))
  images, ncol = figures_lib.pair_rows(*step.generate_all(config, state, z[:num]))
  paths.append(figures_lib.save_grid(images, os.path.join(out_dir, f'pairs_step_{at:08d}.png'),
                                     ncol))
  walk = figures_lib.slerp_walk(z[:4], z[num:num + 4], 10)  # 4 walks of 10 points
  a, b = step.generate_all(config, state, walk.reshape(-1, walk.shape[-1]))
  rows = [r for i in range(4) for r in (a[i * 10:(i + 1) * 10], b[i * 10:(i + 1) * 10])]
  paths.append(figures_lib.save_grid(np.concatenate(rows),
                                     os.path.join(out_dir, f'walk_step_{at:08d}.png'), 10))
  if config.eval.translation_steps:
    source = step.sources(config)['a']
    real = feeding.to_model_input(source[np.arange(min(num, len(source)))], None, False)
    rec, trans = translate(config, state, real, config.eval.translation_steps)
    paths.append(figures_lib.save_grid(np.concatenate([np.asarray(real), rec, trans]),
                                       os.path.join(out_dir, f'translation_step_{at:08d}.png'),
                                       len(real)))
  return paths
