"""A generator on its own: export a run's generator to one msgpack file, load it without the run.

The file (flax.serialization msgpack, written and read through etils.epath) holds

  format     'gans-generator', and version (1): what load_generator checks first
  method     the method's registry name ('msggan', 'began', 'cogan', 'scogan')
  step       the training step the variables come from
  config     the run's config as JSON: what rebuilds the generator, its latents and its prior
  variables  method.generator_variables(config, state) as numpy arrays: MSG-GAN's EMA generator
             and its spectral-norm vectors, BEGAN's G and step, CoGAN/SCoGAN's G and its
             BatchNorm statistics; never D, optimizer state or training extras

so a notebook or a serving job needs the code and this file, not the checkpoint. Loading runs
the method's own apply_generator on those variables, which is also what the method's
generate() runs: for the same z, the loaded generator's images are the checkpoint's, bit for
bit on the same machine.
"""
import functools
import json

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
from etils import epath

from gans import config as config_lib
from gans import methods, parallel
from gans.errors import UserError

FORMAT, VERSION = 'gans-generator', 1


def generator_method(config) -> methods.Method:
  method = methods.get(config.method)
  if method.generator_variables is None or method.apply_generator is None:
    raise UserError(f'{config.method} runs have no generator to export or sample; pass the '
                    'workdir of an msggan, began, cogan or scogan run')
  return method


def export(workdir, path, step=None) -> str:
  """Write the generator of `workdir` (at `step`, default the latest checkpoint) to `path`.
  Every process calls it (restoring is collective); process 0 writes."""
  from gans import checkpoint  # pylint: disable=g-import-not-at-top: orbax only when exporting
  method = generator_method(checkpoint.read_config(workdir))
  config, state = checkpoint.load(workdir, step)
  variables = parallel.to_host(method.generator_variables(config, state))
  payload = {'format': FORMAT, 'version': VERSION, 'method': config.method,
             'step': int(parallel.to_host(state.step)), 'config': config.to_json(),
             'variables': variables}
  if jax.process_index() == 0:
    out = epath.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(flax.serialization.msgpack_serialize(payload))
  return str(path)


class Generator:
  """An exported generator: generator(z) -> images in [-1, 1] (jitted).

  Coupled methods return (x_a, x_b); MSG-GAN the full resolution, or with all_scales=True the
  list of every scale, low -> high. `config` is the run's, `step` its training step,
  `latent_size` the width of z; sample_latents(key, n, truncation=None) draws z as the run did
  (truncated as gans/latents.py defines it).
  """

  def __init__(self, config, variables, step):
    self.config, self.step = config, step
    self.method = generator_method(config)
    self.variables = jax.device_put(variables)
    self._apply = jax.jit(functools.partial(self.method.apply_generator, config))
    z = jax.eval_shape(lambda: self.method.sample_latents(config, jax.random.PRNGKey(0), 1))
    self.latent_size = z.shape[-1]

  def __call__(self, z, all_scales=False):
    out = self._apply(self.variables, jnp.asarray(z))
    return out[-1] if isinstance(out, list) and not all_scales else out

  def sample_latents(self, key, n, truncation=None):
    from gans import sampling  # pylint: disable=g-import-not-at-top
    return sampling.latent_fn(self.method, truncation)(self.config, key, n)

  def __repr__(self):
    return (f'Generator({self.config.method}, step {self.step}, latent_size '
            f'{self.latent_size})')


def load_generator(path) -> Generator:
  """The generator exported to `path` (a local path or a URL) by sample.py --export."""
  path = epath.Path(path)
  if not path.exists():
    raise UserError(f'{path} does not exist; write one with python sample.py --workdir DIR '
                    '--export G.msgpack')
  try:
    payload = flax.serialization.msgpack_restore(path.read_bytes())
  except Exception as e:  # pylint: disable=broad-except: any undecodable file is the same mistake
    raise UserError(f'{path} is not a generator exported by sample.py --export ({e})') from e
  if not isinstance(payload, dict) or payload.get('format') != FORMAT:
    raise UserError(f'{path} is not a generator exported by sample.py --export')
  if payload.get('version') != VERSION:
    raise UserError(f'{path} has export format version {payload.get("version")}; this code '
                    f'reads version {VERSION}')
  config = ml_collections.ConfigDict(config_lib.upgrade(json.loads(payload['config'])))
  return Generator(config, payload['variables'], int(payload['step']))
