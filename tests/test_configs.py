"""Every shipped config validates, documents its command, and its tiny variant feeds its step
through the real data path."""
import functools
import glob
import importlib
import json
import os

import jax
import pytest
import tensorflow_datasets as tfds

from conftest import ROOT
from gans import config as config_lib
from gans import methods, parallel
from gans.data import feeding
from gans.errors import UserError

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py')))


def load(name, variant=''):
  return importlib.import_module(f'configs.{name}').get_config(variant)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_documents_its_command(name):
  config_lib.validate(load(name))
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'python train.py --config configs/{name}.py' in doc
  with pytest.raises(UserError, match='unknown config variant'):
    load(name, 'nope')


@pytest.mark.parametrize('name', CONFIGS)
def test_tiny_variant_feeds_its_step(name):
  """Every config's tiny variant: its real data path (TFDS mocked) delivers batches of the
  method's example_spec, and its training step traces on them with state and metrics of the
  right shapes. Tracing, not compiling, keeps this at seconds per config; each method's step
  is compiled and trained in its own test file (test_train, test_began, test_coupled, ...)."""
  config = load(name, 'tiny')
  config_lib.validate(config)
  method = methods.get(config.method)
  mesh = parallel.make_mesh()
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    feeder = feeding.Feeder(method.sources(config), method.example_spec(config), config, mesh)
    tables, xs = feeder.get(0, 1)
  batch = feeder.gather(tables, [x[0] for x in xs])
  expected = jax.tree.map(lambda s: (config.batch_size,) + s.shape, method.example_spec(config))
  assert jax.tree.map(lambda a: a.shape, batch) == expected
  state = jax.eval_shape(functools.partial(method.init_state, config), jax.random.PRNGKey(0))
  new_state, metrics = jax.eval_shape(functools.partial(method.train_step, config), state, batch)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), new_state) == jax.tree.map(
      lambda a: (a.shape, a.dtype), state)
  assert all(m.shape == () for m in jax.tree.leaves(metrics))


def test_every_method_fills_the_contract():
  """methods.get returns the typed contract; a generator provides all of its sampling fields."""
  from gans import methods
  for name in methods.REGISTRY:
    method = methods.get(name)
    assert isinstance(method, methods.Method) and method.name == name
    sampling = (method.sample_latents, method.generate, method.sheets, method.image_shape)
    assert all(sampling) if method.makes_samples else not any(sampling[:3])
  assert methods.get('scogan').defaults().method == 'scogan'
  assert methods.get('cogan').defaults().method == 'cogan'


def test_upgrade_moves_the_old_root_knobs_into_their_method_block():
  old = {'method': 'cogan', 'g_steps': 2, 'd_bn': 'mixed', 'coupled': {'latent_dist': 'normal'}}
  new = config_lib.upgrade(old)
  assert new == {'method': 'cogan', 'coupled': {'latent_dist': 'normal', 'g_steps': 2,
                                                'd_bn': 'mixed'}}
  assert config_lib.upgrade(new) == new and 'g_steps' in old  # idempotent, input untouched
  for old_key, new_key in config_lib.RENAMED.items():  # every new key is a default's
    block, leaf = new_key.split('.')
    defaults = methods.get({'coupled': 'cogan'}.get(block, block)).defaults()
    assert old_key not in defaults and leaf in defaults[block], (old_key, new_key)


def test_an_old_style_workdir_loads_and_resumes(tmp_path):
  """A workdir saved while the method knobs sat at the config root (config.json and the
  checkpoint's own copy of the config) loads with the keys moved, and resumes."""
  from conftest import tiny_config
  from gans import checkpoint, trainer
  config = tiny_config(num_steps=10, **{'msggan.ema_decay': 0.5})
  trainer.train(config, str(tmp_path))
  saved = [tmp_path / 'config.json'] + sorted((tmp_path / 'checkpoints' / '10').rglob('*'))
  rewritten = 0
  for path in saved:
    try:
      text = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, IsADirectoryError):
      continue
    if isinstance(text, dict) and 'msggan' in text:
      text.update(text.pop('msggan'))  # the layout before the knobs moved
      path.write_text(json.dumps(text))
      rewritten += 1
  assert rewritten == 2  # config.json and the checkpoint's config
  loaded, state = checkpoint.load(str(tmp_path))
  assert loaded.msggan.ema_decay == 0.5 and 'ema_decay' not in loaded and int(state.step) == 10
  config.num_steps = 20
  trainer.train(config, str(tmp_path))
  assert int(checkpoint.load(str(tmp_path))[1].step) == 20
